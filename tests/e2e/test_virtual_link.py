"""End to end over the virtual BLE link, with the pen's full firmware.

The pen is ``scalppen_hardware.virtual_pen.VirtualPen``: ``firmware/pen/app.py``
(drivers, core, ``pen/ble.py``) on virtual hardware and a bumble controller. The
host is the real host stack: ``Radio`` (a bumble central behind bleak's API),
``BleTransport``, the ``Pen`` client, the pairing workflow and the safety policy.
Only the air between them is simulated. Every scenario runs on its own event loop
and every await is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError

from scalppen import store as S
from scalppen.client import LinkLost, Pen, PenRefused, PenTimeout
from scalppen.results import CartridgeEvent, NoticeEvent
from scalppen.transports.base import NotPaired, PairingFailed, TransportTimeout
from scalppen.transports.ble import PenUuids, scan
from scalppen.transports.ble_framing import BleFramer
from scalppen.workflows.radio import Radio
from scalppen_protocol import gatt
from scalppen_protocol.codec import decode_frame, encode_frame
from scalppen_protocol.codes import (
    PROTOCOL_VERSION,
    ErrorCode,
    MsgType,
    Notice,
    PenState,
    RecordKind,
)
from tests.e2e.vpen_fixtures import Rig, Tick, radio_silence, rig, run, wait_until, within

pytestmark = pytest.mark.timeout(60)

INSUFFICIENT_AUTHENTICATION = 0x05


def _pen_bonds(r: Rig) -> int:
    return int(r.app.ble.bonds.count())


def _host_bonds(r: Rig) -> dict[str, object]:
    path = r.tmp / "host-bonds.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text() or "{}")
    # bumble's JsonKeyStore: {namespace: {address: keys}}
    return {addr: keys for ns in doc.values() for addr, keys in ns.items()}


async def _raw_client(r: Rig) -> BleakClient:
    """A plain BleakClient on the host's central (no transport, no HELLO)."""
    assert r.radio.central is not None
    client = BleakClient(r.address, backend=r.radio.central.client_backend, timeout=10.0)
    await within(client.connect(), 15.0)
    return client


def _spy_notifications(client: BleakClient) -> list[tuple[int, bytes]]:
    """Every notification the central's ATT client receives, subscribed or not."""
    gatt_client = client._backend._conn.gatt_client  # type: ignore[attr-defined]
    seen: list[tuple[int, bytes]] = []
    original = gatt_client.on_att_handle_value_notification

    def spy(notification: object) -> None:
        seen.append((notification.attribute_handle,  # type: ignore[attr-defined]
                     bytes(notification.attribute_value)))  # type: ignore[attr-defined]
        original(notification)

    gatt_client.on_att_handle_value_notification = spy
    return seen


# ---- discovery and security --------------------------------------------------------------


