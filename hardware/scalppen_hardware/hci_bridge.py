"""A further virtual controller on the pen's link, served as H4 HCI over TCP.

Any bumble host, in this process or another, attaches with
``tcp-client:127.0.0.1:<port>`` and acts as a central next to the virtual pen
(for instance ``scalppen`` run by a user against ``scalppen sim``)::

    bridge = await start_hci_bridge(link)
    print(bridge.transport_name)      # tcp-client:127.0.0.1:40123
    ...
    await bridge.close()

One host at a time; a host that attaches later gets the same controller (it
resets it). The controller is :class:`~scalppen_hardware.ble_radio.LinkController`,
so a connect to an absent pen that the host cancels fails cleanly.
"""

from __future__ import annotations

import contextlib
import socket

from bumble.link import LocalLink
from bumble.transport import Transport
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from scalppen_hardware.ble_radio import LinkController


class HciBridge:
    """A running bridge: its port, its transport name, and ``close()``."""

    def __init__(
        self, transport: Transport, controller: LinkController, host: str, port: int
    ) -> None:
        self._transport = transport
        self.controller = controller
        self.host = host
        self.port = port

    @property
    def transport_name(self) -> str:
        """The bumble transport name a host opens to attach."""
        return f"tcp-client:{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop serving and take the controller off the link."""
        self.controller.detach()
        server = getattr(self._transport, "server", None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        with contextlib.suppress(Exception):
            await self._transport.close()

    async def __aenter__(self) -> HciBridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_hci_bridge(
    link: LocalLink, *, host: str = "127.0.0.1", port: int = 0, name: str = "bridge"
) -> HciBridge:
    """Serve a new controller on ``link`` as H4 over TCP; port 0 picks a free one.

    Returns:
        The bridge; ``bridge.port`` is the TCP port.
    """
    # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on the accepted connections
    # (with proto 0 it does not, and Nagle + delayed ACKs add ~40 ms per request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    transport = await open_tcp_server_transport_with_socket(sock)
    controller = LinkController(
        f"{name}-ctrl", host_source=transport.source, host_sink=transport.sink, link=link
    )
    return HciBridge(transport, controller, host, bound_port)
