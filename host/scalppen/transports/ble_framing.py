"""Frames to ATT payloads and back, with no radio: the BLE transport's framing.

Kept apart from :mod:`scalppen.transports.ble` so it is testable without bleak
and without a Bluetooth adapter.
"""

from __future__ import annotations

from scalppen_protocol.codes import MAX_FRAME, MAX_MTU, MIN_MTU
from scalppen_protocol.fragment import COUNTER_MASK, Reassembler, chunk_size, fragment


def clamp_mtu(mtu: int) -> int:
    """Bring a reported ATT MTU into the range the protocol allows (23..517)."""
    return max(MIN_MTU, min(MAX_MTU, int(mtu)))


class BleFramer:
    """Splits outgoing frames at the ATT MTU and joins incoming fragments.

    Args:
        mtu: the negotiated ATT MTU (clamped to 23..517).
        max_frame: the largest frame accepted when reassembling.
    """

    def __init__(self, mtu: int = MIN_MTU, max_frame: int = MAX_FRAME) -> None:
        self._mtu = clamp_mtu(mtu)
        self._counter = 0
        self._reassembler = Reassembler(max_frame)

    @property
    def mtu(self) -> int:
        """The ATT MTU fragments are cut for."""
        return self._mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self._mtu = clamp_mtu(value)

    @property
    def chunk(self) -> int:
        """Frame bytes carried by one fragment at the current MTU."""
        return chunk_size(self._mtu)

    def split(self, frame: bytes) -> list[bytes]:
        """Cut one frame into ATT payloads; each message gets the next counter.

        Raises:
            ProtocolError: OVERSIZE for a frame above the protocol maximum.
            ValueError: an empty frame.
        """
        parts = fragment(frame, self._mtu, self._counter)
        self._counter = (self._counter + 1) & COUNTER_MASK
        return parts

    def join(self, att_payload: bytes) -> bytes | None:
        """Take one notification; return a complete frame, or None while partial.

        Raises:
            ProtocolError: a damaged, duplicate or out-of-order fragment (that
                message is dropped; the framer is ready for the next one).
        """
        return self._reassembler.feed(bytes(att_payload))

    def reset(self) -> None:
        """Forget a partly received message (e.g. on a new connection)."""
        self._reassembler.reset()