def test_scan_finds_the_pen_by_its_service_uuid(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            found = await within(r.radio.scan(0.5))
            assert [f.address.upper() for f in found] == [r.address]
            assert found[0].name.startswith("ScalpPen")
            # A scan for another service does not list the pen.
            other = PenUuids("0000feed-0000-1000-8000-00805f9b34fb", gatt.REQUEST_CHAR_UUID,
                             gatt.EVENT_CHAR_UUID)
            assert r.radio.central is not None
            assert await within(scan(0.3, backend=r.radio.central.scanner_backend,
                                     uuids=other)) == []

    run(scenario())


def test_unpaired_central_is_refused_on_the_pen_characteristics(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            with pytest.raises(NotPaired) as refused:
                await within(r.transport().connect(), 15.0)
            assert refused.value.att_error == INSUFFICIENT_AUTHENTICATION

            client = await _raw_client(r)
            try:
                # The standard services answer anyone: the model and serial of this pen.
                model = await within(client.read_gatt_char(gatt.MODEL_NUMBER_CHAR_UUID))
                serial = await within(client.read_gatt_char(gatt.SERIAL_NUMBER_CHAR_UUID))
                assert model.decode() == r.app.board.model
                assert serial.decode() == r.app.serial
                hello = encode_frame(MsgType.HELLO, 1, {"proto_version": PROTOCOL_VERSION,
                                                        "caps": 0})
                frag = BleFramer(client.mtu_size).split(hello)[0]
                with pytest.raises(BleakGATTProtocolError) as err:
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                        response=True))
                assert err.value.code == INSUFFICIENT_AUTHENTICATION
                with pytest.raises(BleakGATTProtocolError) as err:
                    await within(client.read_gatt_char(gatt.EVENT_CHAR_UUID))
                assert err.value.code == INSUFFICIENT_AUTHENTICATION
                with pytest.raises(BleakGATTProtocolError) as err:
                    await within(client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: None))
                assert err.value.code == INSUFFICIENT_AUTHENTICATION
                # Without response the write is dropped silently: the firmware never saw it.
                await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                    response=False))
                await asyncio.sleep(0.05)  # 5 s of the pen's time
                assert r.app.rx == [] and not r.app.handler.hello
                assert not r.app.ble.authenticated and not r.app.ble.link_up
            finally:
                await within(client.disconnect())
            assert _pen_bonds(r) == 0 and _host_bonds(r) == {}

    run(scenario())


def test_wrong_passkey_fails_leaves_no_bond_then_the_right_one_pairs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            with pytest.raises(PairingFailed):
                await within(r.radio.pair(r.address, r.passkey_provider(offset=1),
                                          attempts=1), 20.0)
            await wait_until(lambda: r.app.ble.conn is None, 5.0, "the pen to drop the link")
            assert _pen_bonds(r) == 0, "a failed pairing left a bond on the pen"
            assert _host_bonds(r) == {}, "a failed pairing left a bond on the host"
            assert r.app.pen.key() is None
            with pytest.raises(NotPaired):
                await within(r.transport().connect(), 15.0)

            paired = await r.pair()  # the passkey read off the display, typed right
            assert paired.new_key and paired.info.serial == r.app.serial
            assert paired.info.key_set == 0  # the pen had no key before this pairing
            assert r.app.pen.key() == S.get_permit_key(r.db, r.serial)
            assert _pen_bonds(r) > 0 and r.address in {a.split("/")[0].upper()
                                                       for a in _host_bonds(r)}
            assert len(r.passkeys_seen()) == 2  # one for the failed try, one for this
            assert r.shown_passkey() is None  # the display went back to normal

    run(scenario())


