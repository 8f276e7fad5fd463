"""Two transports joined in memory: a frame sent on one end arrives at the other.

For tests and simulations: the host's :class:`~scalppen.client.Pen` on one end, a
scripted or simulated pen on the other. :meth:`LoopbackTransport.drop` cuts the
link as a radio would (both ends see :class:`LinkLost`).
"""

from __future__ import annotations

import asyncio

from scalppen.transports.base import ConnectError, FrameLinkBase, LinkLost
from scalppen_protocol.codes import MAX_FRAME
from scalppen_protocol.errors import ProtocolError


class LoopbackTransport(FrameLinkBase):
    """One end of an in-memory link; make pairs with :func:`loopback_pair`.

    Args:
        name: a label for messages.
        mtu: what :attr:`mtu` reports.
    """

    def __init__(self, name: str = "loopback", mtu: int = MAX_FRAME) -> None:
        super().__init__()
        self.name = name
        self._mtu = mtu
        self.peer: LoopbackTransport | None = None
        #: Every frame this end sent, in order.
        self.sent: list[bytes] = []

    @property
    def mtu(self) -> int:
        """The MTU this end reports."""
        return self._mtu

    async def connect(self) -> None:
        """Bring this end up.

        Raises:
            ConnectError: this end has no peer.
        """
        if self.peer is None:
            raise ConnectError(f"{self.name} has no peer")
        if not self.connected:
            self._link_up()

    async def send_frame(self, frame: bytes) -> None:
        """Hand ``frame`` to the peer (dropped if the peer is not up).

        Raises:
            LinkLost: this end is down.
        """
        if not self.connected:
            raise LinkLost(f"{self.name} is not connected")
        self.sent.append(bytes(frame))
        if self.peer is not None:
            self.peer._deliver(bytes(frame))
        await asyncio.sleep(0)

    def inject(self, frame: bytes) -> None:
        """Make ``frame`` arrive at this end as if the peer had sent it."""
        self._deliver(bytes(frame))

    def report(self, error: ProtocolError) -> None:
        """Report a damaged frame at this end, as a real link layer would."""
        self._report(error)

    def drop(self, reason: str = "link dropped") -> None:
        """Cut the link: both ends go down and tell their listeners."""
        self._link_down(reason)
        if self.peer is not None:
            self.peer._link_down(reason)

    async def close(self) -> None:
        """Take this end down; the peer sees the link drop."""
        self._link_down("closed by this end", requested=True)
        if self.peer is not None:
            self.peer._link_down(f"{self.name} closed the link")


def loopback_pair(mtu: int = MAX_FRAME) -> tuple[LoopbackTransport, LoopbackTransport]:
    """Make two joined ends: (host end, pen end)."""
    host = LoopbackTransport("host", mtu)
    pen = LoopbackTransport("pen", mtu)
    host.peer = pen
    pen.peer = host
    return host, pen
