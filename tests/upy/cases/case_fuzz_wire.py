# Fuzzing inside MicroPython: a deterministic PRNG (no hypothesis here) damages
# valid frames (the golden vectors, requests the rig's pens understand) and drives
# them through wire.decode, Handler.handle and the link layer. Only WireError or a
# NACK may come back, never another exception, and a rejected frame (decode error
# or NACK) changes no state: the pen (every attribute), the handler, the counters
# and every file are equal, except one refusal record the core logs for a refused
# ARM / SET_DEPTH / SET_SPEED / START / SET_KEY (tests/fuzz/targets.py, same rule).
import json
import os
import struct

from memfs import MemFs
from pen import link, wire
from pen.handler import BENCH_TYPES
from pen.permit import sign
from pen.store import DISK_SIZE, REC_SIZE, crc, unpack_record
from rig import KEY, T0, Rig, board_doc, signed_ack, signed_time

board_doc("/boards/pen-s3-revb.json")

LOGGED = (wire.T_ARM, wire.T_SET_DEPTH, wire.T_SET_SPEED, wire.T_START, wire.T_SET_KEY,
          wire.T_SET_TIME, wire.T_LOG_ACK)
SERVED = LOGGED + (wire.T_HELLO, wire.T_GET_STATUS, wire.T_LOG_READ, wire.T_GET_WEAR,
                   wire.T_STOP)
RESPONSES = {wire.T_HELLO: wire.T_INFO, wire.T_GET_STATUS: wire.T_STATUS,
             wire.T_LOG_READ: wire.T_LOG_PAGE, wire.T_GET_WEAR: wire.T_WEAR}
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x20, 0x40)


class Rng:
    # xorshift32: the same sequence on every run and under CPython
    def __init__(self, seed):
        self.s = seed or 1

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n

    def bytes(self, n):
        return bytes([self.next() & 0xFF for _ in range(n)])


def _vector_frames():
    out = []
    for name in sorted(os.listdir("/vec")):
        if name.endswith(".json"):
            with open("/vec/" + name) as f:
                out.append(bytes.fromhex(json.load(f)["frame"]))
    return out


def _permit(depth, dur, issued, expires, nonce):
    p = {"max_depth_um": depth, "max_duration_s": dur, "issued_at": issued,
         "expires_at": expires, "nonce": nonce, "patient": bytes(8)}
    p["tag"] = sign(KEY, p)
    return p


def _requests():
    reqs = [(wire.T_HELLO, {"proto_version": 1, "caps": 0x3F}), (wire.T_GET_STATUS, {}),
            (wire.T_GET_WEAR, {}), (wire.T_START, {}), (wire.T_STOP, {}),
            (wire.T_SET_TIME, signed_time(T0 + 60)),
            (wire.T_LOG_ACK, signed_ack(3)), (wire.T_LOG_ACK, {"up_to_seq": 9, "tag": bytes(32)}),
            (wire.T_LOG_READ, {"from_seq": 0, "max_records": 160}),
            (wire.T_SET_KEY, {"key": bytes(range(40, 72))}), (wire.T_SET_DEPTH, {"depth_um": 500}),
            (wire.T_SET_DEPTH, {"depth_um": 1100}), (wire.T_SET_SPEED, {"level": 2}),
            (wire.T_SET_SPEED, {"level": 9})]
    for i, (d, s, iss, exp) in enumerate(((1000, 600, T0 - 10, T0 + 3600), (1750, 600, T0, T0 + 60),
                                          (500, 900, T0 - 7200, T0 - 3600), (250, 0, T0, T0 + 60))):
        reqs.append((wire.T_ARM, _permit(d, s, iss, exp, b"vm" + bytes([i]) * 6)))
    return [wire.encode(t, i + 1, f) for i, (t, f) in enumerate(reqs)]


def _pos(rng, n):
    return rng.below(n) if n else 0


def _mutate_once(buf, rng):
    n = len(buf)
    k = rng.below(10)
    if k == 2:
        p = _pos(rng, n + 1)
        buf[p:p] = bytes([rng.below(256)])
    elif k == 7:
        if n >= 6:
            buf[4:6] = struct.pack("<H", n - 6)
    elif k == 9:
        buf.extend(bytes([rng.below(256)]) * (1 + rng.below(8)))
    elif n == 0:
        return
    elif k == 0:
        buf[_pos(rng, n)] ^= 1 << rng.below(8)
    elif k == 1:
        buf[_pos(rng, n)] = rng.below(256)
    elif k == 3:
        p = _pos(rng, n)
        buf[p:p + 1 + rng.below(8)] = b""
    elif k == 4:
        buf[_pos(rng, n + 1):] = b""
    elif k == 5:
        p = _pos(rng, n)
        buf[p:p] = buf[p:p + 1 + rng.below(16)]
    elif k == 6:
        buf[_pos(rng, n)] = INTERESTING[rng.below(len(INTERESTING))]
    elif n > 1:
        types = sorted(wire.SPECS)
        buf[1] = types[rng.below(len(types))]