def test_bond_survives_reconnect_and_reboot_without_a_new_passkey(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            assert len(r.passkeys_seen()) == 1
            for round_ in ("reconnect", "reboot"):
                if round_ == "reboot":
                    boots = r.vpen.boots
                    await within(r.vpen.reboot())
                    assert r.vpen.boots == boots + 1
                    await wait_until(lambda: r.state == PenState.IDLE, 5.0, "homing")
                pen = await r.pen()
                try:
                    assert pen.info is not None and pen.info.serial == r.serial
                    assert pen.info.key_set == 1
                    status = await within(pen.status())
                    assert status.state == PenState.IDLE
                    assert r.app.ble.authenticated and r.app.ble.link_up
                    assert _pen_bonds(r) > 0  # read back from the pen's flash after a reboot
                finally:
                    await within(pen.close())
                await wait_until(lambda: r.app.ble.conn is None, 5.0, "disconnect")
            assert len(r.passkeys_seen()) == 1, f"asked again: {r.passkeys_seen()}"
            assert r.vpen.passkey is None

    run(scenario())


# ---- nothing is pushed before the host listens and says HELLO ----------------------------


def test_no_notification_before_the_host_subscribed_and_said_hello(tmp_path: Path) -> None:
    """The core raises events all along; the pen pushes none before the host's HELLO.

    The pen cannot see the CCCD (NimBLE never reports its writes, and
    gatts_notify sends without a subscription): the host subscribes first, then
    says HELLO, and only HELLO opens the flow.
    """

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            generated: list[tuple[int, dict[str, object]]] = []
            handler = r.app.handler
            encode_events = handler.event_frames

            def event_frames(events: list[tuple[int, dict[str, object]]]) -> list[bytes]:
                generated.extend(events)
                return encode_events(events)

            handler.event_frames = event_frames
            hw = r.vpen.hw
            hw.insert_cartridge("new")
            await wait_until(lambda: r.app.pen.cart is not None, 5.0, "a cartridge")
            generated.clear()

            async def swap_cartridge() -> None:
                """The core raises EV_CARTRIDGE (out, then in) whoever listens."""
                before = len(generated)
                hw.remove_cartridge()
                await wait_until(lambda: len(generated) > before, 5.0, "a cartridge-out event")
                hw.insert_cartridge("new")
                await wait_until(lambda: len(generated) > before + 1, 5.0, "a cartridge-in event")
                await asyncio.sleep(0.05)  # 5 s of the pen's time for anything to leak

            hello = encode_frame(MsgType.HELLO, 7, {"proto_version": PROTOCOL_VERSION,
                                                    "caps": 0x3F})

            async def say_hello(client: BleakClient, framer: BleFramer) -> None:
                for frag in framer.split(hello):
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                        response=True))
                await wait_until(lambda: r.app.handler.hello, 5.0, "the pen to take HELLO")

            # 1. A bonded raw client, encrypted, neither subscribed nor HELLO: silence;
            #    for the core no host is linked.
            client = await _raw_client(r)
            try:
                seen = _spy_notifications(client)
                await wait_until(lambda: r.app.ble.authenticated, 5.0, "encryption")
                await swap_cartridge()
                assert seen == [], "the pen notified a client that had not said HELLO"
                assert r.app.ble.link_up and not r.app.link_up() and not r.app.inp.link_up
            finally:
                await within(client.disconnect())
            await wait_until(lambda: r.app.ble.conn is None, 5.0, "disconnect")

            # 2. A new connection, subscribed (the pen cannot know) but no HELLO yet:
            #    still silence.
            client = await _raw_client(r)
            try:
                seen = _spy_notifications(client)
                got: list[bytes] = []
                await within(client.start_notify(gatt.EVENT_CHAR_UUID,
                                                 lambda _c, d: got.append(bytes(d))))
                await wait_until(lambda: r.app.ble.link_up, 5.0, "an authenticated link")
                assert not r.app.handler.hello  # a new link forgets the last HELLO
                assert not r.app.link_up()
                await swap_cartridge()
                assert seen == [] and got == [], "events flowed before HELLO"
                assert {t for t, _ in generated} == {MsgType.EV_CARTRIDGE}

                # 3. HELLO: the answer comes, and from now on the events too.
                framer = BleFramer(client.mtu_size)
                await say_hello(client, framer)
                frames: list = []

                def drain() -> bool:
                    while got:
                        frame = framer.join(got.pop(0))
                        if frame is not None:
                            frames.append(decode_frame(frame))
                    return bool(frames)

                await wait_until(drain, 5.0, "INFO")
                assert frames[0].msg_type == MsgType.INFO and frames[0].seq == 7
                await wait_until(lambda: r.app.inp.link_up, 5.0, "the core to see the host")
                await swap_cartridge()
                await wait_until(lambda: drain() and len(frames) >= 3, 5.0, "events after HELLO")
                kinds = [(f.msg_type, f.fields.get("inserted")) for f in frames[1:3]]
                assert kinds == [(MsgType.EV_CARTRIDGE, 0), (MsgType.EV_CARTRIDGE, 1)]
                assert len(seen) >= 3  # the spy saw what the subscription delivered
            finally:
                await within(client.disconnect())
            await wait_until(lambda: r.app.ble.conn is None, 5.0, "disconnect")

            # 4. The same through the host's transport: subscribed on connect, HELLO
            #    is the client's first word; nothing arrives in between.
            transport = r.transport()
            await within(transport.connect(), 15.0)
            try:
                await wait_until(lambda: r.app.ble.link_up, 5.0, "an authenticated link")
                assert not r.app.handler.hello  # a new link forgets the last HELLO
                await swap_cartridge()
                with pytest.raises(TransportTimeout):
                    await transport.recv_frame(timeout=0.1)
                pen = Pen(transport, timeout=5.0)
                await within(pen.open())
                await within(pen.hello())
                events = pen.events()
                await swap_cartridge()
                first = await within(events.get(5.0))
                second = await within(events.get(5.0))
                assert isinstance(first, CartridgeEvent) and not first.inserted
                assert isinstance(second, CartridgeEvent) and second.inserted
                await within(pen.close())
            finally:
                await within(transport.close())

    run(scenario())


