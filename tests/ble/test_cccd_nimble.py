"""The pen without CCCD writes, as MicroPython's NimBLE binding runs it on the ESP32.

``extmod/nimble/modbluetooth_nimble.c`` keeps CCCDs inside NimBLE: no attribute in
MicroPython's table and no ``_IRQ_GATTS_WRITE`` for a CCCD write ("This is event
is not called for the CCCD"). ``gatts_notify`` sends whether or not the client
subscribed; ``gatts_write(handle, value, True)`` lets the stack notify the clients
that did (``docs/library/bluetooth.rst``). The stand-in
(``scalppen_hardware.upy.bluetooth``) does the same, and the firmware counts a host
as linked once its link is authenticated (encrypted + MITM) and it said HELLO.
A pen that waited for the CCCD write would be mute on an ESP32.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient

from scalppen.results import CartridgeEvent
from scalppen.transports.ble_framing import BleFramer
from scalppen_protocol import gatt
from scalppen_protocol.codec import decode_frame, encode_frame
from scalppen_protocol.codes import PROTOCOL_VERSION, MsgType
from tests.ble.harness import VirtualPen, run, wait_for
from tests.ble.test_ble_link import _connect, _notifications, _setup, _teardown
from tests.e2e.vpen_fixtures import Rig, rig, wait_until, within

_IRQ_GATTS_WRITE = 3

pytestmark = pytest.mark.timeout(60)


def _spy_irqs(ble: Any, firmware_irq: Any) -> list[tuple[int, Any]]:
    """Every IRQ the stack hands the firmware (MicroPython's ``BLE.irq``)."""
    seen: list[tuple[int, Any]] = []

    def spy(event: int, data: Any) -> Any:
        seen.append((event, data))
        return firmware_irq(event, data)

    ble.irq(spy)
    return seen


def _written_handles(irqs: list[tuple[int, Any]]) -> list[int]:
    return [data[1] for event, data in irqs if event == _IRQ_GATTS_WRITE]


async def _paired(pen: VirtualPen, client: BleakClient) -> None:
    await client.pair(passkey_provider=pen.passkey_provider())
    await wait_for(lambda: pen.pen.authenticated)


# ---- the stand-in: what NimBLE reports ------------------------------------------------------


def test_a_cccd_write_reaches_the_firmware_as_no_irq(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        irqs = _spy_irqs(pen.ble, pen.pen._irq)
        client = await _connect(central)
        await _paired(pen, client)
        await client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: None)
        await client.start_notify(gatt.BATTERY_LEVEL_CHAR_UUID, lambda c, d: None)
        await client.stop_notify(gatt.EVENT_CHAR_UUID)
        await client.stop_notify(gatt.BATTERY_LEVEL_CHAR_UUID)
        await pen.ble.idle()
        assert _written_handles(irqs) == [], "a CCCD write was reported to the firmware"
        # A write to the request characteristic is reported (the spy works).
        pen.echo = False
        await client.write_gatt_char(gatt.REQUEST_CHAR_UUID, b"req", response=True)
        assert _written_handles(irqs) == [pen.pen.rx_handle]
        assert pen.rx == [b"req"]
        await _teardown(pen, central, client)

    run(scenario())


# ---- PenBle: linked by authentication, not by a subscription it cannot see ------------------


def test_the_link_is_up_on_authentication_and_send_needs_no_subscription(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)
        seen = _notifications(client)
        await wait_for(lambda: pen.pen.conn is not None)
        assert pen.link_events == [False]  # a central came: not authenticated yet
        assert not pen.pen.link_up and pen.pen.send(b"early") is False

        await _paired(pen, client)
        assert pen.pen.link_up
        assert pen.link_events == [False, True]
        # Not subscribed: the pen sends anyway (NimBLE does), the central's ATT
        # client receives it. The app holds everything back until HELLO.
        assert pen.pen.send(b"unsubscribed") is True
        await pen.ble.idle()
        await wait_for(lambda: seen == [(pen.pen.tx_handle, b"unsubscribed")])

        got: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: got.put_nowait(bytes(d)))
        assert pen.link_events == [False, True]  # the subscription changes nothing here
        assert pen.pen.send(b"subscribed") is True
        assert await asyncio.wait_for(got.get(), 2) == b"subscribed"
        await client.stop_notify(gatt.EVENT_CHAR_UUID)
        assert pen.link_events == [False, True] and pen.pen.link_up

        await client.disconnect()
        await wait_for(lambda: pen.pen.conn is None)
        assert pen.link_events == [False, True, False] and not pen.pen.link_up
        assert pen.pen.send(b"gone") is False
        await _teardown(pen, central)

    run(scenario())


