"""The same frames over USB serial: COBS with a 0x00 delimiter and a CRC-16.

On the wire: ``COBS(frame + crc16_le(frame)) + b"\\x00"``. CRC-16/CCITT-FALSE
(polynomial 0x1021, initial 0xFFFF, no reflection, no final xor).
"""

from __future__ import annotations

from typing import Final

from scalppen_protocol.codes import MAX_FRAME, ErrorCode
from scalppen_protocol.errors import ProtocolError

DELIMITER: Final = b"\x00"
MAX_PACKET: Final = MAX_FRAME + 2 + MAX_FRAME // 254 + 2


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE: Final = _table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent overhead byte stuffing: the result has no zero byte."""
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block = bytearray()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Undo ``cobs_encode``.

    Raises:
        ProtocolError: BAD_COBS for a zero byte or a code running past the end.
    """
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError(ErrorCode.BAD_COBS, "zero byte inside a COBS packet")
        end = i + code
        if end > n:
            raise ProtocolError(ErrorCode.BAD_COBS, "COBS block runs past the packet")
        block = data[i + 1 : end]
        if 0 in block:
            raise ProtocolError(ErrorCode.BAD_COBS, "zero byte inside a COBS packet")
        out += block
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def encode_packet(frame: bytes) -> bytes:
    """Wrap one frame for the serial line."""
    crc = crc16(frame)
    return cobs_encode(frame + bytes((crc & 0xFF, crc >> 8))) + DELIMITER


def decode_packet(packet: bytes) -> bytes:
    """Unwrap one packet (without its delimiter) into a frame.

    Raises:
        ProtocolError: BAD_COBS, TRUNCATED, OVERSIZE or BAD_CRC.
    """
    if len(packet) > MAX_PACKET:
        raise ProtocolError(ErrorCode.OVERSIZE, f"serial packet of {len(packet)} bytes")
    raw = cobs_decode(packet)
    if len(raw) < 3:
        raise ProtocolError(ErrorCode.TRUNCATED, f"serial packet of {len(raw)} bytes")
    frame, got = raw[:-2], raw[-2] | (raw[-1] << 8)
    want = crc16(frame)
    if got != want:
        raise ProtocolError(ErrorCode.BAD_CRC, f"CRC 0x{got:04x}, computed 0x{want:04x}")
    return frame


class Deframer:
    """Splits a serial byte stream into frames.

    ``feed`` returns a list whose items are frames (bytes) or the ``ProtocolError``
    of a bad packet, in order; a bad packet never stops the stream. An over-long
    run without a delimiter is discarded up to the next delimiter.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes | ProtocolError]:
        out: list[bytes | ProtocolError] = []
        for b in data:
            if b == 0:
                if self._overflow:
                    out.append(ProtocolError(ErrorCode.OVERSIZE, "serial packet too long"))
                elif self._buf:
                    try:
                        out.append(decode_packet(bytes(self._buf)))
                    except ProtocolError as exc:
                        out.append(exc)
                self._buf = bytearray()
                self._overflow = False
            elif not self._overflow:
                self._buf.append(b)
                if len(self._buf) > MAX_PACKET:
                    self._overflow = True
                    self._buf = bytearray()
        return out