# ---- rule 21: a link lost during a session --------------------------------------------------

#: From the first tick after the pen's radio reports the link down (virtual ms).
CAM_STOPS_WITHIN_MS = 300  # the cam coasts to a stop (motor tau 40 ms, braked)
NEEDLES_HOME_WITHIN_MS = 200  # 0.5 mm at the stepper's top speed is 4 ticks
HOME_UM = 25
QUIET_MS = 5_000  # watched afterwards: nothing moves by itself


def _first_ms(r: Rig, predicate: Callable[[Tick], bool], what: str) -> int:
    for t in r.trace:
        if predicate(t):
            return t.ms
    raise AssertionError(f"never saw {what} in {len(r.trace)} ticks")


async def _drop(r: Rig, how: str, pen: Pen) -> None:
    if how == "host_closes":  # the host app dies: its link goes, no STOP is sent
        await within(pen.transport.close())
    elif how == "central_off":  # the laptop's Bluetooth is switched off
        assert r.radio.central is not None
        await within(r.radio.central.close())
    elif how == "radio_silence":  # out of range: the supervision timer expires
        radio_silence(r.vpen, r.radio)
    else:  # pragma: no cover
        raise ValueError(how)


@pytest.mark.parametrize("how", ["host_closes", "central_off", "radio_silence"])
def test_link_lost_mid_session_stops_retracts_and_nothing_resumes_by_itself(
    tmp_path: Path, how: str
) -> None:
    """Rule 21, measured on the virtual body in virtual time from the pen's first
    tick after its radio reports the link down (the pen is frozen while the link
    goes, so the bound does not depend on the host's speed)."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            permit = await r.start_session(pen, 500)
            hw = r.vpen.hw
            assert hw.motor.duty > 0 and r.app.ble.link_up

            # Freeze the pen's time, cut the link, let the pen's radio notice.
            r.vpen.pause()
            r.record_ticks()
            frozen = r.virtual_ms
            elapsed_at_drop = r.app.pen.elapsed_ms
            await _drop(r, how, pen)
            await wait_until(lambda: not r.app.ble.link_up, 5.0, "the pen to see the link go")
            assert r.virtual_ms == frozen and r.state == PenState.RUNNING
            # The host learns it too: its requests fail at once.
            with pytest.raises(LinkLost):
                await within(pen.status())
            await within(pen.close())

            # Now tick by tick: the first control tick stops the motor and pulls back.
            await within(r.vpen.run_for(1_000))
            first = r.trace[0]
            assert not first.link_up
            assert first.state == PenState.PAUSED, r.state_name()
            assert first.duty == 0.0
            stopped = _first_ms(r, lambda t: t.rate < 1.0, "the cam to stop")
            home = _first_ms(r, lambda t: t.depth_um <= HOME_UM, "the needles to retract")
            assert stopped - first.ms <= CAM_STOPS_WITHIN_MS
            assert home - first.ms <= NEEDLES_HOME_WITHIN_MS
            assert all(t.duty == 0.0 for t in r.trace)
            assert r.app.pen.elapsed_ms == elapsed_at_drop  # the session clock stopped

            # Back to running time, nobody connected: still paused, still.
            r.vpen.resume()
            mark, since = len(r.trace), r.trace[-1].ms
            await wait_until(lambda: r.trace[-1].ms - since >= QUIET_MS,
                             10.0, "5 s of the pen's time")
            assert all(t.duty == 0.0 and t.rate < 1.0 and t.depth_um <= HOME_UM
                       for t in r.trace[mark:])
            assert r.state == PenState.PAUSED

            # The host comes back (a new central if the old one was switched off).
            radio = r.radio
            if how == "central_off":
                radio = Radio(r.link, keystore=r.tmp / "host-bonds.json")
                await within(radio.__aenter__())
            try:
                r.radio = radio
                pen2 = await r.pen()
                mark = len(r.trace)
                status = await within(pen2.status())
                assert status.state == PenState.PAUSED and status.elapsed_ms == elapsed_at_drop
                assert status.permit_depth_um == permit.max_depth_um
                await asyncio.sleep(0.05)  # 5 s of the pen's time, host connected, no START
                assert all(t.duty == 0.0 and t.state == PenState.PAUSED
                           for t in r.trace[mark:])
                # The pen logged why it stopped.
                page = await within(pen2.read_log(1))
                lost = [x for x in page.records if x.kind == RecordKind.LINK_LOST]
                assert len(lost) == 1 and lost[0].code == ErrorCode.FAULT_LINK_LOST

                # Only an explicit new START moves the needles again (PROTOCOL.md).
                await within(pen2.start())
                await wait_until(lambda: hw.stroke_rate > 90, 5.0, "the motor to run again")
                status = await within(pen2.status())  # the same session goes on
                assert status.state == PenState.RUNNING
                assert status.elapsed_ms >= elapsed_at_drop
                page = await within(pen2.read_log(1))
                assert [x.kind for x in page.records].count(RecordKind.SESSION_START) == 1
                # Once the session is closed its permit is spent: no START, no re-ARM.
                await within(pen2.stop())
                await wait_until(lambda: hw.stroke_rate < 1 and hw.depth_um <= HOME_UM,
                                 5.0, "stopped")
                with pytest.raises(PenRefused) as refused:
                    await within(pen2.start())
                assert refused.value.code == ErrorCode.NOT_ARMED
                with pytest.raises(PenRefused) as refused:
                    await within(pen2.arm(permit.as_dict()))
                assert refused.value.code == ErrorCode.PERMIT_REPLAYED
                assert hw.motor.duty == 0.0
                await within(pen2.close())
            finally:
                if how == "central_off":
                    await within(radio.__aexit__(None, None, None))

    run(scenario(), timeout=30.0)


# ---- permits over the link ----------------------------------------------------------------


def _refusals(r: Rig) -> list[int]:
    """Codes of the pen's PERMIT_REFUSED log records, oldest first."""
    return [rec["code"] for rec in r.pen_log(RecordKind.PERMIT_REFUSED)]


