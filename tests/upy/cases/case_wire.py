# The generated codec inside MicroPython: every golden vector decodes to its
# fields and encodes back to its exact bytes; every message type is covered.
import json
import os

from pen import wire


def _from_json(v):
    if isinstance(v, dict):
        if len(v) == 1 and "hex" in v:
            return bytes.fromhex(v["hex"])
        out = {}
        for k in v:
            out[k] = _from_json(v[k])
        return out
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    return v


def _vectors():
    out = []
    for name in sorted(os.listdir("/vec")):
        if name.endswith(".json"):
            with open("/vec/" + name) as f:
                out.append(json.load(f))
    return out


def test_round_trip_every_vector():
    n = 0
    for v in _vectors():
        frame = bytes.fromhex(v["frame"])
        fields = _from_json(v["fields"])
        t, seq, got = wire.decode(frame)
        assert t == v["type"] and seq == v["seq"], v["name"]
        assert got == fields, v["name"]
        assert wire.encode(t, seq, fields) == frame, v["name"]
        n += 1
    assert n >= 20


def test_every_message_type_has_a_vector():
    types = set(v["type"] for v in _vectors())
    for t in wire.SPECS:
        assert t in types, t


def test_malformed_frames():
    v = bytes([wire.PROTOCOL_VERSION])
    for bad, code in ((v + b"\x02", wire.E_TRUNCATED), (b"\x09\x02\x00\x00\x00\x00", wire.E_BAD_VERSION),
                      (v + b"\x70\x00\x00\x00\x00", wire.E_NOT_SUPPORTED),
                      (v + b"\x05\x01\x00\x01\x00\x00", wire.E_TRUNCATED)):
        try:
            wire.decode(bad)
            assert False, bad
        except wire.WireError as e:
            assert e.code == code, (bad, e.code)


def test_strings_must_be_strict_utf8():
    # MicroPython's bytes.decode() accepts overlong forms and code points above
    # U+10FFFF; the codec refuses them as CPython does (the host's verdict).
    info = None
    for v in _vectors():
        if v["type"] == wire.T_INFO:
            info = bytes.fromhex(v["frame"])
    assert info is not None and wire.decode(info)[0] == wire.T_INFO
    i = info.index(b"Sc")
    for bad in (b"\xc1\xa9", b"\xc0\x80", b"\xed\xa0", b"\xf5\x80"):
        try:
            wire.decode(info[:i] + bad + info[i + 2:])
            assert False, bad
        except wire.WireError as e:
            assert e.code == wire.E_MALFORMED, (bad, e.code)