def mutate(frame, rng):
    buf = bytearray(frame)
    for _ in range(1 + rng.below(4)):
        _mutate_once(buf, rng)
    return bytes(buf)


def _resign(frame):
    # an ARM whose permit still decodes gets a valid tag: reach the checks behind it
    try:
        t, seq, f = wire.decode(frame)
    except wire.WireError:
        return frame
    if t != wire.T_ARM:
        return frame
    f["tag"] = sign(KEY, f)
    return wire.encode(t, seq, f)


def test_decode_returns_or_raises_wire_error():
    rng = Rng(20240601)
    seeds = _vector_frames() + _requests()
    ok = bad = 0
    for i in range(2000):
        if i % 8 == 7:
            frame = rng.bytes(rng.below(40))
        else:
            frame = mutate(seeds[rng.below(len(seeds))], rng)
        try:
            t, seq, f = wire.decode(frame)
        except wire.WireError as e:
            assert e.code in (wire.E_TRUNCATED, wire.E_OVERSIZE, wire.E_BAD_VERSION,
                              wire.E_NOT_SUPPORTED, wire.E_MALFORMED), e.code
            assert (e.msg_type is None) == (len(frame) < 6), (frame, e.msg_type)
            bad += 1
            continue
        assert wire.encode(t, seq, f) == frame, frame
        ok += 1
    assert ok > 150 and bad > 800, (ok, bad)


SKIP = ("board", "store", "_reps", "_rep_t0")  # the refusal counts: compared as a sum


def _plain(v):
    # plain loops, no generator expressions: each nested call costs C stack (the
    # pen's MicroPython task has 16 KiB; the unix port 80,000 bytes)
    if v is None or isinstance(v, (int, float, str, bytes)):
        return v
    if isinstance(v, bytearray):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        out = []
        for x in v:
            out.append(_plain(x))
        return out
    skip = ()
    d = v
    if not isinstance(v, dict):
        d = getattr(v, "__dict__", None)
        if d is None:
            return repr(v)
        skip = SKIP
    out = {}
    for k in d:
        if k not in skip:
            out[k] = _plain(d[k])
    return out


def _state(h):
    # files as (length, CRC-32), no copies of the log: two snapshots are live at
    # once next to three pens, inside the capped heap (tests/upy/runner.py)
    st = h.pen.store
    files = st.fs.files
    counted = 0
    for k in h.pen._reps:
        counted += h.pen._reps[k]
    return {"handler": [h.hello, h._ev_seq, h.bench], "pen": _plain(h.pen), "c": _plain(st.c),
            "counted": counted,
            "log": [list(st.segs), st.cur_count, st.next_seq],
            "files": _file_sums(files)}


def _file_sums(files):
    out = {}
    for n in files:
        out[n] = (len(files[n]), crc(files[n]))
    return out


def _new_records(before, after, files):
    bf, af = before["files"], after["files"]
    names = sorted(set(list(bf.keys()) + list(af.keys())))
    added = b""
    for name in names:
        old, new = bf.get(name), af.get(name)
        if old == new:
            continue
        assert name.startswith("log") and name.endswith(".bin"), "file changed: " + name
        if new is None:
            assert name == "log%08d.bin" % before["log"][0][0], "segment removed: " + name
            continue
        data = memoryview(files[name])
        start = 0
        if old is not None:
            start = old[0]
            assert new[0] > start and crc(data[:start]) == old[1], "segment rewritten: " + name
        added += bytes(data[start:])
    assert len(added) % DISK_SIZE == 0
    recs = []
    for off in range(0, len(added), DISK_SIZE):
        body = added[off:off + REC_SIZE]
        assert struct.unpack("<I", added[off + REC_SIZE:off + DISK_SIZE])[0] == crc(body)
        recs.append(unpack_record(body))
    return recs


# START refusals that end an armed permit (pen/core.py _DISARMING, PROTOCOL.md):
# the one change a NACK makes, IDLE and a DISARMED record.
DISARMING = (wire.E_CARTRIDGE_USED, wire.E_CARTRIDGE_WORN, wire.E_CARTRIDGE_EXPIRED,
             wire.E_CARTRIDGE_REINSERTED, wire.E_CARTRIDGE_INVALID,
             wire.E_CARTRIDGE_UNAUTHENTIC, wire.E_CARTRIDGE_UNDATED, wire.E_BATTERY_LOW,
             wire.E_BATTERY_UNKNOWN, wire.E_INTERVAL_LOCKOUT, wire.E_SESSION_CAP)


