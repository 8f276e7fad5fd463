"""Fragmentation over ATT and COBS/CRC serial framing, host and firmware side by side."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pen import link, wire

from scalppen_protocol import fragment as hfrag
from scalppen_protocol import serial_framing as hser
from scalppen_protocol.codec import encode_frame
from scalppen_protocol.codes import MAX_FRAME, MAX_MTU, MIN_MTU, ErrorCode, MsgType
from scalppen_protocol.errors import ProtocolError


def _frame(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


@pytest.mark.parametrize("size", [1, 18, 19, 244, 1000, MAX_FRAME])
def test_every_mtu_round_trips_both_ways(size: int) -> None:
    frame = _frame(size)
    for mtu in range(MIN_MTU, MAX_MTU + 1):
        host_frags = hfrag.fragment(frame, mtu, mtu)
        assert host_frags == link.fragment(frame, mtu, mtu)
        assert all(len(f) <= mtu - 3 for f in host_frags)
        fw = link.Reassembler()
        host = hfrag.Reassembler()
        out_fw = out_host = None
        for i, f in enumerate(host_frags):
            out_fw = fw.feed(f)
            out_host = host.feed(f)
            if i < len(host_frags) - 1:
                assert out_fw is None and out_host is None
        assert out_fw == out_host == frame


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=MAX_FRAME), st.integers(MIN_MTU, MAX_MTU),
       st.integers(0, 63))
def test_fragment_property(frame: bytes, mtu: int, counter: int) -> None:
    frags = link.fragment(frame, mtu, counter)
    assert frags == hfrag.fragment(frame, mtu, counter)
    r = hfrag.Reassembler()
    results = [r.feed(f) for f in frags]
    assert results[-1] == frame and all(x is None for x in results[:-1])


def _both(frags: list[bytes]) -> tuple[object, object]:
    """Feed fragments to both reassemblers; return (host outcome, firmware outcome)."""
    outcomes: list[object] = []
    for reasm, err in ((hfrag.Reassembler(), ProtocolError), (link.Reassembler(), wire.WireError)):
        got: list[object] = []
        for f in frags:
            try:
                res = reasm.feed(f)
                if res is not None:
                    got.append(res)
            except err as exc:  # type: ignore[misc]
                got.append(int(exc.code))
        outcomes.append(got)
    return outcomes[0], outcomes[1]


def test_duplicate_fragment_is_reported_and_dropped() -> None:
    frame = _frame(100)
    f = hfrag.fragment(frame, 23, 5)
    host, fw = _both([f[0], f[1], f[1], *f[2:]])
    assert host == fw == [ErrorCode.DUPLICATE_FRAGMENT, frame]


def test_gap_is_out_of_order() -> None:
    f = hfrag.fragment(_frame(100), 23, 5)
    host, fw = _both([f[0], f[2], f[3]])
    assert host == fw == [ErrorCode.OUT_OF_ORDER, ErrorCode.OUT_OF_ORDER]


def test_continuation_without_start_and_foreign_counter() -> None:
    a = hfrag.fragment(_frame(100), 23, 1)
    b = hfrag.fragment(_frame(100), 23, 2)
    host, fw = _both([a[1]])
    assert host == fw == [ErrorCode.OUT_OF_ORDER]
    host, fw = _both([a[0], b[1]])
    assert host == fw == [ErrorCode.OUT_OF_ORDER]


def test_new_message_interrupts_an_incomplete_one() -> None:
    a = hfrag.fragment(_frame(100), 23, 1)
    b = hfrag.fragment(_frame(60), 23, 2)
    host, fw = _both([a[0], a[1], *b])
    assert host == fw == [ErrorCode.OUT_OF_ORDER, _frame(60)]


def test_whole_message_after_an_incomplete_one_is_delivered() -> None:
    # A one-fragment request (a STOP, say) right after a cut-off message is not lost.
    a = hfrag.fragment(_frame(100), 23, 1)
    b = hfrag.fragment(_frame(10), 23, 2)
    assert len(b) == 1
    host, fw = _both([a[0], *b])
    assert host == fw == [_frame(10)]


def test_oversized_message_is_refused() -> None:
    size = hfrag.chunk_size(517)
    n = MAX_FRAME // size + 2
    frags = [bytes((0x80 if i == 0 else 0, i)) + bytes(size) for i in range(n)]
    host, fw = _both(frags)
    assert host[0] == fw[0] == ErrorCode.OVERSIZE


def test_short_fragment_is_truncated() -> None:
    host, fw = _both([b"\xc0\x00"])
    assert host == fw == [ErrorCode.TRUNCATED]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_arbitrary_fragments_never_crash_and_agree(frags: list[bytes]) -> None:
    host, fw = _both(frags)
    assert host == fw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_FRAME))
def test_cobs_round_trip_both_sides(data: bytes) -> None:
    enc = hser.cobs_encode(data)
    assert b"\x00" not in enc
    assert enc == link.cobs_encode(data)
    assert hser.cobs_decode(enc) == link.cobs_decode(enc) == data


def test_crc16_known_value() -> None:
    assert hser.crc16(b"123456789") == 0x29B1 == link.crc16(b"123456789")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_serial_stream_both_sides(frames: list[bytes]) -> None:
    stream = b"".join(hser.encode_packet(f) for f in frames)
    assert stream == b"".join(link.encode_packet(f) for f in frames)
    assert hser.Deframer().feed(stream) == frames
    assert link.Deframer().feed(stream) == frames


def test_serial_bad_crc_is_reported_and_stream_continues() -> None:
    good = hser.encode_packet(b"\x01\x02\x03")
    bad = bytearray(good)
    bad[2] ^= 0x10
    for deframer, err in ((hser.Deframer(), ProtocolError), (link.Deframer(), wire.WireError)):
        out = deframer.feed(bytes(bad) + good)
        assert isinstance(out[0], err) and out[0].code == ErrorCode.BAD_CRC
        assert out[1] == b"\x01\x02\x03"


def test_serial_overlong_packet_is_discarded() -> None:
    junk = b"\x01" * (hser.MAX_PACKET + 10) + b"\x00"
    good = hser.encode_packet(b"\x09")
    for deframer, err in ((hser.Deframer(), ProtocolError), (link.Deframer(), wire.WireError)):
        out = deframer.feed(junk + good)
        assert isinstance(out[0], err) and out[0].code == ErrorCode.OVERSIZE
        assert out[1] == b"\x09"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_serial_arbitrary_bytes_agree(data: bytes) -> None:
    def norm(items: list[object]) -> list[object]:
        return [i if isinstance(i, bytes) else int(i.code) for i in items]  # type: ignore[attr-defined]

    assert norm(hser.Deframer().feed(data)) == norm(link.Deframer().feed(data))


def test_whole_type_names_only_single_fragment_messages() -> None:
    # The shell peeks at it to put a STOP at the head of its queue.
    stop = hfrag.fragment(encode_frame(MsgType.STOP, 9, {}), 23, 4)
    assert len(stop) == 1 and link.whole_type(stop[0]) == MsgType.STOP
    long = hfrag.fragment(_frame(100), 23, 5)
    assert [link.whole_type(f) for f in long] == [-1] * len(long)
    assert link.whole_type(b"\xc0\x00\x01") == -1
