"""Fragmentation of frames into ATT payloads, and reassembly.

Every ATT write (host -> pen) and notification (pen -> host) carries one fragment::

    u8 control | u8 index | chunk
    control: bit 7 FIRST, bit 6 LAST, bits 0-5 message counter (mod 64)

A frame of ``n`` bytes at ATT MTU ``m`` travels in ``ceil(n / (m - 5))`` fragments
(3 bytes ATT header, 2 bytes fragment header). Indexes count 0, 1, 2, ... within a
message; a frame fits in at most 256 fragments at the minimum MTU of 23.
"""

from __future__ import annotations

from typing import Final

from scalppen_protocol.codes import (
    ATT_HEADER_SIZE,
    FRAGMENT_HEADER_SIZE,
    MAX_FRAME,
    MAX_MTU,
    MIN_MTU,
    ErrorCode,
)
from scalppen_protocol.errors import ProtocolError

FIRST: Final = 0x80
LAST: Final = 0x40
COUNTER_MASK: Final = 0x3F


def chunk_size(mtu: int) -> int:
    """Bytes of frame carried by one fragment at ATT MTU ``mtu``."""
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError(f"ATT MTU {mtu} outside {MIN_MTU}..{MAX_MTU}")
    return mtu - ATT_HEADER_SIZE - FRAGMENT_HEADER_SIZE


def fragment(frame: bytes, mtu: int, counter: int) -> list[bytes]:
    """Split ``frame`` into ATT payloads for ``mtu``; ``counter`` tags the message."""
    if not frame:
        raise ValueError("empty frame")
    if len(frame) > MAX_FRAME:
        raise ProtocolError(ErrorCode.OVERSIZE, f"frame of {len(frame)} bytes > {MAX_FRAME}")
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
        out.append(bytes((control, i)) + frame[i * size : (i + 1) * size])
    return out


class Reassembler:
    """Rebuilds frames from fragments, one message at a time per direction.

    ``feed`` returns the complete frame when its LAST fragment arrives, else None.
    Errors (a ``ProtocolError``) leave the reassembler ready for the next FIRST
    fragment, except a duplicate, which is dropped and keeps the message going.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        #: Incomplete messages dropped because a new one began.
        self.interrupted = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._tag = -1
        self._next = 0

    @property
    def busy(self) -> bool:
        """True while a message is partly received."""
        return self._tag >= 0

    def reset(self) -> None:
        """Drop a partly received message (e.g. when the link drops)."""
        self._parts = []
        self._size = 0
        self._tag = -1
        self._next = 0

    def feed(self, fragment_bytes: bytes) -> bytes | None:
        """Take one ATT payload.

        Raises:
            ProtocolError: TRUNCATED (under 3 bytes), DUPLICATE_FRAGMENT,
                OUT_OF_ORDER (gap, wrong counter, continuation without a start, or a
                new start while a message is incomplete) or OVERSIZE.
        """
        if len(fragment_bytes) < FRAGMENT_HEADER_SIZE + 1:
            raise ProtocolError(ErrorCode.TRUNCATED, f"fragment of {len(fragment_bytes)} bytes")
        control, index = fragment_bytes[0], fragment_bytes[1]
        tag = control & COUNTER_MASK
        chunk = bytes(fragment_bytes[FRAGMENT_HEADER_SIZE:])
        if control & FIRST:
            if index != 0:
                self.reset()
                raise ProtocolError(ErrorCode.OUT_OF_ORDER, f"first fragment with index {index}")
            interrupted = self.busy
            self.reset()
            self._tag = tag
            if interrupted:
                # The incomplete message is dropped; a new message that is whole in
                # this fragment is still delivered.
                frame = self._accept(chunk, control)
                self.interrupted += 1
                if frame is not None:
                    return frame
                raise ProtocolError(
                    ErrorCode.OUT_OF_ORDER, "new message before the last one was complete"
                )
            return self._accept(chunk, control)
        if not self.busy:
            raise ProtocolError(ErrorCode.OUT_OF_ORDER, "continuation without a first fragment")
        if tag != self._tag:
            self.reset()
            raise ProtocolError(ErrorCode.OUT_OF_ORDER, "fragment of another message")
        if index < self._next:
            raise ProtocolError(ErrorCode.DUPLICATE_FRAGMENT, f"fragment {index} again")
        if index > self._next:
            expected = self._next
            self.reset()
            raise ProtocolError(
                ErrorCode.OUT_OF_ORDER, f"fragment {index} where {expected} was expected"
            )
        return self._accept(chunk, control)

    def _accept(self, chunk: bytes, control: int) -> bytes | None:
        self._size += len(chunk)
        if self._size > self.max_frame:
            self.reset()
            raise ProtocolError(ErrorCode.OVERSIZE, f"message over {self.max_frame} bytes")
        self._parts.append(chunk)
        self._next += 1
        if control & LAST:
            frame = b"".join(self._parts)
            self.reset()
            return frame
        if self._next > 0xFF:
            self.reset()
            raise ProtocolError(ErrorCode.OVERSIZE, "more than 256 fragments")
        return None
