"""Fuzz targets: plain functions over one ``bytes`` input.

Shared by the hypothesis properties (tests/fuzz/test_fuzz_decoders.py), the long
run (bench/fuzz/fuzz_decoders.py) and the coverage-guided harness
(bench/fuzz/atheris_fuzz.py). A target returns a short outcome label ("ok",
"err:MALFORMED", "nack:PERMIT_BAD_TAG", ...) and raises when a property breaks:
an AssertionError, or whatever escaped the code under test.

Targets (``TARGETS``) and their input layouts:

- ``wire_decode`` (a): the frame. ``pen.wire.decode`` returns or raises
  ``wire.WireError`` with a decoder code; an accepted frame re-encodes to its bytes.
- ``handler`` (b): byte 0 = flags, the rest = the frame. Flags: bits 0-1 the pen
  (``TEMPLATES``), bit 2 authenticated link, bit 3 bench handler (UART), bit 4
  re-sign an ARM permit with the rig's key (the fuzzer cannot forge HMAC tags, so
  this lets it reach the permit checks behind the tag), bit 5 the rest is a
  sequence of frames (``split_chunks``) handled in turn by the same pen. See
  ``handle_checked``.
- ``fw_reassembler`` / ``host_reassembler`` (c, d): byte 0 bit 0 = a small
  reassembler (``SMALL_FRAME``) instead of ``MAX_FRAME``; the rest = fragments,
  each a length byte and that many bytes (``split_chunks``).
- ``fw_deframer`` / ``host_deframer`` (c, d): byte 0 = the feed size (0 = all at
  once), the rest = the serial byte stream.
- ``host_decode`` (d): the frame. ``scalppen_protocol.codec.decode_frame`` raises
  only ``scalppen_protocol.errors.ProtocolError`` (it has no subclasses), compiled
  and reference parsers agree, an accepted frame re-encodes to its bytes.
- ``differential`` (e): the frame. Both codecs give the same verdict: the same
  error code (and header type/seq), or the same type, seq and fields.

``mutate`` and the corpus builders turn valid encoded messages of every type into
structure-aware inputs; ``seed_inputs`` gives each target's seeds in its layout.
"""

from __future__ import annotations

import copy
import random
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT / "tests" / "firmware", ROOT / "firmware", ROOT / "protocol", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import rig  # noqa: E402
from memfs import MemFs  # noqa: E402
from pen import link, wire  # noqa: E402
from pen.handler import BENCH_TYPES  # noqa: E402
from pen.permit import sign  # noqa: E402
from pen.store import DISK_SIZE, REC_SIZE, crc, unpack_record  # noqa: E402

from scalppen_protocol import fragment as hfrag  # noqa: E402
from scalppen_protocol import serial_framing as hser  # noqa: E402
from scalppen_protocol.codec import decode_frame, encode_frame  # noqa: E402
from scalppen_protocol.codes import ErrorCode  # noqa: E402
from scalppen_protocol.errors import ProtocolError  # noqa: E402
from scalppen_protocol.vectors import load as load_vectors  # noqa: E402

rig.board_doc(str(ROOT / "hardware" / "boards" / "pen-s3-revb.json"))

FRAME_ERRORS = frozenset({wire.E_TRUNCATED, wire.E_OVERSIZE, wire.E_BAD_VERSION,
                          wire.E_NOT_SUPPORTED, wire.E_MALFORMED})
FRAGMENT_ERRORS = frozenset({wire.E_TRUNCATED, wire.E_OUT_OF_ORDER,
                             wire.E_DUPLICATE_FRAGMENT, wire.E_OVERSIZE})
SERIAL_ERRORS = frozenset({wire.E_BAD_COBS, wire.E_TRUNCATED, wire.E_BAD_CRC, wire.E_OVERSIZE})
SMALL_FRAME = 100
TEMPLATES = ("idle", "armed", "running", "unkeyed")
F_AUTH, F_BENCH, F_RESIGN, F_SEQUENCE = 4, 8, 16, 32
# Requests whose refusal the core logs (one K_PERMIT_REFUSED / K_START_REFUSED record,
# or, for a repeat within the minute, one more in the pen's count of repeats).
LOGGED_REFUSALS = frozenset({wire.T_ARM, wire.T_SET_DEPTH, wire.T_SET_SPEED, wire.T_START,
                             wire.T_SET_KEY, wire.T_SET_TIME, wire.T_LOG_ACK})
