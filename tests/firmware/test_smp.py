# The pen's SMP (pen/smp.py) and CBOR (pen/cbor.py) against the host's own
# libraries: cbor2 (which smpclient uses) and the smp package's header and models.
import cbor2
import pytest
import smp.header as smphdr
from hypothesis import given, settings
from hypothesis import strategies as st
from pen import cbor
from pen import smp as pen_smp  # the pen's; `smp` is the host package
from smp import os_management as osm

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.text(max_size=8) | st.integers(0, 100), inner, max_size=5),
    max_leaves=20)


@given(values)
def test_cbor_encodes_as_cbor2_reads_and_reads_what_cbor2_writes(v):
    assert cbor2.loads(cbor.encode(v)) == v
    assert cbor.decode(cbor2.dumps(v)) == v


@given(st.binary(max_size=64))
@settings(max_examples=500)
def test_cbor_garbage_raises_value_error_and_nothing_else(raw):
    try:
        v = cbor.decode(raw)
    except ValueError:
        return
    assert cbor2.loads(raw) == v  # what the pen accepts, it reads as cbor2 does


def test_cbor_refuses_lengths_beyond_the_buffer_and_deep_nesting():
    for raw in (b"\x5a\xff\xff\xff\xff", b"\x9b" + b"\xff" * 8, b"\xbf", b"\x81" * 20 + b"\x00"):
        with pytest.raises(ValueError):
            cbor.decode(raw)


class Env:
    def __init__(self, fail=None):
        self.fail = fail

    def image_states(self):
        if self.fail:
            raise self.fail
        return [{"image": 0, "slot": 0, "version": "0.1.0", "hash": bytes(32), "active": True}]


def test_echo_and_parameters_answer_as_the_smp_package_reads_them():
    req = osm.EchoWriteRequest(d="hello")
    resp = pen_smp.respond(req.BYTES, Env())
    got = osm.EchoWriteResponse.loads(resp)
    assert got.r == "hello" and got.header.sequence == req.header.sequence
    req = osm.MCUMgrParametersReadRequest()
    got = osm.MCUMgrParametersReadResponse.loads(pen_smp.respond(req.BYTES, Env()))
    assert (got.buf_size, got.buf_count) == (pen_smp.BUF_SIZE, pen_smp.BUF_COUNT)


def test_unknown_commands_bad_bodies_and_failures_get_an_error_answer_not_an_exception():
    tasks = osm.TaskStatisticsReadRequest()
    assert osm.OSManagementErrorV1.loads(pen_smp.respond(tasks.BYTES, Env())).rc == pen_smp.ENOTSUP
    bad = bytearray(osm.EchoWriteRequest(d="x").BYTES)
    bad[-1] = 0xFF  # the CBOR body broken
    assert cbor.decode(pen_smp.respond(bytes(bad), Env())[8:]) == {"rc": pen_smp.EINVAL}
    long = osm.EchoWriteRequest(d="x" * 200)
    assert cbor.decode(pen_smp.respond(long.BYTES, Env())[8:]) == {"rc": pen_smp.EINVAL}
    from smp import image_management as im

    states = im.ImageStatesReadRequest()
    resp, failed = pen_smp.answer(states.BYTES, Env(MemoryError()))
    assert failed and cbor.decode(resp[8:]) == {"rc": pen_smp.ENOMEM}
    resp, failed = pen_smp.answer(states.BYTES, Env(KeyError("bug")))
    assert failed and cbor.decode(resp[8:]) == {"rc": pen_smp.EUNKNOWN}


def test_a_response_is_not_taken_for_a_request():
    resp = pen_smp.respond(osm.EchoWriteRequest(d="a").BYTES, Env())
    assert pen_smp.respond(resp, Env()) is None


def test_writes_are_reassembled_by_the_headers_length_and_an_oversized_frame_is_dropped():
    frames = [osm.EchoWriteRequest(d="a" * 100).BYTES, osm.MCUMgrParametersReadRequest().BYTES]
    stream = b"".join(frames)
    rx = pen_smp.Reassembler()
    got = []
    for i in range(0, len(stream), 20):  # MTU 23
        got.extend(rx.feed(stream[i:i + 20]))
    assert got == frames
    big = smphdr.Header(op=smphdr.OP.WRITE, version=smphdr.Version.V2, flags=smphdr.Flag(0),
                        length=pen_smp.BUF_SIZE, group_id=0, sequence=1, command_id=0)
    rx = pen_smp.Reassembler()
    assert rx.feed(bytes(big.BYTES)) == [] and rx.broken
    assert rx.feed(frames[1]) == []  # dropped until the link starts clean
    rx.reset()
    assert rx.feed(frames[1]) == [frames[1]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 240), min_size=1, max_size=5),
       st.lists(st.integers(1, 244), min_size=1, max_size=12))
def test_any_split_of_back_to_back_frames_gives_them_back_whole_from_one_buffer(sizes, cuts):
    frames = [bytes(osm.EchoWriteRequest(d="x" * n).BYTES) for n in sizes]
    frames.append(pen_smp.build(pen_smp.OP_WRITE, 1, 1, 9, 1,
                                {"data": b"\x5a" * (pen_smp.BUF_SIZE - 30)}))
    assert len(frames[-1]) <= pen_smp.BUF_SIZE  # a frame that fills the buffer
    stream = b"".join(frames)
    rx = pen_smp.Reassembler()
    buf = rx.buf
    got, i, k = [], 0, 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        k += 1
        got.extend(rx.feed(memoryview(stream)[i:i + n]))  # as the app's queue holds them
        i += n
    assert got == frames and rx.n == 0
    assert rx.buf is buf  # taken once


def test_the_pen_holds_one_whole_request_between_two_ticks():
    # pen/app.py gathers at most _SMP_IN_BYTES of SMP writes a tick: a request of
    # buf_size must fit, or a window-1 client would wait a tick more for each.
    import re
    from pathlib import Path

    app = (Path(__file__).resolve().parents[2] / "firmware" / "pen" / "app.py").read_text()
    held = int(re.search(r"_SMP_IN_BYTES = const\((\d+)\)", app).group(1))
    writes = int(re.search(r"_SMP_IN_WRITES = const\((\d+)\)", app).group(1))
    assert held == pen_smp.BUF_SIZE
    assert writes * (89 - 3) >= pen_smp.BUF_SIZE  # a request at an MTU of 89 or more