def test_forged_tag_and_replayed_permit_are_refused_over_the_link(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            await r.ready_body()
            permit = await r.permit(pen, depth_um=500)
            fields = permit.as_dict()

            # Forged: a tag that does not match, and a depth raised under a real tag.
            bad_tag = {**fields, "tag": bytes([fields["tag"][0] ^ 0x01]) + fields["tag"][1:]}
            deeper = {**fields, "max_depth_um": 1000}
            for forged in (bad_tag, deeper):
                with pytest.raises(PenRefused) as refused:
                    await within(pen.arm(forged))
                assert refused.value.code == ErrorCode.PERMIT_BAD_TAG
            assert r.state == PenState.IDLE

            # The genuine permit still works (a forgery does not spend its nonce)...
            await within(pen.arm(fields))
            assert r.state == PenState.ARMED
            # ...once: the same permit again is a replay, armed or not.
            with pytest.raises(PenRefused) as refused:
                await within(pen.arm(fields))
            assert refused.value.code == ErrorCode.PERMIT_REPLAYED
            status = await within(pen.status())
            assert status.state == PenState.ARMED and status.permit_depth_um == 500
            await within(pen.stop())  # disarm
            with pytest.raises(PenRefused) as refused:
                await within(pen.arm(fields))
            assert refused.value.code == ErrorCode.PERMIT_REPLAYED
            await within(pen.close())

            # The spent nonce survives a reboot of the pen.
            await within(r.vpen.reboot())
            await wait_until(lambda: r.state == PenState.IDLE, 5.0, "homing")
            pen = await r.pen()
            try:
                with pytest.raises(PenRefused) as refused:
                    await within(pen.arm(fields))
                assert refused.value.code == ErrorCode.PERMIT_REPLAYED
                assert r.state == PenState.IDLE
            finally:
                await within(pen.close())
            assert _refusals(r) == [ErrorCode.PERMIT_BAD_TAG] * 2 + [ErrorCode.PERMIT_REPLAYED] * 3
            assert r.vpen.hw.body.strokes == 0  # not one stroke under a refused permit

    run(scenario())


def test_notices_raised_by_a_stop_request_reach_the_host(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                await r.start_session(pen, 500)
                events = pen.events()
                await within(pen.stop())
                notices: list[Notice | int] = []
                with contextlib.suppress(PenTimeout):
                    while len(notices) < 2:
                        ev = await within(events.get(1.0))
                        if isinstance(ev, NoticeEvent):
                            notices.append(ev.code)
                assert notices == [Notice.SESSION_FINISHED, Notice.PERMIT_USED]
            finally:
                await within(pen.close())

    run(scenario())


def test_a_second_session_on_the_same_boot_gets_its_permit_time(tmp_path: Path) -> None:
    """Session 1 uses its whole minute; session 2, a day later, gets its own minute."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                await r.ready_body()
                await within(pen.arm(r.signed_permit(250, 60, b"first-01")))
                await within(pen.set_depth(250))
                await within(pen.start())
                await wait_until(lambda: r.state == PenState.FINISHED, 10.0,
                                 "the permitted minute to run out")
                # A day later (the host sets the pen's clock; no reboot in between),
                # with a new cartridge and a new one-minute permit.
                tomorrow = r.vpen.unix_time() + 86_400 + 60
                await within(pen.set_time(tomorrow))
                await wait_until(lambda: r.vpen.unix_time() >= tomorrow, 5.0, "the RTC")
                await r.ready_body()
                await within(pen.arm(r.signed_permit(250, 60, b"second-2")))
                await within(pen.set_depth(250))
                await within(pen.start())  # refused SESSION_CAP by the bug
                assert r.state == PenState.RUNNING
            finally:
                await within(pen.close())

    run(scenario())


def test_no_permit_is_issued_while_the_pen_has_a_session_open(tmp_path: Path) -> None:
    """The host asks the pen first: with a session running (or paused) it issues and
    records no new permit, and says how to go on."""
    from scalppen.workflows.session import SessionOpen, SessionPlan, run_session

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                await r.start_session(pen, 500)
                issued = len(S.list_permits(r.db, r.serial))
                assert r.patient_id is not None
                plan = SessionPlan(r.patient_id, 500, 600, attested=True)
                with pytest.raises(SessionOpen, match="session open") as err:
                    await within(run_session(pen, r.db, plan, r.now))
                assert "scalppen session stop" in err.value.hint
                assert len(S.list_permits(r.db, r.serial)) == issued
                assert r.state == PenState.RUNNING
            finally:
                await within(pen.close())

    run(scenario())