REFUSAL_KINDS = frozenset({wire.K_PERMIT_REFUSED, wire.K_START_REFUSED})
SERVED = frozenset({wire.T_HELLO, wire.T_GET_STATUS, wire.T_SET_TIME, wire.T_LOG_READ,
                    wire.T_GET_WEAR, wire.T_STOP}) | LOGGED_REFUSALS
RESPONSES = {wire.T_HELLO: wire.T_INFO, wire.T_GET_STATUS: wire.T_STATUS,
             wire.T_LOG_READ: wire.T_LOG_PAGE, wire.T_GET_WEAR: wire.T_WEAR}


def code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


# ---- input encodings ----------------------------------------------------------------

def split_chunks(data: bytes) -> list[bytes]:
    """Length-prefixed chunks: a length byte, then that many bytes (the last may be short)."""
    out, i = [], 0
    while i < len(data):
        n = data[i]
        out.append(bytes(data[i + 1:i + 1 + n]))
        i += 1 + n
    return out


def join_chunks(chunks: list[bytes]) -> bytes:
    """Inverse of ``split_chunks`` (chunks of at most 255 bytes)."""
    return b"".join(bytes((len(c),)) + c for c in chunks)


INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x20, 0x40)
TYPES = (*sorted(wire.SPECS), 0x00, 0x0C, 0x55, 0xFF)


def _pos(a: int, n: int) -> int:
    # position a/256 of the way into n: every byte of a long frame is reachable
    return a * n // 256


def _apply(buf: bytearray, op: int, a: int, b: int) -> None:
    n = len(buf)
    kind = op % 10
    if kind == 2:
        buf.insert(_pos(a, n + 1), b)
    elif kind == 7:
        if n >= wire.HEADER_SIZE:
            buf[4:6] = struct.pack("<H", (n - wire.HEADER_SIZE) & 0xFFFF)
    elif n == 0:
        return
    elif kind == 0:
        buf[_pos(a, n)] ^= 1 << (b % 8)
    elif kind == 1:
        buf[_pos(a, n)] = b
    elif kind == 3:
        p = _pos(a, n)
        del buf[p:p + b % 8 + 1]
    elif kind == 4:
        del buf[_pos(a, n + 1):]
    elif kind == 5:
        p = _pos(a, n)
        buf[p:p] = buf[p:p + b % 16 + 1]
    elif kind == 6:
        buf[_pos(a, n)] = INTERESTING[b % len(INTERESTING)]
    elif kind == 8 and n > 1:
        buf[1] = TYPES[b % len(TYPES)]  # the payload of one type under another's header
    elif kind == 9:
        buf.extend(bytes((b,)) * (a % 8 + 1))


def mutate(data: bytes, ops: bytes) -> bytes:
    """Apply byte mutations, 3 bytes of ``ops`` each (kind, where, value).

    Kinds (``op % 10``): flip a bit, set a byte, insert a byte, delete 1-8 bytes,
    truncate, duplicate a slice, set an interesting byte, rewrite the header's
    payload length to fit (so the payload decoder is reached), change the message
    type, append bytes.
    """
    buf = bytearray(data)
    for i in range(0, len(ops) - 2, 3):
        _apply(buf, ops[i], ops[i + 1], ops[i + 2])
    return bytes(buf)


def mutate_fragments(frags: list[bytes], ops: bytes) -> list[bytes]:
    """Fragment-list mutations, 3 bytes of ``ops`` each: drop, duplicate, swap,
    flip a bit, set the control byte, set the index byte."""
    out = list(frags)
    for i in range(0, len(ops) - 2, 3):
        if not out:
            break
        op, a, b = ops[i], ops[i + 1] % len(out), ops[i + 2]
        kind = op % 6
        if kind == 0:
            del out[a]
        elif kind == 1:
            out.insert(a, out[a])
        elif kind == 2:
            j = b % len(out)
            out[a], out[j] = out[j], out[a]
        elif kind == 3:
            out[a] = mutate(out[a], bytes((0, b, op)))
        elif kind == 4 and out[a]:
            out[a] = bytes((b,)) + out[a][1:]
        elif kind == 5 and len(out[a]) > 1:
            out[a] = out[a][:1] + bytes((b,)) + out[a][2:]
    return out