def _unchanged(h, before, after, refusals, t, code):
    assert before["handler"] == after["handler"], "handler"
    bp, ap = before["pen"], after["pen"]
    bp["start_detail"] = ap["start_detail"]  # the last START NACK's detail
    disarmed = t == wire.T_START and code in DISARMING and bp["state"] == wire.S_ARMED
    if disarmed:
        assert ap["state"] == wire.S_IDLE and ap["permit"] is None, "not disarmed"
        bp["state"], bp["permit"] = ap["state"], ap["permit"]
    assert bp == ap, "pen"
    assert before["c"] == after["c"], "counters"
    recs = _new_records(before, after, h.pen.store.fs.files)
    counted = after["counted"] - before["counted"]
    extra = 1 if disarmed else 0
    assert counted in (0, 1) and len(recs) + counted == refusals + extra, (t, code, recs, counted)
    for r in recs:
        if extra and r["kind"] == wire.K_DISARMED:
            assert r["code"] == code, r
            continue
        assert r["kind"] in (wire.K_PERMIT_REFUSED, wire.K_START_REFUSED), r
        assert r["code"] == code and r["flags"] == t, r
    assert after["log"][2] == before["log"][2] + len(recs)
    if not recs:
        assert after["log"] == before["log"]


def _pens():
    idle = Rig(MemFs())
    idle.pen.open_pairing()
    armed = Rig(MemFs())
    assert armed.arm() == 0
    running = Rig(MemFs())
    assert running.start_session(1000, 600) == 0
    running.run(1500)
    assert running.pen.state == wire.S_RUNNING
    return [idle.h, armed.h, running.h]


def _handle_one(h, frame, auth, counts):
    before = _state(h)
    out = h.handle(frame, auth)
    assert len(out) == 1, out
    rt, rseq, rf = wire.decode(out[0])
    after = _state(h)
    try:
        t, seq, f = wire.decode(frame)
    except wire.WireError as e:
        assert rt == wire.T_NACK and rf["error"] == e.code and rseq == (e.seq or 0)
        _unchanged(h, before, after, 0, 0, 0)
        counts[0] += 1
        return
    assert rseq == seq
    refused_bench = h.bench and t not in BENCH_TYPES
    if rt == wire.T_NACK:
        assert rf["req_type"] == t and rf["error"] != 0, rf
        if refused_bench:
            assert rf["error"] == wire.E_NOT_AUTHORIZED
        logged = 1 if t in LOGGED and not refused_bench else 0
        _unchanged(h, before, after, logged, t, rf["error"])
        counts[1] += 1
        counts[3] += logged
        return
    assert t in SERVED and not refused_bench, (t, rt)
    assert rt == RESPONSES.get(t, wire.T_ACK), (t, rt)
    counts[2] += 1


def test_handler_answers_and_rejections_change_nothing():
    # 700 frames: the snapshots are garbage after each frame (about 80 MB
    # allocated over the test on the 64-bit unix port), collected as it runs
    rng = Rng(7)
    pens = _pens()
    seeds = _requests() + _vector_frames()
    reqs = len(_requests())
    counts = [0, 0, 0, 0]  # decode NACKs, NACKs, accepted, refusal records
    for i in range(700):
        h = pens[rng.below(len(pens))]
        h.bench = rng.below(8) == 0
        pick = seeds[rng.below(reqs)] if rng.below(3) else seeds[rng.below(len(seeds))]
        frame = pick if rng.below(6) == 0 else mutate(pick, rng)
        if rng.below(2):
            frame = _resign(frame)
        _handle_one(h, frame, rng.below(5) != 0, counts)
    assert counts[0] > 200 and counts[1] > 100 and counts[2] > 50 and counts[3] > 20, counts


def test_link_layers_return_frames_or_wire_errors():
    rng = Rng(99)
    seeds = _vector_frames()
    for _ in range(150):
        r = link.Reassembler(100 if rng.below(2) else wire.MAX_FRAME)
        frags = link.fragment(seeds[rng.below(len(seeds))], 23 + rng.below(60), rng.below(64))
        frags = [mutate(f, rng) if rng.below(3) == 0 else f for f in frags]
        frags += [rng.bytes(rng.below(30)) for _ in range(rng.below(4))]
        for f in frags:
            try:
                out = r.feed(f)
            except wire.WireError as e:
                assert e.code in (wire.E_TRUNCATED, wire.E_OUT_OF_ORDER, wire.E_DUPLICATE_FRAGMENT,
                                  wire.E_OVERSIZE), e.code
                out = None
            assert out is None or 1 <= len(out) <= r.max_frame
            assert r._size <= r.max_frame and r._next <= 256
    for _ in range(60):
        stream = b"".join(link.encode_packet(seeds[rng.below(len(seeds))]) for _ in range(3))
        d = link.Deframer()
        for item in d.feed(mutate(stream, rng)):
            assert isinstance(item, bytes) or item.code in (
                wire.E_BAD_COBS, wire.E_TRUNCATED, wire.E_BAD_CRC, wire.E_OVERSIZE), item
        assert len(d._buf) <= link.MAX_PACKET
