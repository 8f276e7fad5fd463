# MCUmgr's Simple Management Protocol (SMP) on the pen: the frames and what the pen
# answers. An 8-byte header (res/version/op, flags, length u16 BE, group u16 BE,
# sequence, command) and a CBOR map. Served on the SMP GATT service (pen/ble.py)
# to an authenticated, bonded central only; the app (pen/app.py) feeds the writes
# in and notifies the answers out.
#
# Served: OS echo, reset and MCUmgr parameters; image state read and write (test,
# confirm), upload (signed images into the inactive slot: pen/update.py) and
# erase. Anything else is answered MGMT_ERR_ENOTSUP. The answer keeps the request's SMP version.
import struct

from pen import cbor

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

HEADER_SIZE = const(8)
# The largest request frame the pen takes (header + CBOR): the SMP writes a tick
# takes (pen/app.py _SMP_IN_BYTES), so a whole upload request lands between two
# ticks and is answered in the next one (9 writes at MTU 247).
BUF_SIZE = const(2048)
BUF_COUNT = const(1)  # requests it holds at once (it answers one before the next)

OP_READ = const(0)
OP_READ_RSP = const(1)
OP_WRITE = const(2)
OP_WRITE_RSP = const(3)

G_OS = const(0)
G_IMAGE = const(1)
OS_ECHO = const(0)
OS_RESET = const(5)
OS_PARAMS = const(6)
IMG_STATE = const(0)
IMG_UPLOAD = const(1)
IMG_ERASE = const(5)

# MGMT_ERR_* (zephyr/include/zephyr/mgmt/mcumgr/mgmt/mgmt_defines.h)
EOK = const(0)
EUNKNOWN = const(1)
ENOMEM = const(2)
EINVAL = const(3)
ENOENT = const(5)
EBADSTATE = const(6)
EMSGSIZE = const(7)
ENOTSUP = const(8)
ECORRUPT = const(9)
EBUSY = const(10)
EACCESSDENIED = const(11)

_ECHO_MAX = const(128)  # characters echoed back


def parse_header(frame):
    # -> (op, version, flags, length, group, seq, cmd)
    b0, flags, length, group, seq, cmd = struct.unpack(">BBHHBB", frame[:HEADER_SIZE])
    return b0 & 7, (b0 >> 3) & 3, flags, length, group, seq, cmd


def build(op, version, group, seq, cmd, body):
    data = cbor.encode(body)
    return struct.pack(">BBHHBB", (version & 3) << 3 | op, 0, len(data), group, seq,
                       cmd) + data


class Reassembler:
    # Writes (each at most MTU - 3 bytes) -> whole frames, by the header's length,
    # in one buffer of BUF_SIZE taken once (a 2 KiB block found again for every
    # request would fragment the heap). A frame longer than BUF_SIZE is dropped
    # with everything after it on the link until it is reset (the client times
    # out; a new link starts clean).
    def __init__(self):
        self.buf = bytearray(BUF_SIZE)
        self.n = 0
        self.broken = False

    def reset(self):
        self.n = 0
        self.broken = False

    def feed(self, chunk):
        # -> a list of whole frames (usually none or one), each its own bytes.
        out = []
        buf = self.buf
        mv = memoryview(buf)
        i = 0
        while i < len(chunk) and not self.broken:
            k = min(len(chunk) - i, BUF_SIZE - self.n)
            mv[self.n:self.n + k] = chunk[i:i + k]
            self.n += k
            i += k
            while self.n >= HEADER_SIZE:
                need = HEADER_SIZE + ((buf[2] << 8) | buf[3])
                if need > BUF_SIZE:
                    self.broken = True
                    self.n = 0
                    break
                if self.n < need:
                    break
                out.append(bytes(mv[:need]))
                rest = self.n - need
                if rest:
                    mv[:rest] = bytes(mv[need:self.n])
                self.n = rest
        return out


def _error(op, version, group, seq, cmd, rc):
    # A general MGMT_ERR_* answer is {"rc": N} in both versions: version 2 puts only
    # a group's own codes in {"err": {"group", "rc"}} (as the smp package's
    # ErrorV1/ErrorV2 models read them).
    return build(op + 1, version, group, seq, cmd, {"rc": rc})


def answer(frame, env):
    # respond(), and never an exception: management must not stop the pen (its
    # main loop resets on one, which would end a session). A failure is answered
    # ENOMEM or EUNKNOWN; -> (bytes or None, failed).
    try:
        return respond(frame, env), False
    except Exception as e:  # noqa: BLE001  (any failure is the client's error answer)
        env.failure = e  # kept for a look from the bench or the REPL
        op, version, _f, _n, group, seq, cmd = parse_header(frame)
        rc = ENOMEM if isinstance(e, MemoryError) else EUNKNOWN
        try:
            return _error(op & 2, version, group, seq, cmd, rc), True
        except Exception:  # noqa: BLE001  (not even room for the error: say nothing)
            return None, True


def _answer(op, version, group, seq, cmd, got):
    # got: the answer's map, or an rc
    if isinstance(got, int):
        return _error(op, version, group, seq, cmd, got)
    return build(op + 1, version, group, seq, cmd, got)


def respond(frame, env):
    # The answer to one whole request frame. env: image_states() -> list of maps
    # (pen/images.py). -> bytes, or None for a frame that is not a request.
    op, version, _flags, length, group, seq, cmd = parse_header(frame)
    if op not in (OP_READ, OP_WRITE) or length != len(frame) - HEADER_SIZE:
        return None
    try:
        body = cbor.decode(memoryview(frame)[HEADER_SIZE:]) if length else {}
    except ValueError:
        return _error(op, version, group, seq, cmd, EINVAL)
    if not isinstance(body, dict):
        return _error(op, version, group, seq, cmd, EINVAL)
    if group == G_OS and cmd == OS_ECHO and op == OP_WRITE:
        d = body.get("d")
        if not isinstance(d, str) or len(d) > _ECHO_MAX:
            return _error(op, version, group, seq, cmd, EINVAL)
        return build(OP_WRITE_RSP, version, group, seq, cmd, {"r": d})
    if group == G_OS and cmd == OS_PARAMS and op == OP_READ:
        return build(OP_READ_RSP, version, group, seq, cmd,
                     {"buf_size": BUF_SIZE, "buf_count": BUF_COUNT})
    if group == G_OS and cmd == OS_RESET and op == OP_WRITE:
        return _answer(op, version, group, seq, cmd, env.reset())
    if group == G_IMAGE and cmd == IMG_STATE and op == OP_WRITE:
        return _answer(op, version, group, seq, cmd, env.set_state(body))
    if group == G_IMAGE and cmd == IMG_ERASE and op == OP_WRITE:
        return _answer(op, version, group, seq, cmd, env.erase())
    if group == G_IMAGE and cmd == IMG_UPLOAD and op == OP_WRITE:
        got = env.upload(body)
        if isinstance(got, int):
            return _error(op, version, group, seq, cmd, got)
        return build(OP_WRITE_RSP, version, group, seq, cmd, got)
    if group == G_IMAGE and cmd == IMG_STATE and op == OP_READ:
        return build(OP_READ_RSP, version, group, seq, cmd,
                     {"images": env.image_states(), "splitStatus": 0})
    return _error(op, version, group, seq, cmd, ENOTSUP)
