"""Bluetooth security and rule 21 against the twin: the firmware bundle in MicroPython,
over the NimBLE-faithful bluetooth model (CCCD writes unseen, notifications sent
without a subscription, IRQs at the tick boundary)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError

from scalppen.transports.base import NotPaired, PairingFailed
from scalppen.transports.ble_framing import BleFramer
from scalppen_protocol import gatt
from scalppen_protocol.codec import encode_frame
from scalppen_protocol.codes import PROTOCOL_VERSION, MsgType, PenState
from tests.e2e.vpen_fixtures import radio_silence, run, wait_until, within
from tests.twin.twin_rig import TwinRig, twin_rig

INSUFFICIENT_AUTHENTICATION = 0x05
HOME_UM = 25
CAM_STOPS_WITHIN_MS = 300
NEEDLES_HOME_WITHIN_MS = 200


def _host_bonds(r: TwinRig) -> dict[str, object]:
    from scalppen.transports.bond_store import SealedJsonKeyStore

    path = r.tmp / "host-bonds.json"
    return SealedJsonKeyStore(str(path)).read() if path.exists() else {}


async def _pen_bonds(r: TwinRig) -> int:
    return int(await r.twin.probe("app.ble.bonds.count()"))


def test_unpaired_central_is_refused_and_the_firmware_never_sees_its_writes(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as r:
            with pytest.raises(NotPaired):
                await within(r.radio.transport(r.address, attempts=1).connect(), 20.0)
            assert r.radio.central is not None
            client = BleakClient(r.address, backend=r.radio.central.client_backend,
                                 timeout=20.0)
            await within(client.connect(), 20.0)
            try:
                # Device Information answers anyone: read from the twin's GATT table.
                serial = await within(client.read_gatt_char(gatt.SERIAL_NUMBER_CHAR_UUID))
                assert serial.decode() == await r.twin.probe("app.serial")
                firmware = await within(client.read_gatt_char(gatt.FIRMWARE_REVISION_CHAR_UUID))
                assert firmware.decode() == await r.twin.probe(
                    "__import__('pen.version').version.VERSION")
                hello = encode_frame(MsgType.HELLO, 1, {"proto_version": PROTOCOL_VERSION, "caps": 0})
                frag = BleFramer(client.mtu_size).split(hello)[0]
                with pytest.raises(BleakGATTProtocolError) as err:
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                        response=True))
                assert err.value.code == INSUFFICIENT_AUTHENTICATION
                await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                    response=False))
                await r.twin.run_for(500)
                assert await r.twin.probe("(len(app.rx), app.handler.hello, app.link_up())") \
                    == (0, False, False)
            finally:
                await within(client.disconnect())
            assert await _pen_bonds(r) == 0 and _host_bonds(r) == {}

    run(scenario(), 90)


def test_wrong_passkey_leaves_no_bond_and_the_right_one_pairs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as r:
            async def wrong() -> str:
                return f"{(int(await r.passkey()) + 1) % 1_000_000:06d}"

            with pytest.raises(PairingFailed):
                await within(r.radio.pair(r.address, wrong, attempts=1), 30.0)
            await wait_until(lambda: r.twin.passkey is None, 10.0, "the passkey to go")
            assert await _pen_bonds(r) == 0 and _host_bonds(r) == {}
            assert await r.twin.probe("app.pen.key()") is None
            paired = await r.pair()
            assert paired.new_key
            assert await _pen_bonds(r) > 0

    run(scenario(), 120)


def test_bond_survives_a_reset_of_the_pen_without_a_new_passkey(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as r:
            await r.pair()
            shown: list[str] = []
            r.twin.on_display(lambda text: shown.append(text) if "PAIR" in text else None)
            boots = r.twin.boots
            await r.twin.reboot()  # a hard reset: a new process, fresh heap, same flash
            await wait_until(lambda: r.twin.boots == boots + 1 and r.twin.bridge is not None,
                             20.0, "the reset")
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.key_set == 1
                assert (await within(pen.status())).state == PenState.IDLE
                assert await r.twin.probe("app.link_up()") is True
            finally:
                await within(pen.close())
            assert shown == [], f"asked for a passkey again: {shown}"

    run(scenario(), 120)


@pytest.mark.parametrize("how", ["host_closes", "radio_silence"])
def test_link_lost_mid_session_stops_retracts_and_nothing_resumes(tmp_path: Path,
                                                                   how: str) -> None:
    # Rule 21, measured on the body in virtual time, tick by tick, from outside.
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            pen = await r.pen()
            await r.start_session(pen, 500)
            hw = r.twin.hw
            trace: list[tuple[int, float, float, float]] = []
            r.twin.on_tick(lambda h: trace.append((h.clock.world_us // 1000, h.motor.duty,
                                                   h.stroke_rate, h.depth_um)))
            if how == "host_closes":
                await within(pen.close())
            else:
                radio_silence(r.twin, r.radio)
            await wait_until(lambda: bool(trace) and trace[-1][2] < 1.0
                             and trace[-1][3] <= HOME_UM, 20.0, "needles stopped and home")
            drop = next(t for t in trace if t[1] == 0.0)
            stopped = next(t for t in trace if t[2] < 1.0)
            home = next(t for t in trace if t[3] <= HOME_UM)
            assert stopped[0] - drop[0] <= CAM_STOPS_WITHIN_MS
            assert home[0] - drop[0] <= NEEDLES_HOME_WITHIN_MS
            mark = len(trace)
            await r.twin.run_for(5000)
            assert all(t[1] == 0.0 and t[2] < 1.0 and t[3] <= HOME_UM for t in trace[mark:])
            assert await r.twin.probe("app.pen.state") == PenState.PAUSED
            if how == "radio_silence":
                await within(pen.close())
            # back on the link: still paused; nothing resumed by itself
            again = await r.pen()
            try:
                assert (await within(again.status())).state == PenState.PAUSED
            finally:
                await within(again.close())
            assert hw.motor.duty == 0.0

    run(scenario(), 150)
