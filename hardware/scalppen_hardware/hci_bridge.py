"""Bluetooth adapters on the pen's link, served as H4 HCI over TCP.

Any bumble host, in this process or another, attaches with
``tcp-client:127.0.0.1:<port>`` and acts as a central next to the virtual pen
(for instance ``scalppen`` run by a user against ``scalppen sim``)::

    bridge = await start_hci_bridge(link)
    print(bridge.transport_name)      # tcp-client:127.0.0.1:40123
    ...
    await bridge.close()

Each TCP connection is its own adapter: a fresh controller on the link with its
own H4 parser, as each computer in the room has its own radio. Several commands at
once are several centrals: they scan side by side, and the pen (one connection at a
time) takes only one of them, as a real pen would. Bytes from one connection never
reach another's parser, so garbage or a half-written packet from one client cannot
wedge the others.

A client that goes away (its process killed, the TCP connection closed) is a
radio switched off: its connections drop on the link as a supervision timeout
(the pen sees the link lost at once and advertises again) and its controller
leaves the link. The controller is :class:`~scalppen_hardware.ble_radio.LinkController`,
so a connect to an absent pen that the host cancels fails cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket

from bumble import hci, ll
from bumble.link import LocalLink
from bumble.transport.common import StreamPacketSource

from scalppen_hardware.ble_radio import LinkController

_log = logging.getLogger(__name__)

#: At most this many adapters at once; a further connection is closed at once.
MAX_CLIENTS = 8


class _Sink:
    """The host side of one adapter: HCI packets to its TCP connection."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport: asyncio.WriteTransport | None = transport

    def on_packet(self, packet: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(packet)


class _Adapter(asyncio.Protocol):
    """One TCP client: its own H4 parser and its own controller on the link."""

    def __init__(self, bridge: HciBridge) -> None:
        self.bridge = bridge
        self.source = StreamPacketSource()
        self.sink: _Sink | None = None
        self.controller: LinkController | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        if len(self.bridge.adapters) >= MAX_CLIENTS:
            _log.warning("HCI bridge: %d adapters attached, refusing another", MAX_CLIENTS)
            transport.close()
            return
        self.sink = _Sink(transport)
        self.controller = LinkController(
            f"{self.bridge.name}-{next(self.bridge.numbers)}", host_source=self.source,
            host_sink=self.sink, link=self.bridge.link)
        self.bridge.adapters.add(self)

    def data_received(self, data: bytes) -> None:
        if self.controller is None:
            return
        try:
            self.source.data_received(data)
        except Exception as exc:  # a packet the controller cannot take: drop this client
            _log.warning("HCI bridge: dropping a client after %r", exc)
            self.switch_off()

    def eof_received(self) -> bool | None:
        self.switch_off()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.switch_off()

    def switch_off(self) -> None:
        """The adapter's radio goes off: its links drop, it leaves the link."""
        controller, self.controller = self.controller, None
        self.bridge.adapters.discard(self)
        if self.sink is not None:
            transport, self.sink.transport = self.sink.transport, None
            if transport is not None:
                transport.close()
        if controller is None:
            return
        reason = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
        for connection in list(controller.le_connections.values()):
            with contextlib.suppress(Exception):
                connection.send_ll_control_pdu(ll.TerminateInd(reason))
            with contextlib.suppress(Exception):
                controller.on_le_disconnected(connection, reason)
        controller.detach()


class HciBridge:
    """A running bridge: its port, its transport name, and ``close()``."""

    def __init__(self, link: LocalLink, host: str, port: int, name: str) -> None:
        self.link = link
        self.host = host
        self.port = port
        self.name = name
        self.adapters: set[_Adapter] = set()
        self.numbers = itertools.count(1)
        self.server: asyncio.Server | None = None

    @property
    def transport_name(self) -> str:
        """The bumble transport name a host opens to attach."""
        return f"tcp-client:{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop serving; every attached adapter is switched off."""
        if self.server is not None:
            self.server.close()
        for adapter in list(self.adapters):
            adapter.switch_off()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5.0)

    async def __aenter__(self) -> HciBridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_hci_bridge(
    link: LocalLink, *, host: str = "127.0.0.1", port: int = 0, name: str = "bridge"
) -> HciBridge:
    """Serve adapters on ``link`` as H4 over TCP; port 0 picks a free one.

    Returns:
        The bridge; ``bridge.port`` is the TCP port.
    """
    # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on the accepted connections
    # (with proto 0 it does not, and Nagle + delayed ACKs add ~40 ms per request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bridge = HciBridge(link, host, sock.getsockname()[1], name)
    bridge.server = await asyncio.get_running_loop().create_server(
        lambda: _Adapter(bridge), sock=sock)
    return bridge
