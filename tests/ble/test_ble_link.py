"""The pen's BLE service on the virtual radio, driven by host code written for bleak.

Pen side: the virtual ``bluetooth`` module (bumble) + ``firmware/pen/ble.py``.
Host side: ``BleakClient``/``BleakScanner`` with the bumble backend. Every
scenario runs on its own event loop and is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble.link import LocalLink

from scalppen.transports.bumble_bleak import BumbleCentral, normalize_uuid, open_central
from scalppen_hardware.hci_bridge import start_hci_bridge
from scalppen_protocol import gatt
from tests.ble.harness import INFO, PEN_ADDRESS, VirtualPen, run, wait_for

INSUFFICIENT_AUTHENTICATION = 0x05
INSUFFICIENT_ENCRYPTION = 0x0F


async def _find_pen(central: BumbleCentral, timeout: float = 5.0):
    return await BleakScanner.find_device_by_filter(
        lambda d, ad: gatt.PEN_SERVICE_UUID in ad.service_uuids,
        timeout=timeout,
        service_uuids=[gatt.PEN_SERVICE_UUID],
        backend=central.scanner_backend,
    )


async def _connect(central: BumbleCentral, **kwargs) -> BleakClient:
    device = await _find_pen(central)
    assert device is not None, "pen not found"
    client = BleakClient(device, backend=central.client_backend, timeout=5.0, **kwargs)
    await client.connect()
    return client


async def _setup(tmp_path: Path) -> tuple[LocalLink, VirtualPen, BumbleCentral]:
    link = LocalLink()
    pen = VirtualPen(link, tmp_path / "ble_secrets.json")
    pen.boot()
    await pen.ble.idle()
    central = await open_central(link)
    return link, pen, central


async def _teardown(pen: VirtualPen, central: BumbleCentral, *clients: BleakClient) -> None:
    for client in clients:
        await client.disconnect()
    await pen.radio.power_off()
    await central.close()


def _notifications(client: BleakClient) -> list[tuple[int, bytes]]:
    """Every notification the central's ATT client receives, subscribed or not."""
    conn = client._backend._conn  # type: ignore[attr-defined]
    seen: list[tuple[int, bytes]] = []
    gatt_client = conn.gatt_client
    original = gatt_client.on_att_handle_value_notification

    def spy(notification):
        seen.append((notification.attribute_handle, bytes(notification.attribute_value)))
        original(notification)

    gatt_client.on_att_handle_value_notification = spy
    return seen


def test_scan_finds_pen_by_service_uuid(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        device = await _find_pen(central)
        assert device is not None
        assert device.address == PEN_ADDRESS
        assert device.name == gatt.ADVERTISED_NAME_PREFIX
        # A filter on another service hides the pen.
        other = await BleakScanner.find_device_by_filter(
            lambda d, ad: True,
            timeout=0.3,
            service_uuids=["0000feed-0000-1000-8000-00805f9b34fb"],
            backend=central.scanner_backend,
        )
        assert other is None
        await _teardown(pen, central)

    run(scenario())


def test_unpaired_central_is_refused_but_reads_device_info_and_battery(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        assert await client.read_gatt_char(gatt.MODEL_NUMBER_CHAR_UUID) == INFO["model"].encode()
        assert await client.read_gatt_char(gatt.SERIAL_NUMBER_CHAR_UUID) == INFO["serial"].encode()
        assert (
            await client.read_gatt_char(gatt.FIRMWARE_REVISION_CHAR_UUID)
            == INFO["firmware"].encode()
        )
        assert await client.read_gatt_char(gatt.BATTERY_LEVEL_CHAR_UUID) == bytes([87])

        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"arm", response=True)
        assert refused.value.code == INSUFFICIENT_AUTHENTICATION
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.read_gatt_char(gatt.EVENT_CHAR_UUID)
        assert refused.value.code == INSUFFICIENT_AUTHENTICATION
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: None)
        assert refused.value.code == INSUFFICIENT_AUTHENTICATION
        # A write without response is dropped silently.
        await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"arm", response=False)
        await asyncio.sleep(0.05)
        assert pen.rx == []
        assert not pen.pen.authenticated and not pen.pen.link_up
        assert pen.pen.send(b"x") is False
        await _teardown(pen, central, client)

    run(scenario())


