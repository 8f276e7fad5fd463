"""Both codecs against the golden vectors and against each other."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pen import wire

from scalppen_protocol import codegen
from scalppen_protocol.codec import decode_frame, encode_frame
from scalppen_protocol.codes import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    Capability,
    ErrorCode,
    MsgType,
    Notice,
    PenState,
    RecordKind,
)
from scalppen_protocol.errors import ProtocolError
from scalppen_protocol.messages import CATALOGUE
from scalppen_protocol.vectors import CASES, load
from tests.protocol.strategies import messages

VECTORS = load()
V = bytes([PROTOCOL_VERSION])  # a frame's first byte


def test_every_message_has_a_vector() -> None:
    assert {v["type"] for v in VECTORS} == {int(t) for t in CATALOGUE}
    assert len(VECTORS) == len(CASES)


def test_generated_firmware_codec_is_current() -> None:
    assert codegen.DEFAULT_OUT.read_text() == codegen.render()


def test_firmware_constants_equal_protocol_codes() -> None:
    for prefix, enum in (("T_", MsgType), ("E_", ErrorCode), ("K_", RecordKind),
                         ("S_", PenState), ("N_", Notice), ("CAP_", Capability)):
        for member in enum:
            assert getattr(wire, prefix + str(member.name)) == member.value


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_host_codec_matches_vector(vec: dict[str, Any]) -> None:
    assert encode_frame(vec["type"], vec["seq"], vec["fields"]) == vec["frame"]
    frame = decode_frame(vec["frame"])
    assert (frame.msg_type, frame.seq, frame.fields) == (vec["type"], vec["seq"], vec["fields"])
    uncompiled = decode_frame(vec["frame"], compiled=False)
    assert uncompiled == frame


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_firmware_codec_matches_vector(vec: dict[str, Any]) -> None:
    assert wire.encode(vec["type"], vec["seq"], vec["fields"]) == vec["frame"]
    assert wire.decode(vec["frame"]) == (vec["type"], vec["seq"], vec["fields"])


@settings(max_examples=300, deadline=None)
@given(messages)
def test_host_encode_firmware_decode(msg: tuple[MsgType, int, dict[str, Any]]) -> None:
    mt, seq, fields = msg
    frame = encode_frame(mt, seq, fields)
    assert wire.decode(frame) == (mt, seq, fields)
    assert decode_frame(frame).fields == fields


@settings(max_examples=300, deadline=None)
@given(messages)
def test_firmware_encode_host_decode(msg: tuple[MsgType, int, dict[str, Any]]) -> None:
    mt, seq, fields = msg
    frame = wire.encode(mt, seq, fields)
    decoded = decode_frame(frame)
    assert (decoded.msg_type, decoded.seq, decoded.fields) == (mt, seq, fields)
    assert frame == encode_frame(mt, seq, fields)


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    host_code = fw_code = None
    try:
        decode_frame(data)
    except ProtocolError as exc:
        host_code = exc.code
    try:
        wire.decode(data)
    except wire.WireError as exc:
        fw_code = exc.code
    assert host_code == fw_code


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_mutated_frames_agree(msg: tuple[MsgType, int, dict[str, Any]], data: st.DataObject) -> None:
    mt, seq, fields = msg
    frame = bytearray(encode_frame(mt, seq, fields))
    pos = data.draw(st.integers(0, len(frame) - 1))
    frame[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    for candidate in (bytes(frame), bytes(frame[:cut])):
        try:
            host = decode_frame(candidate)
            host_result: Any = (host.msg_type, host.seq, host.fields)
        except ProtocolError as exc:
            host_result = exc.code
        try:
            fw_result: Any = wire.decode(candidate)
        except wire.WireError as exc:
            fw_result = exc.code
        assert host_result == fw_result


def _status_frame() -> bytes:
    return next(v["frame"] for v in VECTORS if v["name"] == "status")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (V + b"\x82", ErrorCode.TRUNCATED),
        (_status_frame()[:-1], ErrorCode.TRUNCATED),
        (_status_frame() + b"\x00", ErrorCode.MALFORMED),
        (b"\x09" + _status_frame()[1:], ErrorCode.BAD_VERSION),
        (V + b"\x55\x01\x00\x00\x00", ErrorCode.NOT_SUPPORTED),
        (V + b"\x01\x01\x00" + (MAX_FRAME).to_bytes(2, "little") + bytes(MAX_FRAME),
         ErrorCode.OVERSIZE),
        (V + b"\x05\x01\x00\x01\x00\x00", ErrorCode.TRUNCATED),  # SET_DEPTH with 1 byte
        (V + b"\x01\x01\x00\x04\x00\x01\x00\x00\x00", ErrorCode.MALFORMED),  # HELLO + 1 byte
        (V + b"\x0b\x1d\x5e\x01\x00\x90", ErrorCode.TRUNCATED),  # SET_KEY, 1 of 32 key bytes
        (V + b"\x0b\x1d\x5e\x21\x00" + bytes(33), ErrorCode.MALFORMED),  # SET_KEY + 1 byte
    ],
    ids=["short-header", "truncated", "trailing", "version", "unknown-type", "oversize",
         "short-payload", "long-payload", "short-fixed-bytes", "long-fixed-bytes"],
)
def test_defined_errors_on_both_sides(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as host:
        decode_frame(data)
    with pytest.raises(wire.WireError) as fw:
        wire.decode(data)
    assert host.value.code == code
    assert fw.value.code == code


def test_unknown_type_keeps_seq_for_the_nack() -> None:
    data = V + b"\x55\x34\x12\x00\x00"
    with pytest.raises(wire.WireError) as fw:
        wire.decode(data)
    assert (fw.value.msg_type, fw.value.seq) == (0x55, 0x1234)
    with pytest.raises(ProtocolError) as host:
        decode_frame(data)
    assert (host.value.msg_type, host.value.seq) == (0x55, 0x1234)


def test_bad_utf8_string_is_malformed() -> None:
    good = next(v for v in VECTORS if v["name"] == "info")["frame"]
    bad = bytearray(good)
    idx = bytes(good).index(b"ScalpPen")
    bad[idx] = 0xFF
    with pytest.raises(ProtocolError) as host:
        decode_frame(bytes(bad))
    with pytest.raises(wire.WireError) as fw:
        wire.decode(bytes(bad))
    assert host.value.code == fw.value.code == ErrorCode.MALFORMED


def test_encoding_out_of_range_field_is_refused() -> None:
    with pytest.raises(ProtocolError) as host:
        encode_frame(MsgType.SET_DEPTH, 1, {"depth_um": 70000})
    assert host.value.code == ErrorCode.MALFORMED
    with pytest.raises(wire.WireError) as fw:
        wire.encode(wire.T_SET_DEPTH, 1, {"depth_um": 70000})
    assert fw.value.code == wire.E_MALFORMED


def test_protocol_doc_tables_are_current() -> None:
    from scalppen_protocol import docgen

    assert docgen.DOC.read_text() == docgen.current_doc()


def test_firmware_utf8_check_equals_cpython_decode() -> None:
    # MicroPython's bytes.decode() accepts overlong forms and code points above
    # U+10FFFF; the generated codec checks UTF-8 itself, exactly as CPython decodes.
    import itertools
    import random

    def cpython_ok(b: bytes) -> bool:
        try:
            b.decode()
        except UnicodeDecodeError:
            return False
        return True

    cases = [bytes(p) for p in itertools.product(range(256), repeat=2)]
    rnd = random.Random(7)
    leads = [0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
    for _ in range(60_000):
        n = rnd.randint(1, 6)
        b = bytearray(rnd.choice([*leads, rnd.randrange(256)]) if rnd.random() < 0.4
                      else rnd.randrange(0x80, 0xC0) for _ in range(n))
        cases.append(bytes(b))
    cases += [b"\xc1\xa9", b"\xe0\x82\xac", b"\xf4\x90\x80\x80", b"\xed\xa0\x80", b"\xf5\x80\x80\x80",
              "ScalpPen é ✓ 𝄞".encode()]
    bad = [b for b in cases if wire._utf8_ok(b) != cpython_ok(b)]
    assert not bad, bad[:5]
    assert not wire._utf8_ok(b"\xc1\xa9") and wire._utf8_ok("é✓𝄞".encode())


@pytest.mark.parametrize("compiled", [True, False])
def test_a_text_cut_at_the_end_of_the_payload_is_truncated_in_both_codecs(compiled: bool) -> None:
    # INFO ends with a text: its length byte says one more than the payload holds.
    # construct's compiled parser would read what is left without a word.
    frame = bytearray(next(v for v in VECTORS if v["name"] == "info")["frame"])
    frame[-len(b"0.2.0") - 1] += 1  # update_version's length byte
    with pytest.raises(ProtocolError) as err:
        decode_frame(bytes(frame), compiled=compiled)
    assert err.value.code == ErrorCode.TRUNCATED
    with pytest.raises(wire.WireError) as fw:
        wire.decode(bytes(frame))
    assert fw.value.code == wire.E_TRUNCATED