def split_frame(frame: bytes, mtu: int, counter: int) -> list[bytes]:
    """Fragments of ``frame`` at ``mtu`` like ``link.fragment``, but of any size (to
    reach OVERSIZE) and of an empty frame too."""
    size = max(1, mtu - 5)
    count = max(1, (len(frame) + size - 1) // size)
    out = []
    for i in range(count):
        control = (counter & 0x3F) | (0x80 if i == 0 else 0) | (0x40 if i == count - 1 else 0)
        out.append(bytes((control, i & 0xFF)) + frame[i * size:(i + 1) * size])
    return out


def fragment_input(frames: list[bytes], mtu: int, ops: bytes, small: bool) -> bytes:
    """A ``*_reassembler`` input: the frames fragmented at ``mtu`` (23..257, counters
    1, 2, ...), the fragment list mutated by ``ops``."""
    frags: list[bytes] = []
    for i, frame in enumerate(frames):
        frags += split_frame(frame, mtu, i + 1)
    return bytes((1 if small else 0,)) + join_chunks(mutate_fragments(frags, ops))


def serial_input(frames: list[bytes], ops: bytes, feed: int) -> bytes:
    """A ``*_deframer`` input: the frames as serial packets, the stream mutated."""
    stream = b"".join(hser.encode_packet(f) for f in frames)  # = link's (table CRC: faster)
    return bytes((feed & 0xFF,)) + mutate(stream, ops)


# ---- recipes: a few bytes -> one structure-aware input --------------------------------
# One byte string drawn by the fuzzer (hypothesis) picks valid frames, how they are
# carried and how they are damaged: a single draw per example keeps the generation
# cheap enough for 100,000 examples a target.

def _pick(frames: list[bytes], r: bytes, i: int) -> bytes:
    return frames[int.from_bytes(r[i:i + 2].ljust(2, b"\0"), "little") % len(frames)]


def recipe_frame(r: bytes) -> bytes:
    """Bytes 0-1 a frame of ``corpus()``, the rest its ``mutate`` ops."""
    return mutate(_pick(corpus(), r, 0), r[2:])


def recipe_handler(r: bytes) -> bytes:
    """A ``handler`` input: byte 0 the flags; with the sequence flag, byte 1 how many
    requests (2-6), one byte each picks a ``request_frames()`` frame, 3 bytes each
    of the rest mutate them in turn (mostly valid sessions: ARM, SET_DEPTH, START,
    STOP...); else byte 1 odd: a ``request_frames()`` frame (byte 2), even: a
    ``corpus()`` frame (bytes 2-3), the rest its ``mutate`` ops."""
    r = r.ljust(4, b"\0")
    if r[0] & F_SEQUENCE:
        n = 2 + r[1] % 5
        picks = r[2:2 + n].ljust(n, b"\0")
        ops = r[2 + n:]
        reqs = [mutate(_pick(request_frames(), bytes((p,)), 0), ops[3 * i:3 * i + 3])
                for i, p in enumerate(picks)]
        return bytes((r[0] & 0x3F,)) + join_chunks(reqs)
    frame = mutate(_pick(request_frames(), r, 2), r[4:]) if r[1] & 1 else recipe_frame(r[2:])
    return bytes((r[0] & 0x1F,)) + frame


def _recipe_frames(r: bytes) -> tuple[list[bytes], bytes]:
    # byte 0: bits 0-1 how many frames - 1 (1..3), bits 4-6 == 0: add a long frame
    # of (bytes 1-2 % 4201) copies of byte 3; then 2 bytes a corpus frame each; the
    # rest: mutation ops
    r = r.ljust(4, b"\0")
    n = (r[0] & 3) % 3 + 1
    frames = [_pick(corpus(), r, 4 + 2 * i) for i in range(n)]
    if not r[0] & 0x70:
        size = int.from_bytes(r[1:3], "little") % 4201
        frames.append(bytes((r[3],)) * size)
    return frames, r[4 + 2 * n:]


def recipe_fragments(r: bytes) -> bytes:
    """A ``*_reassembler`` input: byte 0 small reassembler (bit 7), byte 1 the MTU
    (23..257), then ``_recipe_frames``."""
    head = r[:2].ljust(2, b"\0")
    frames, ops = _recipe_frames(r[2:])
    return fragment_input(frames, 23 + head[1] % 235, ops, bool(head[0] & 0x80))


def recipe_serial(r: bytes) -> bytes:
    """A ``*_deframer`` input: byte 0 the feed size, then ``_recipe_frames``."""
    frames, ops = _recipe_frames(r[1:])
    return serial_input(frames, ops, r[0] if r else 0)


# ---- corpus of valid frames -------------------------------------------------------------

_RANGES = {"B": (0, 0xFF), "b": (-0x80, 0x7F), "H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF),
           "I": (0, 0xFFFFFFFF), "L": (0, 0xFFFFFFFF)}
_TEXT = "ScalpPen-0123 abc\u00e9\u00df\u20ac\U0001f600\u00a0"


def _fmt_codes(fmt: str) -> list[tuple[str, int]]:
    out, digits = [], ""
    for ch in fmt[1:]:
        if ch.isdigit():
            digits += ch
        else:
            out.append((ch, int(digits or "1")))
            digits = ""
    return out


def _int(code: str, rng: random.Random) -> int:
    lo, hi = _RANGES[code]
    if rng.random() < 0.3:
        return rng.choice((lo, hi, max(lo, 0), min(hi, 1), hi - 1))
    return rng.randint(lo, hi)


def random_fields(spec: Any, rng: random.Random) -> dict[str, Any]:
    """Random valid fields for a ``wire.SPECS`` payload spec (boundary values often)."""
    fields: dict[str, Any] = {}
    for seg in spec:
        if seg[0] == "f":
            for name, (code, count) in zip(seg[2], _fmt_codes(seg[1]), strict=True):
                fields[name] = rng.randbytes(count) if code == "s" else _int(code, rng)
        elif seg[0] == "s":
            fields[seg[1]] = "".join(rng.choice(_TEXT) for _ in range(rng.randint(0, 24)))
        elif seg[0] == "a":
            item = (("f", seg[2], seg[3]),)
            fields[seg[1]] = [random_fields(item, rng) for _ in range(rng.randint(0, 12))]
        else:
            fields[seg[1]] = random_fields(seg[2], rng)
    return fields


_cache: dict[str, Any] = {}


def corpus() -> list[bytes]:
    """Valid frames of every message type: the golden vectors, then 12 random
    messages of each type (deterministic), then ``request_frames()``."""
    if "corpus" not in _cache:
        rng = random.Random(20240601)
        frames = [bytes(v["frame"]) for v in load_vectors()]
        for t in sorted(wire.SPECS):
            for _ in range(12):
                frames.append(wire.encode(t, rng.randint(0, 0xFFFF), random_fields(wire.SPECS[t], rng)))
        _cache["corpus"] = frames + request_frames()
    return _cache["corpus"]


def _permit(depth: int, duration: int, issued: int, expires: int, nonce: bytes) -> dict[str, Any]:
    p = {"max_depth_um": depth, "max_duration_s": duration, "issued_at": issued,
         "expires_at": expires, "nonce": nonce, "patient": bytes(8)}
    p["tag"] = sign(rig.KEY, p)
    return p


def request_frames() -> list[bytes]:
    """Requests that make sense to the rig's pens: permits signed with its key (fresh,
    replayed, expired, early, over the limits), depths on and off the grid, ..."""
    if "requests" not in _cache:
        _cache["requests"] = _request_frames()
    return _cache["requests"]


def _request_frames() -> list[bytes]:
    t0 = rig.T0
    reqs: list[tuple[int, dict[str, Any]]] = [
        (wire.T_HELLO, {"proto_version": 1, "caps": 0x3F}), (wire.T_GET_STATUS, {}),
        (wire.T_GET_WEAR, {}), (wire.T_START, {}), (wire.T_STOP, {}),
        (wire.T_SET_TIME, rig.signed_time(t0 + 60)), (wire.T_SET_TIME, rig.signed_time(0)),
        (wire.T_LOG_READ, {"from_seq": 0, "max_records": 160}),
        (wire.T_LOG_READ, {"from_seq": 3, "max_records": 255}),
        (wire.T_SET_KEY, {"key": bytes(range(40, 72))}), (wire.T_SET_KEY, {"key": bytes(32)}),
    ]
    reqs += [(wire.T_SET_DEPTH, {"depth_um": d}) for d in (0, 250, 500, 1000, 1100, 1250, 1500, 2000)]
    reqs += [(wire.T_SET_SPEED, {"level": n}) for n in (0, 1, 2, 3, 4, 255)]
    permits = [(1000, 600, t0 - 10, t0 + 3600), (500, 900, t0 - 10, t0 + 60),
               (1500, 1, t0, t0 + 1), (1750, 600, t0, t0 + 3600), (250, 0, t0, t0 + 3600),
               (1000, 901, t0, t0 + 3600), (1000, 600, t0 - 7200, t0 - 3600),
               (1000, 600, t0 + 1000, t0 + 5000), (0, 600, t0, t0 + 3600)]
    for i, (depth, dur, issued, expires) in enumerate(permits):
        reqs.append((wire.T_ARM, _permit(depth, dur, issued, expires, b"fz" + bytes((i,)) * 6)))
    reqs.append((wire.T_ARM, _permit(1000, 600, t0 - 10, t0 + 3600, b"N\x01" + bytes(6))))
    # after the ones _SESSION names: LOG_ACK (mutations make the bad tags)
    reqs += [(wire.T_LOG_ACK, rig.signed_ack(3)), (wire.T_LOG_ACK, rig.signed_ack(1 << 20))]
    return [wire.encode(t, i + 1, f) for i, (t, f) in enumerate(reqs)]


# ARM (a fresh valid permit), SET_DEPTH 1000, START, GET_STATUS, LOG_READ, STOP
_SESSION = (25, 14, 3, 1, 7, 4)


def seed_inputs(name: str) -> list[bytes]:
    """Seeds for ``name`` in its input layout, from ``corpus()``."""
    frames = corpus()
    if name == "handler":
        reqs = request_frames()
        out = [bytes((flags,)) + f for flags in (4, 5, 6, 7, 20, 21) for f in reqs]
        session = [reqs[i] for i in _SESSION]
        out += [bytes((flags,)) + join_chunks(session) for flags in (36, 37, 38, 39, 52)]
        return out + [bytes((i & 0x1F,)) + f for i, f in enumerate(frames[:60])]
    if name in ("fw_reassembler", "host_reassembler"):
        out = [fragment_input([f], 23 + (i * 37) % 235, b"", False) for i, f in enumerate(frames)]
        return out + [fragment_input(frames[i:i + 3], 23, b"", True) for i in range(0, 30, 3)]
    if name in ("fw_deframer", "host_deframer"):
        return [serial_input(frames[i:i + 4], b"", i % 7) for i in range(0, len(frames), 4)]
    return list(frames)


# ---- (a) firmware frame decoder -----------------------------------------------------

def _check_frame_error(data: bytes, code: int, msg_type: Any, seq: Any) -> None:
    assert code in FRAME_ERRORS, code
    readable = wire.HEADER_SIZE <= len(data) <= wire.MAX_FRAME
    if readable:
        assert (msg_type, seq) == (data[1], data[2] | data[3] << 8), (msg_type, seq)
    else:
        assert msg_type is None and seq is None, (msg_type, seq)


def fw_verdict(data: bytes) -> tuple[Any, ...]:
    """("ok", type, seq, fields) or ("err", code, msg_type, seq) from ``wire.decode``."""
    try:
        t, seq, fields = wire.decode(data)
    except wire.WireError as e:
        _check_frame_error(data, e.code, e.msg_type, e.seq)
        return ("err", e.code, e.msg_type, e.seq)
    return ("ok", t, seq, fields)


def wire_decode(data: bytes) -> str:
    """(a) ``wire.decode``: WireError or a frame that re-encodes to the same bytes."""
    v = fw_verdict(data)
    if v[0] == "err":
        return "err:" + code_name(v[1])
    assert wire.encode(v[1], v[2], v[3]) == bytes(data)
    return "ok"


# ---- (b) firmware request handling ----------------------------------------------------

_SKIP = ("board", "store")


_LEAVES = frozenset({type(None), bool, int, float, str, bytes})


def _plain(v: Any) -> Any:
    t = type(v)
    if t in _LEAVES:
        return v
    if t is list or t is tuple:
        return [x if type(x) in _LEAVES else _plain(x) for x in v]
    if t is bytearray:
        return bytes(v)
    if isinstance(v, dict):
        return {k: x if type(x) in _LEAVES else _plain(x) for k, x in v.items()}
    if hasattr(v, "__dict__"):
        return {k: _plain(x) for k, x in vars(v).items() if k not in _SKIP}
    return repr(v)


def pen_state(h: Any) -> dict[str, Any]:
    """Everything a request could change: the handler's link state, every attribute
    of the pen and of its controllers (state, fault, permit, depth setting and
    target, speed, session, clock, pairing window, cartridge, events...), the
    store's counters (key, nonce list, nonce floor, ...), its log position, and the
    bytes of every file of the fs."""
    store = h.pen.store
    pen = _plain(h.pen)
    reps = pen.pop("_reps")  # refusals counted this minute: compared as a sum
    pen.pop("_rep_t0")
    return {
        "handler": {"hello": h.hello, "ev_seq": h._ev_seq, "bench": h.bench, "caps": h.caps},
        "pen": pen,
        "counted": sum(reps.values()),
        "counters": _plain(store.c),
        "log": {"segs": list(store.segs), "cur_count": store.cur_count,
                "next_seq": store.next_seq},
        "files": {n: bytes(d) for n, d in store.fs.files.items()},
    }


def _is_segment(name: str) -> bool:
    return name.startswith("log") and name.endswith(".bin")


def new_log_records(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The records appended to the log between two ``pen_state`` snapshots. Every
    other file must be unchanged; a segment may only grow, be new, or be the oldest
    one rotated out."""
    old_files, new_files = before["files"], after["files"]
    added = b""
    for name in sorted(set(old_files) | set(new_files)):
        old, new = old_files.get(name), new_files.get(name)
        if old == new:
            continue
        assert _is_segment(name), "file changed: " + name
        if new is None:
            assert name == f"log{before['log']['segs'][0]:08d}.bin", "segment removed: " + name
        elif old is None:
            added += new
        else:
            assert new.startswith(old), "segment rewritten: " + name
            added += new[len(old):]
    assert len(added) % DISK_SIZE == 0, len(added)
    records = []
    for off in range(0, len(added), DISK_SIZE):
        body = added[off:off + REC_SIZE]
        assert struct.unpack_from("<I", added, off + REC_SIZE)[0] == crc(body)
        records.append(unpack_record(body))
    return records


def assert_rejected_unchanged(before: dict[str, Any], after: dict[str, Any], refusals: int,
                              req_type: int, code: int) -> None:
    """A rejected frame changes no state. Precisely: the handler, the pen (all of
    it) and the counters are equal; the files are equal except that the log may
    gain exactly ``refusals`` records (the core logs a refused ARM / SET_DEPTH /
    SET_SPEED / START / SET_KEY as K_PERMIT_REFUSED or K_START_REFUSED with the
    NACK's code and the request type in ``flags``; nothing else logs); the log's
    next sequence number moves past them and nothing else in the store moves."""
    for part in ("handler", "pen", "counters"):
        assert before[part] == after[part], part
    records = new_log_records(before, after)
    counted = after["counted"] - before["counted"]
    assert counted in (0, 1) and len(records) + counted == refusals, (records, counted)
    seq = before["log"]["next_seq"]
    for rec in records:
        assert rec["kind"] in REFUSAL_KINDS and rec["code"] == code, rec
        assert rec["flags"] == req_type and rec["seq"] == seq, rec
        seq += 1
    assert after["log"]["next_seq"] == seq
    if not records:
        assert after["log"] == before["log"]


def _template(name: str) -> Any:
    key = "tpl:" + name
    if key not in _cache:
        r = rig.Rig(MemFs(), key=None, clock=0) if name == "unkeyed" else rig.Rig(MemFs())
        if name == "idle":
            r.pen.open_pairing()
        elif name == "armed":
            assert r.arm() == 0
        elif name == "running":
            assert r.start_session(1000, 600) == 0
            r.run(1500)
            assert r.pen.state == wire.S_RUNNING
        _cache[key] = r.h
    return _cache[key]


def resign(frame: bytes) -> bytes:
    """An ARM frame with its permit's tag recomputed with the rig's key."""
    try:
        t, seq, f = wire.decode(frame)
    except wire.WireError:
        return frame
    if t != wire.T_ARM:
        return frame
    f["tag"] = sign(rig.KEY, f)
    return wire.encode(t, seq, f)


def _check_nack(resp: tuple[Any, ...], req_type: int, seq: int, code: int | None) -> None:
    rt, rseq, rf = resp
    assert rt == wire.T_NACK and rseq == seq and rf["req_type"] == req_type, resp
    assert rf["error"] != 0 and (code is None or rf["error"] == code), resp


def _check_accepted(resp: tuple[Any, ...], t: int, req: dict[str, Any]) -> None:
    rt, _, rf = resp
    assert rt == RESPONSES.get(t, wire.T_ACK), resp
    if rt == wire.T_ACK:
        assert rf["req_type"] == t, resp
    if rt == wire.T_LOG_PAGE:
        assert len(rf["records"]) <= min(req["max_records"], wire.MAX_PAGE_RECORDS)


def handle_checked(h: Any, frame: bytes, authenticated: bool) -> str:
    """One request through ``h.handle``: exactly one response frame that decodes,
    answering the request's seq; a frame that does not decode gets NACK(the
    decoder's code); a rejected frame (decode error or NACK) changes no state
    (``assert_rejected_unchanged``); an accepted one gets its response type."""
    before = pen_state(h)
    out = h.handle(frame, authenticated)
    assert isinstance(out, list) and len(out) == 1, out
    resp = wire.decode(out[0])
    after = pen_state(h)
    try:
        t, seq, fields = wire.decode(frame)
    except wire.WireError as e:
        _check_nack(resp, (e.msg_type or 0) & 0xFF, e.seq or 0, e.code)
        assert_rejected_unchanged(before, after, 0, 0, 0)
        return "decode-nack:" + code_name(e.code)
    assert resp[1] == seq, resp
    refused_bench = h.bench and t not in BENCH_TYPES
    if resp[0] == wire.T_NACK:
        expect = (wire.E_NOT_AUTHORIZED if refused_bench
                  else None if t in SERVED else wire.E_NOT_SUPPORTED)
        _check_nack(resp, t, seq, expect)
        logged = 1 if t in LOGGED_REFUSALS and not refused_bench else 0
        assert_rejected_unchanged(before, after, logged, t, resp[2]["error"])
        return "nack:" + code_name(resp[2]["error"])
    assert t in SERVED and not refused_bench, (t, resp)
    _check_accepted(resp, t, fields)
    return f"ok:{t}"


def check_handler(frames: list[bytes], template: str = "idle", authenticated: bool = True,
                  bench: bool = False) -> str:
    """(b) ``handle_checked`` for each frame in turn, on one copy of a prepared pen
    (so a sequence drives it through its states); returns the last outcome."""
    tpl = _template(template)
    board = tpl.pen.board  # configuration, never changed: shared, not copied
    h = copy.deepcopy(tpl, {id(board): board})
    h.bench = bench
    label = "none"
    for frame in frames:
        label = handle_checked(h, frame, authenticated)
    return label


def handler(data: bytes) -> str:
    """(b) with the flags byte layout (see the module docstring)."""
    flags = data[0] if data else 0
    rest = bytes(data[1:])
    frames = split_chunks(rest) if flags & F_SEQUENCE else [rest]
    if flags & F_RESIGN:
        frames = [resign(f) for f in frames]
    return check_handler(frames, TEMPLATES[flags & 3], bool(flags & F_AUTH), bool(flags & F_BENCH))


# ---- (c, d) link layers -----------------------------------------------------------------

def check_reassembler(r: Any, error: type[Exception], frags: list[bytes]) -> str:
    """Feed fragments: each gives None, a frame of 1..max_frame bytes, or ``error``
    with a fragment code; the partial message never exceeds max_frame bytes or 256
    fragments."""
    frames = 0
    for frag in frags:
        try:
            out = r.feed(frag)
        except error as e:
            assert e.code in FRAGMENT_ERRORS, e.code  # type: ignore[attr-defined]
            out = None
        if out is not None:
            assert type(out) is bytes and 1 <= len(out) <= r.max_frame, len(out)
            frames += 1
        assert r._size == sum(len(p) for p in r._parts) <= r.max_frame, r._size
        assert len(r._parts) == r._next <= 256 and (r._tag >= 0) == (r._next > 0)
    return "frames" if frames else "none"


def _reassembler_args(data: bytes) -> tuple[int, list[bytes]]:
    small = bool(data) and bool(data[0] & 1)
    return (SMALL_FRAME if small else wire.MAX_FRAME), split_chunks(bytes(data[1:]))


def fw_reassembler(data: bytes) -> str:
    """(c) ``link.Reassembler.feed`` over a sequence of fragments."""
    max_frame, frags = _reassembler_args(data)
    return check_reassembler(link.Reassembler(max_frame), wire.WireError, frags)


def host_reassembler(data: bytes) -> str:
    """(d) ``scalppen_protocol.fragment.Reassembler.feed`` over a sequence of fragments."""
    max_frame, frags = _reassembler_args(data)
    return check_reassembler(hfrag.Reassembler(max_frame), ProtocolError, frags)


def _norm(items: list[Any]) -> list[Any]:
    return [i if isinstance(i, bytes) else ("err", i.code) for i in items]


def check_deframer(make: Callable[[], Any], error: type[Exception], max_packet: int,
                   stream: bytes, feed: int) -> str:
    """Feed ``stream`` in pieces of ``feed`` bytes: only frames and ``error`` items
    (with a serial code), at most one per delimiter, each frame's packet intact; the
    buffer stays within one packet (``max_packet``: COBS of a maximal frame + CRC);
    the result does not depend on how the stream was split."""
    d = make()
    items: list[Any] = []
    step = feed or len(stream) or 1
    for i in range(0, len(stream), step):
        got = d.feed(stream[i:i + step])
        assert isinstance(got, list), got
        items += got
        assert len(d._buf) <= max_packet and not (d._overflow and d._buf), len(d._buf)
    assert len(items) <= stream.count(0)
    for item in items:
        if isinstance(item, error):
            assert item.code in SERIAL_ERRORS, item.code  # type: ignore[attr-defined]
        else:
            # a frame can exceed MAX_FRAME (by up to 17 bytes): the packet limit is
            # the COBS size of a maximal frame, and zero bytes cost no overhead
            assert type(item) is bytes and 1 <= len(item) <= max_packet - 3, item
    assert _norm(make().feed(stream)) == _norm(items)
    return "frames" if any(isinstance(i, bytes) for i in items) else "none"


def fw_deframer(data: bytes) -> str:
    """(c) ``link.Deframer.feed`` (COBS + CRC-16) over a byte stream."""
    feed = data[0] if data else 0
    return check_deframer(link.Deframer, wire.WireError, link.MAX_PACKET, bytes(data[1:]), feed)


def host_deframer(data: bytes) -> str:
    """(d) ``scalppen_protocol.serial_framing.Deframer.feed`` over a byte stream."""
    feed = data[0] if data else 0
    return check_deframer(hser.Deframer, ProtocolError, hser.MAX_PACKET, bytes(data[1:]), feed)


# ---- (d) host frame decoder, (e) differential -------------------------------------------

def host_verdict(data: bytes, compiled: bool = True) -> tuple[Any, ...]:
    """("ok", type, seq, fields) or ("err", code, msg_type, seq) from ``decode_frame``;
    only ``ProtocolError`` may escape it."""
    try:
        fr = decode_frame(data, compiled=compiled)
    except ProtocolError as e:
        _check_frame_error(data, e.code, e.msg_type, e.seq)
        return ("err", int(e.code), e.msg_type, e.seq)
    return ("ok", int(fr.msg_type), fr.seq, fr.fields)


def host_decode(data: bytes) -> str:
    """(d) ``decode_frame``: ProtocolError or a frame that re-encodes to its bytes; the
    compiled and the reference (construct) parsers give the same verdict."""
    v = host_verdict(data)
    assert host_verdict(data, compiled=False) == v
    if v[0] == "err":
        return "err:" + code_name(v[1])
    assert encode_frame(v[1], v[2], v[3]) == bytes(data)
    return "ok"


def differential(data: bytes) -> str:
    """(e) both codecs: the same error code and header, or the same type, seq, fields."""
    host, fw = host_verdict(data), fw_verdict(data)
    assert host == fw, (host, fw)
    return "ok" if fw[0] == "ok" else "err:" + code_name(fw[1])


TARGETS: dict[str, Callable[[bytes], str]] = {
    "wire_decode": wire_decode,
    "handler": handler,
    "fw_reassembler": fw_reassembler,
    "fw_deframer": fw_deframer,
    "host_decode": host_decode,
    "host_reassembler": host_reassembler,
    "host_deframer": host_deframer,
    "differential": differential,
}