def test_wrong_passkey_fails_pairing(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        with pytest.raises(BleakError):
            await client.pair(passkey_provider=pen.passkey_provider(offset=1))
        assert len(pen.shown_passkeys) == 1
        assert not pen.pen.authenticated
        assert pen.pen.bonds.count() == 0
        with pytest.raises(BleakGATTProtocolError):
            await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"arm", response=True)
        assert pen.rx == []
        await _teardown(pen, central, client)

    run(scenario())


def test_paired_link_writes_and_notifies_at_mtu_247(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        assert client.mtu_size == gatt.PREFERRED_MTU
        await wait_for(lambda: pen.pen.mtu == gatt.PREFERRED_MTU)

        await client.pair(passkey_provider=pen.passkey_provider())
        assert len(pen.shown_passkeys) == 1
        await wait_for(lambda: pen.pen.authenticated)
        assert pen.passkeys[-1] is None  # the display was cleared
        assert pen.pen.bonds.count() == 1
        assert pen.pen.link_up
        assert pen.link_events == [False, True]  # connected, then authenticated

        got: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: got.put_nowait(bytes(d)))
        assert pen.link_events == [False, True]  # NimBLE does not report the CCCD write

        await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"hello", response=True)
        assert await asyncio.wait_for(got.get(), 2) == b"hello"
        assert pen.rx == [b"hello"]

        # A full ATT payload each way, write without response too.
        big = bytes(range(244))
        await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, big, response=False)
        assert await asyncio.wait_for(got.get(), 2) == big
        assert pen.rx[-1] == big

        # Order is kept for a burst of pen-side sends.
        pen.echo = False
        for i in range(20):
            assert pen.pen.send(bytes([i]) * 10)
        for i in range(20):
            assert await asyncio.wait_for(got.get(), 2) == bytes([i]) * 10
        with pytest.raises(ValueError):
            pen.pen.send(bytes(245))

        # Battery notifications, no pairing needed for them.
        levels: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(
            gatt.BATTERY_LEVEL_CHAR_UUID, lambda c, d: levels.put_nowait(bytes(d))
        )
        pen.pen.set_battery(42)  # gatts_write(..., True): the stack notifies subscribers
        assert await asyncio.wait_for(levels.get(), 2) == bytes([42])
        await _teardown(pen, central, client)

    run(scenario())


def test_gatts_notify_sends_regardless_of_subscription(tmp_path: Path) -> None:
    # MicroPython semantics the firmware must live with: the app pushes nothing
    # before the host said HELLO (it subscribes first).
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        seen = _notifications(client)
        pen.ble.gatts_notify(pen.pen.conn, pen.pen.battery_handle, b"\x07")
        await pen.ble.idle()
        await wait_for(lambda: seen == [(pen.pen.battery_handle, b"\x07")])
        await _teardown(pen, central, client)

    run(scenario())


def test_bond_survives_reconnect_and_pen_reboot(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        await client.pair(passkey_provider=pen.passkey_provider())
        await wait_for(lambda: pen.pen.authenticated)
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)

        async def exchange(tag: bytes) -> None:
            c = await _connect(central)
            await wait_for(lambda: pen.pen.authenticated)
            got: asyncio.Queue[bytes] = asyncio.Queue()
            await c.start_notify(gatt.EVENT_CHAR_UUID, lambda _c, d: got.put_nowait(bytes(d)))
            await c.write_gatt_char(gatt.REQUEST_CHAR_UUID, tag, response=True)
            assert await asyncio.wait_for(got.get(), 2) == tag
            # pair() on a bonded link asks for no passkey.
            await c.pair(passkey_provider=lambda: pytest.fail("passkey asked again"))
            await c.disconnect()
            await wait_for(lambda: not pen.pen.connected)

        await exchange(b"reconnect")

        # The pen reboots: a new stack and BLE instance, the same secrets file.
        stored = json.loads((tmp_path / "ble_secrets.json").read_text())["bonds"]
        # one bond, kept as NimBLE keeps it: our secret and the peer's, under one address
        assert sorted(e[0] for e in stored) == [1, 2] and len({e[1] for e in stored}) == 1
        assert all(isinstance(x, str) for e in stored for x in e[1:])
        old_ble = pen.ble
        await pen.reboot()
        assert pen.ble is not old_ble
        await exchange(b"after reboot")

        assert len(pen.shown_passkeys) == 1
        await _teardown(pen, central)

    run(scenario())


