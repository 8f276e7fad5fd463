# Link layer of the pen: fragments over BLE ATT, COBS + CRC-16 over USB serial.
# Mirrors scalppen_protocol.fragment and scalppen_protocol.serial_framing; the
# differential tests in tests/protocol prove both sides equal.
from pen import wire
from pen.crc import crc16

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

FIRST = const(0x80)
LAST = const(0x40)
COUNTER_MASK = const(0x3F)
ATT_OVERHEAD = const(5)  # 3 bytes ATT header + 2 bytes fragment header
MAX_PACKET = const(4116)


def chunk_size(mtu):
    if mtu < 23 or mtu > 517:
        raise ValueError("ATT MTU out of range")
    return mtu - ATT_OVERHEAD


def fragment(frame, mtu, counter):
    # Split one frame into ATT payloads.
    if not frame:
        raise ValueError("empty frame")
    if len(frame) > wire.MAX_FRAME:
        raise wire.WireError(wire.E_OVERSIZE, "frame too large")
    size = chunk_size(mtu)
    count = (len(frame) + size - 1) // size
    tag = counter & COUNTER_MASK
    out = []
    for i in range(count):
        control = tag
        if i == 0:
            control |= FIRST
        if i == count - 1:
            control |= LAST
        out.append(bytes((control, i)) + frame[i * size:(i + 1) * size])
    return out


def whole_type(frag):
    # The message type of a fragment that holds a whole message (FIRST and LAST at
    # index 0), read from the frame header after the fragment header; else -1.
    if len(frag) < 4 or frag[0] & (FIRST | LAST) != FIRST | LAST or frag[1] != 0:
        return -1
    return frag[3]


class Reassembler:
    # feed(fragment) -> frame bytes when complete, else None; raises wire.WireError.
    def __init__(self, max_frame=wire.MAX_FRAME):
        self.max_frame = max_frame
        self.interrupted = 0  # incomplete messages dropped for a new one
        self.reset()

    def reset(self):
        self._parts = []
        self._size = 0
        self._tag = -1
        self._next = 0

    def busy(self):
        return self._tag >= 0

    def feed(self, frag):
        if len(frag) < 3:
            raise wire.WireError(wire.E_TRUNCATED, "fragment too short")
        control = frag[0]
        index = frag[1]
        tag = control & COUNTER_MASK
        chunk = bytes(frag[2:])
        if control & FIRST:
            if index != 0:
                self.reset()
                raise wire.WireError(wire.E_OUT_OF_ORDER, "first fragment index")
            interrupted = self._tag >= 0
            self.reset()
            self._tag = tag
            if interrupted:
                # The incomplete message is dropped. A new message that is whole in
                # this fragment is still delivered (it may be the STOP that follows).
                frame = self._accept(chunk, control)
                self.interrupted += 1
                if frame is not None:
                    return frame
                raise wire.WireError(wire.E_OUT_OF_ORDER, "message interrupted")
            return self._accept(chunk, control)
        if self._tag < 0:
            raise wire.WireError(wire.E_OUT_OF_ORDER, "continuation without start")
        if tag != self._tag:
            self.reset()
            raise wire.WireError(wire.E_OUT_OF_ORDER, "fragment of another message")
        if index < self._next:
            raise wire.WireError(wire.E_DUPLICATE_FRAGMENT, "duplicate fragment")
        if index > self._next:
            self.reset()
            raise wire.WireError(wire.E_OUT_OF_ORDER, "fragment gap")
        return self._accept(chunk, control)

    def _accept(self, chunk, control):
        self._size += len(chunk)
        if self._size > self.max_frame:
            self.reset()
            raise wire.WireError(wire.E_OVERSIZE, "message too large")
        self._parts.append(chunk)
        self._next += 1
        if control & LAST:
            frame = b"".join(self._parts)
            self.reset()
            return frame
        if self._next > 255:
            self.reset()
            raise wire.WireError(wire.E_OVERSIZE, "too many fragments")
        return None


def cobs_encode(data):
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out.extend(block)
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out.extend(block)
                block = bytearray()
    out.append(len(block) + 1)
    out.extend(block)
    return bytes(out)


def cobs_decode(data):
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise wire.WireError(wire.E_BAD_COBS, "zero byte in packet")
        end = i + code
        if end > n:
            raise wire.WireError(wire.E_BAD_COBS, "block past end")
        for j in range(i + 1, end):
            if data[j] == 0:
                raise wire.WireError(wire.E_BAD_COBS, "zero byte in packet")
        out.extend(data[i + 1:end])
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def encode_packet(frame):
    crc = crc16(frame)
    return cobs_encode(frame + bytes((crc & 0xFF, crc >> 8))) + b"\x00"


def decode_packet(packet):
    if len(packet) > MAX_PACKET:
        raise wire.WireError(wire.E_OVERSIZE, "packet too long")
    raw = cobs_decode(packet)
    if len(raw) < 3:
        raise wire.WireError(wire.E_TRUNCATED, "packet too short")
    frame = raw[:-2]
    if (raw[-2] | (raw[-1] << 8)) != crc16(frame):
        raise wire.WireError(wire.E_BAD_CRC, "bad CRC")
    return frame


class Deframer:
    # feed(bytes) -> list of frames (bytes) or wire.WireError, in order.
    def __init__(self):
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data):
        out = []
        for b in data:
            if b == 0:
                if self._overflow:
                    out.append(wire.WireError(wire.E_OVERSIZE, "packet too long"))
                elif self._buf:
                    try:
                        out.append(decode_packet(bytes(self._buf)))
                    except wire.WireError as e:
                        out.append(e)
                self._buf = bytearray()
                self._overflow = False
            elif not self._overflow:
                self._buf.append(b)
                if len(self._buf) > MAX_PACKET:
                    self._overflow = True
                    self._buf = bytearray()
        return out