def test_battery_level_goes_to_subscribers_through_the_stack(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, central = await _setup(tmp_path)
        client = await _connect(central)  # no pairing needed for the battery
        seen = _notifications(client)
        await wait_for(lambda: pen.pen.conn is not None)
        pen.pen.set_battery(55)
        await pen.ble.idle()
        assert pen.ble.gatts_read(pen.pen.battery_handle) == bytes([55])
        assert await client.read_gatt_char(gatt.BATTERY_LEVEL_CHAR_UUID) == bytes([55])
        assert seen == []  # not subscribed: the stack notifies nobody

        levels: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(gatt.BATTERY_LEVEL_CHAR_UUID,
                                  lambda c, d: levels.put_nowait(bytes(d)))
        pen.pen.set_battery(42)
        assert await asyncio.wait_for(levels.get(), 2) == bytes([42])
        pen.pen.set_battery(142)  # clamped
        assert await asyncio.wait_for(levels.get(), 2) == bytes([100])

        await client.stop_notify(gatt.BATTERY_LEVEL_CHAR_UUID)
        before = len(seen)
        pen.pen.set_battery(30)
        await pen.ble.idle()
        await asyncio.sleep(0.05)
        assert len(seen) == before and levels.empty()
        await _teardown(pen, central, client)

    run(scenario())


# ---- the app: a host is linked when authenticated and it said HELLO --------------------------


def _hello_frags(client: BleakClient, seq: int = 7) -> list[bytes]:
    hello = encode_frame(MsgType.HELLO, seq, {"proto_version": PROTOCOL_VERSION, "caps": 0x3F})
    return BleFramer(client.mtu_size).split(hello)


async def _raw_client(r: Rig) -> BleakClient:
    assert r.radio.central is not None
    client = BleakClient(r.address, backend=r.radio.central.client_backend, timeout=10.0)
    await within(client.connect(), 15.0)
    return client


def test_the_host_stack_talks_to_a_pen_that_never_sees_the_cccd(tmp_path: Path) -> None:
    """Pairing (HELLO, SET_TIME, SET_KEY), a session's requests and events, over the
    host's own transport: none of it waits for a CCCD write the pen never gets."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            app = r.app
            irqs = _spy_irqs(app.ble._ble, app.ble._irq)
            paired = await r.pair()
            assert paired.info.serial == app.serial
            pen = await r.pen()
            try:
                assert app.handler.hello and app.link_up()
                await wait_until(lambda: app.inp.link_up, 5.0, "the core to see the host")
                status = await within(pen.status())
                assert status.battery_pct > 0
                events = pen.events()
                r.vpen.hw.insert_cartridge("new")
                event = await within(events.get(5.0))
                assert isinstance(event, CartridgeEvent) and event.inserted
            finally:
                await within(pen.close())
            await wait_until(lambda: app.ble.conn is None, 5.0, "disconnect")
            assert not app.link_up() and not app.handler.hello
            assert set(_written_handles(irqs)) == {app.ble.rx_handle}

    run(scenario(), 60)


def test_the_app_links_on_authentication_and_hello_and_drops_with_the_link(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            app = r.app
            await wait_until(lambda: app.ble.conn is None, 5.0, "the pairing link to go")

            # Authenticated, not subscribed, no HELLO: no host for the core.
            client = await _raw_client(r)
            try:
                await wait_until(lambda: app.ble.authenticated, 5.0, "encryption")
                await within(r.vpen.run_for(100))
                assert app.ble.link_up and not app.link_up() and not app.inp.link_up
                # A HELLO queued while the pen is frozen goes with the link: the
                # host had not subscribed, and nobody answers a request of a link
                # that is gone.
                r.vpen.pause()
                dropped = app.dropped
                for frag in _hello_frags(client):
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                        response=True))
                assert app.rx and not app.handler.hello
            finally:
                await within(client.disconnect())
            await wait_until(lambda: app.ble.conn is None, 5.0, "disconnect")
            assert app.rx == [] and app.dropped > dropped
            r.vpen.resume()
            await within(r.vpen.run_for(100))
            assert not app.handler.hello and not app.inp.link_up

            # Subscribed, then HELLO: linked; INFO is the answer.
            client = await _raw_client(r)
            try:
                got: list[bytes] = []
                await within(client.start_notify(gatt.EVENT_CHAR_UUID,
                                                 lambda _c, d: got.append(bytes(d))))
                await wait_until(lambda: app.ble.authenticated, 5.0, "encryption")
                assert not app.link_up()
                for frag in _hello_frags(client, seq=9):
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                        response=True))
                framer = BleFramer(client.mtu_size)
                frames: list[Any] = []

                def answered() -> bool:
                    while got:
                        frame = framer.join(got.pop(0))
                        if frame is not None:
                            frames.append(decode_frame(frame))
                    return bool(frames)

                await wait_until(answered, 5.0, "INFO")
                assert frames[0].msg_type == MsgType.INFO and frames[0].seq == 9
                assert app.link_up()
                await wait_until(lambda: app.inp.link_up, 5.0, "the core to see the host")
            finally:
                await within(client.disconnect())
            await wait_until(lambda: not app.ble.link_up, 5.0, "disconnect")
            assert not app.link_up()
            await wait_until(lambda: not app.inp.link_up, 5.0, "the core to see the link go")

    run(scenario(), 60)