def test_reboot_drops_the_link_and_host_sees_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        dropped = asyncio.Event()
        client = await _connect(central, disconnected_callback=lambda _c: dropped.set())
        await pen.reboot()
        await asyncio.wait_for(dropped.wait(), 3)
        assert not client.is_connected
        await _teardown(pen, central)

    run(scenario())


def test_connect_to_absent_pen_times_out_then_works(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        ghost = BleakClient("C0:00:00:00:00:99", backend=central.client_backend, timeout=0.3)
        with pytest.raises(TimeoutError):
            await ghost.connect()
        client = await _connect(central)
        assert client.is_connected
        await _teardown(pen, central, client)

    run(scenario())


def test_central_over_tcp_hci_bridge(tmp_path: Path) -> None:
    async def scenario() -> None:
        link = LocalLink()
        pen = VirtualPen(link, tmp_path / "ble_secrets.json")
        pen.boot()
        bridge = await start_hci_bridge(link)
        assert bridge.port > 0
        central = await open_central(bridge.transport_name)
        client = await _connect(central)
        await client.pair(passkey_provider=pen.passkey_provider())
        got: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: got.put_nowait(bytes(d)))
        await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"over tcp", response=True)
        assert await asyncio.wait_for(got.get(), 2) == b"over tcp"
        assert client.mtu_size == gatt.PREFERRED_MTU
        await _teardown(pen, central, client)
        await bridge.close()

    run(scenario())


def test_uuid_normalisation() -> None:
    assert normalize_uuid("180A") == gatt.DEVICE_INFORMATION_SERVICE_UUID
    assert normalize_uuid(0x2A19) == gatt.BATTERY_LEVEL_CHAR_UUID
    assert normalize_uuid(gatt.PEN_SERVICE_UUID.upper()) == gatt.PEN_SERVICE_UUID


def test_pen_that_forgot_the_bond_pairs_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        await client.pair(passkey_provider=pen.passkey_provider())
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)
        pen.pen.forget_bonds()
        await pen.reboot()

        loop = asyncio.get_running_loop()
        started = loop.time()
        client = await _connect(central)
        assert loop.time() - started < 3.0
        assert not pen.pen.authenticated
        with pytest.raises(BleakGATTProtocolError):
            await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"x", response=True)
        await client.pair(passkey_provider=pen.passkey_provider())
        await wait_for(lambda: pen.pen.authenticated)
        assert len(pen.shown_passkeys) == 2
        await _teardown(pen, central, client)

    run(scenario())


def test_just_works_pairing_does_not_authenticate(tmp_path: Path) -> None:
    # A central without keyboard or display bonds by Just Works: encrypted but not
    # authenticated, so the pen's characteristics stay closed to it.
    from bumble.pairing import PairingConfig, PairingDelegate

    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        central.device.pairing_config_factory = lambda _conn: PairingConfig(
            sc=True,
            mitm=False,
            bonding=True,
            delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
        )
        conn = client._backend._conn  # type: ignore[attr-defined]
        await asyncio.wait_for(conn.pair(), 5)
        await wait_for(lambda: pen.pen.encrypted)
        assert not pen.pen.authenticated
        assert pen.shown_passkeys == []
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"arm", response=True)
        assert refused.value.code == INSUFFICIENT_AUTHENTICATION
        with pytest.raises(BleakGATTProtocolError):
            await client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: None)
        assert await client.read_gatt_char(gatt.BATTERY_LEVEL_CHAR_UUID) == bytes([87])
        await _teardown(pen, central, client)

    run(scenario())
