# Persistent storage of the pen: an append-only usage log in segments and one
# counters record, both over the tiny fs of pen/fsio.py.
#
# Log: fixed 26-byte records = the wire LogRecord (22 bytes: seq u32, time u32,
# kind u8, flags u8, code u16, depth_um u16, a u32, b u32) + CRC-32 (u32, LE).
# Segment files "log<first seq, 8 digits>.bin" hold up to seg_records records;
# at most max_segments are kept. The oldest is dropped for a new one only when
# the host has acknowledged every record in it (LOG_ACK, counters "ack"): a
# record nobody has read is never overwritten. Room is counted in record slots
# (free_slots); an append may ask to leave `reserve` slots free (LogFull if it
# cannot), which is how the pen keeps space for evidence. Sequence numbers
# are never reused: the next one is above every record, every segment name and
# the floor kept in the counters; a torn tail found at boot burns its number.
#
# Counters: a JSON object + "\n" + CRC-32 in hex, written to state.tmp and then
# renamed over state.dat, so a reader sees the old or the new record, never a mix.
import binascii
import json
import os
import struct

from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

REC_FMT = "<IIBBHHII"
REC_SIZE = const(22)
_READ_CHUNK = const(16)  # records per file read while paging the log
DISK_SIZE = const(26)
STATE = "state.dat"
STATE_TMP = "state.tmp"
SEG_TMP = "seg.tmp"


def defaults():
    return {
        "key": "",  # permit key, hex ("" = none)
        "nonces": [],  # used permit nonces, hex, oldest first (bounded)
        "nfloor": 0,  # highest issued_at among forgotten nonces
        "hp": [0, 0, 0, 0, 0],  # handpiece: strokes, punctures, sessions, run_s, first session
        "last_end": 0,  # last session: end (pen clock) and depth
        "last_depth": 0,
        "carts": {},  # cartridge id hex -> [strokes used, flags] (see pen/wear.py)
        "cart_order": [],  # ids, oldest first (bounded)
        "cur": "",  # cartridge in the pen when last seen (hex)
        "sess": None,  # open session: [start, depth, checkpoint, strokes, elapsed_ms, patient]
        "pats": {},  # clinic pen: patient ref hex -> [end, depth, lock] (pen/patients.py)
        "seq": 1,  # floor for the next log sequence number
        "ack": 0,  # the host stored every record up to this seq (LOG_ACK)
        "lock": 0,  # rule 6: interval still to serve, s, counted by the pen's running time
        "lock_at": 0,  # the pen's clock when "lock" was stored (0 = clock unset)
        "unlogged": 0,  # ordinary records (refusals...) not written for want of room
        "tnonces": [],  # nonces of recent SET_TIMEs, hex (bounded)
        "log_id": 0,  # this log's identity (0 = not drawn yet): see log_id()
        "upd": 0,  # the last update trial logged (pen/bootok.py /update's n)
    }


def log_id(c):
    # The identity of the log these counters go with, drawn at random the first time
    # (the counters start afresh with an empty log) and kept with them from their next
    # commit on. Every BOOT record carries it in a, so a host tells a log that
    # restarted (seqs from 1 again) from the one it synced before.
    if not c.get("log_id"):
        c["log_id"] = int.from_bytes(os.urandom(4), "big") or 1
    return c["log_id"]


class LogFull(OSError):
    # An append that would overwrite records the host has not acknowledged, or eat
    # into the room it was asked to leave. Nothing was written.
    pass


def crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def pack_record(seq, time, kind, flags, code, depth_um, a, b):
    return struct.pack(REC_FMT, seq, time, kind, flags, code, depth_um, a, b)


def unpack_record(body):
    # -> dict with the LogRecord field names
    v = struct.unpack(REC_FMT, body)
    return {"seq": v[0], "time": v[1], "kind": v[2], "flags": v[3], "code": v[4],
            "depth_um": v[5], "a": v[6], "b": v[7]}


def _seg_name(first):
    return "log%08d.bin" % first


def _seg_first(name):
    if len(name) == 15 and name.startswith("log") and name.endswith(".bin"):
        try:
            return int(name[3:11])
        except ValueError:
            pass
    return -1


def _good(data, i):
    # True when record i of a segment's bytes has its CRC right.
    off = i * DISK_SIZE
    body = data[off:off + REC_SIZE]
    return struct.unpack("<I", data[off + REC_SIZE:off + DISK_SIZE])[0] == crc(body)


