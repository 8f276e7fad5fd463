"""The HCI TCP bridge ``scalppen sim`` serves (issue 14, item 2: three commands at
once wedged the sim for good: raw bumble tracebacks, and ``scan`` found nothing).

Each TCP client is its own adapter on the link, so clients cannot corrupt each
other's byte stream, and a client that vanishes mid-connection is a radio switched
off: the pen sees its link drop and advertises again.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from bumble.link import LocalLink

from scalppen.transports.bumble_bleak import open_central
from scalppen_hardware.hci_bridge import MAX_CLIENTS, HciBridge, start_hci_bridge
from tests.ble.harness import VirtualPen, run, wait_for
from tests.ble.test_ble_link import _connect, _find_pen


async def _garbage_client(port: int, data: bytes, *, keep: bool = False) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, data)
    if not keep:
        sock.close()
    return sock


async def _pen_behind_a_bridge(tmp_path: Path) -> tuple[VirtualPen, HciBridge]:
    """A pen advertising on a link, and the bridge that serves adapters on it."""
    link = LocalLink()
    pen = VirtualPen(link, tmp_path / "ble_secrets.json")
    pen.boot()
    await pen.ble.idle()
    return pen, await start_hci_bridge(link)


def test_several_clients_scan_side_by_side_and_garbage_wedges_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        pen, bridge = await _pen_behind_a_bridge(tmp_path)
        # a client that sends a half packet and stays, and one that sends junk and goes
        stuck = await _garbage_client(bridge.port, b"\x01\x03\x0c", keep=True)
        await _garbage_client(bridge.port, bytes(range(256)) * 8)
        a = await open_central(bridge.transport_name)
        b = await open_central(bridge.transport_name)
        try:
            assert await _find_pen(a) is not None
            assert await _find_pen(b) is not None  # both scan at once
            client = await _connect(a)
            assert client.is_connected
            await client.disconnect()
        finally:
            stuck.close()
            await a.close()
            await b.close()
            await pen.radio.power_off()
            await bridge.close()
        assert not bridge.adapters

    run(scenario(), 40)


def test_a_client_killed_while_connected_frees_the_pen(tmp_path: Path) -> None:
    async def scenario() -> None:
        pen, bridge = await _pen_behind_a_bridge(tmp_path)
        first = await open_central(bridge.transport_name)
        client = await _connect(first)
        await wait_for(lambda: pen.pen.conn is not None)
        # the process dies: its TCP connection closes, nobody says DISCONNECT
        for adapter in list(bridge.adapters):
            assert adapter.sink is not None and adapter.sink.transport is not None
            adapter.sink.transport.abort()
        await wait_for(lambda: pen.pen.conn is None, 5.0)  # the pen saw the link drop
        second = await open_central(bridge.transport_name)
        try:
            again = await _connect(second)  # the pen advertises again: found, connected
            assert again.is_connected
            await again.disconnect()
        finally:
            del client
            await second.close()
            await pen.radio.power_off()
            await bridge.close()

    run(scenario(), 40)


def test_a_flood_of_connections_is_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        bridge = await start_hci_bridge(LocalLink())
        socks = [await _garbage_client(bridge.port, b"", keep=True)
                 for _ in range(MAX_CLIENTS + 4)]
        await asyncio.sleep(0.1)
        assert len(bridge.adapters) == MAX_CLIENTS
        for s in socks:
            s.close()
        await wait_for(lambda: not bridge.adapters, 5.0)
        await bridge.close()

    run(scenario(), 20)