class Store:
    def __init__(self, fs, seg_records=128, max_segments=8, reserve=None):
        self.fs = fs
        self.seg_records = seg_records
        self.max_segments = max_segments
        # slots ordinary records leave for evidence (pen/core.py): one segment
        self.reserve = seg_records if reserve is None else reserve
        self.segs = []  # first seq of each segment, oldest first
        self.cur_count = 0  # record slots in the newest segment
        self.next_seq = 1
        self.recovered = 0  # bytes dropped from a torn tail at boot
        self.c = self._load_counters()
        self._recover()

    # ---- counters -------------------------------------------------------------
    def _load_counters(self):
        c = defaults()
        for name in (STATE, STATE_TMP):
            data = self.fs.read(name)
            if not data:
                continue
            cut = data.rfind(b"\n")
            if cut < 0:
                continue
            try:
                if int(data[cut + 1:], 16) != crc(data[:cut]):
                    continue
                got = json.loads(data[:cut])
            except (ValueError, TypeError):
                continue
            if isinstance(got, dict):
                for k in got:
                    c[k] = got[k]
                return c
        return c

    def commit(self):
        # Write the counters atomically (temp file, then rename).
        if self.c["seq"] < self.next_seq:
            self.c["seq"] = self.next_seq
        data = json.dumps(self.c).encode()
        self.fs.write(STATE_TMP, data + b"\n" + ("%08x" % crc(data)).encode())
        self.fs.rename(STATE_TMP, STATE)

    # ---- log ------------------------------------------------------------------
    def _recover(self):
        fs = self.fs
        segs = []
        for name in fs.listdir():
            first = _seg_first(name)
            if first > 0:
                segs.append(first)
        segs.sort()
        if fs.exists(SEG_TMP):
            fs.remove(SEG_TMP)
        while len(segs) > self.max_segments:
            fs.remove(_seg_name(segs.pop(0)))
        self.segs = segs
        nxt = self.c.get("seq", 1)
        if nxt < 1:
            nxt = 1
        torn = 0
        # The newest segment may end in a torn record; older ones were complete
        # when the next segment was begun. Walk back over empty segments.
        for i in range(len(segs) - 1, -1, -1):
            name = _seg_name(segs[i])
            data = fs.read(name) or b""
            n = len(data) // DISK_SIZE
            keep = n * DISK_SIZE
            if i == len(segs) - 1:
                if n and not _good(data, n - 1):
                    n -= 1
                    keep = n * DISK_SIZE
                if keep != len(data):
                    torn = len(data) - keep
                    fs.write(SEG_TMP, data[:keep])
                    fs.rename(SEG_TMP, name)
                self.cur_count = n
            if segs[i] > nxt:
                nxt = segs[i]
            if n:
                last = struct.unpack_from("<I", data, (n - 1) * DISK_SIZE)[0]
                if last + 1 > nxt:
                    nxt = last + 1
                break
        if torn:
            nxt += 1  # the torn record's number is never handed out again
        self.next_seq = nxt
        self.recovered = torn
        if torn:
            try:
                self.append(wire.K_LOG_RECOVERED, 0, wire.E_LOG_CORRUPT, 0, torn, 0)
            except LogFull:
                self.c["unlogged"] = self.c.get("unlogged", 0) + 1

    def _droppable(self):
        # Oldest segments (never the newest) whose every record was acknowledged.
        segs = self.segs
        ack = self.c.get("ack", 0)
        n = 0
        while n < len(segs) - 1 and segs[n + 1] - 1 <= ack:
            n += 1
        return n

    def free_slots(self):
        # Records that can still be appended without losing one the host has not
        # acknowledged.
        n = self.seg_records - self.cur_count if self.segs else 0
        return n + (self.max_segments - len(self.segs) + self._droppable()) * self.seg_records

    def acknowledge(self, up_to_seq):
        # The host stored every record up to up_to_seq (never beyond the last
        # written, never backwards). -> True if the floor moved (commit it).
        last = self.last_seq()
        if up_to_seq > last:
            up_to_seq = last
        if up_to_seq <= self.c.get("ack", 0):
            return False
        self.c["ack"] = up_to_seq
        return True

    def append(self, kind, time=0, code=0, depth_um=0, a=0, b=0, flags=0, reserve=0):
        # Returns the record's seq once it is written (acknowledged). LogFull (and
        # nothing written) when fewer than reserve + 1 slots are free.
        if self.free_slots() <= reserve:
            raise LogFull(28)
        seq = self.next_seq
        body = pack_record(seq, time, kind, flags, code, depth_um, a, b)
        rec = body + struct.pack("<I", crc(body))
        new = not self.segs or self.cur_count >= self.seg_records
        if new:
            self.segs.append(seq)
            self.cur_count = 0
        self.next_seq = seq + 1  # a failed write burns the number
        self.fs.append(_seg_name(self.segs[-1]), rec)
        self.cur_count += 1
        if new:
            # free_slots() counted only acknowledged segments as room
            while len(self.segs) > self.max_segments:
                self.fs.remove(_seg_name(self.segs.pop(0)))
        return seq

    def first_seq(self):
        return self.segs[0] if self.segs else self.next_seq

    def last_seq(self):
        return self.next_seq - 1

    def read(self, from_seq, max_records):
        # -> (first_seq, last_seq, [22-byte records]) from from_seq on, skipping
        # records whose CRC fails (a gap the reader sees). Reads the segments in
        # chunks of at most _READ_CHUNK records: a page never needs one large
        # block of a fragmented heap (a 160-record read failed on MicroPython).
        out = []
        segs = self.segs
        for i in range(len(segs)):
            if len(out) >= max_records:
                break
            end = segs[i + 1] if i + 1 < len(segs) else self.next_seq
            if end <= from_seq:
                continue
            name = _seg_name(segs[i])
            # Without burnt numbers the record with seq `want` is at index
            # want - first: start there. When the record found there is not that
            # one, or is damaged, scan the segment from its start instead.
            want = from_seq if from_seq > segs[i] else segs[i]
            off = (want - segs[i]) * DISK_SIZE
            probe = off > 0
            while len(out) < max_records:
                size = _READ_CHUNK * DISK_SIZE
                data = self.fs.read_at(name, off, size) or b""
                if probe:
                    probe = False
                    if not (len(data) >= DISK_SIZE and _good(data, 0)
                            and struct.unpack_from("<I", data, 0)[0] == want):
                        off = 0
                        continue
                for j in range(len(data) // DISK_SIZE):
                    if len(out) >= max_records:
                        break
                    o = j * DISK_SIZE
                    if struct.unpack_from("<I", data, o)[0] < from_seq:
                        continue
                    if _good(data, j):
                        out.append(data[o:o + REC_SIZE])
                if len(data) < size:
                    break  # the end of this segment
                off += size
        return self.first_seq(), self.last_seq(), out
