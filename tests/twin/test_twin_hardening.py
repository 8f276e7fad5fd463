"""A second central against the real firmware (issue: pen hardening, findings 1-3).

A phone bonded by passkey (any BLE app; it never had the permit key) waits for the
host's link to drop, then: STARTs under the host's armed permit; moves the clock
back four days around a STOP; floods refused requests to wipe the log before the
host syncs. Against the twin (the exact bundle in MicroPython) over the virtual
Bluetooth link, none of it works: the permit was disarmed with its link, the clock
takes no SET_TIME without the key's tag, and the evidence is still there for the
host, which acknowledges it (LOG_ACK) once stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scalppen import store as S
from scalppen.client import Pen, PenRefused
from scalppen.transports.ble import BleTransport
from scalppen.transports.bumble_bleak import open_central
from scalppen.workflows.logsync import sync_log
from scalppen_protocol.codes import ErrorCode, MsgType, PenState, RecordKind
from tests.e2e.vpen_fixtures import run, within
from tests.twin.twin_rig import TwinRig, twin_rig
from tests.twin.twin_watch import probe, until

pytestmark = pytest.mark.timeout(180)

PHONE = "F0:5C:A1:00:00:0C"
DAY = 86_400


@contextlib.asynccontextmanager
async def phone(r: TwinRig, tmp: Path, *, pair: bool = True) -> AsyncIterator[Pen]:
    """A second central bonded by passkey, no permit key. ``pair``: bond now, in the
    pairing window opened on the pen (button held 3.5 s; not while a session is
    open), the passkey read off its display; else come back on the bond it has."""
    central = await within(open_central(r.twin.link, address=PHONE,
                                        keystore_path=str(tmp / "phone-bonds.json")))
    try:
        transport = BleTransport(r.address, backend=central.client_backend)
        if pair:
            r.twin.hw.set_button(True)
            await within(r.twin.run_for(3_500))
            r.twin.hw.set_button(False)
            await within(transport.pair(r.passkey), 30.0)
        pen = Pen(transport, timeout=10.0)
        await within(pen.__aenter__(), 20.0)  # open the link, say HELLO
        try:
            yield pen
        finally:
            await within(pen.close())
    finally:
        await within(central.close())


async def host_gone(r: TwinRig, pen: Pen) -> None:
    await within(pen.close())
    await until(r.twin, "app.ble.conn is None", 10.0, "the host's link to drop")


async def refused(call: Any) -> int:
    with pytest.raises(PenRefused) as err:
        await within(call)
    return int(err.value.code)


def test_a_phone_cannot_start_under_the_permit_the_host_armed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await r.pair()
            pen = await r.pen()
            await r.ready_body(pen)
            await within(pen.arm(r.signed_permit(500, 600, b"hostarm1")))
            await within(pen.set_depth(500))
            assert (await within(pen.status())).state == PenState.ARMED
            await host_gone(r, pen)  # the host's link drops with the pen armed
            async with phone(r, tmp_path) as intruder:
                st = await within(intruder.status())
                assert st.state == PenState.IDLE and st.permit_depth_um == 0
                assert await refused(intruder.start()) == ErrorCode.NOT_ARMED
                await within(r.twin.run_for(1_000))
                assert r.twin.hw.stroke_rate == 0
                assert await probe(r.twin, "app.pen.state") == PenState.IDLE
            # the host comes back and finds the permit gone (disarmed, logged)
            pen = await r.pen()
            try:
                page = await within(pen.sync_log(1), 20.0)
                assert any(x.kind == RecordKind.DISARMED for x in page.records)
            finally:
                await within(pen.close())

    run(scenario(), 150)


def test_a_phone_cannot_move_the_clock_around_a_stop(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await r.pair()
            async with phone(r, tmp_path):  # bonded while the window was open
                pass
            await until(r.twin, "app.ble.conn is None", 10.0, "the phone to go")
            pen = await r.pen()
            await r.start_session(pen, 500)
            await within(r.twin.run_for(5_000))
            await host_gone(r, pen)  # the session pauses: nobody is watching
            async with phone(r, tmp_path, pair=False) as intruder:
                now = int((await within(intruder.status())).clock)
                back = {"unix": now - 4 * DAY, "nonce": b"phone-01", "tag": bytes(32)}
                assert await refused(intruder._command(MsgType.SET_TIME, back)) == \
                    ErrorCode.PERMIT_BAD_TAG
                await within(intruder.end_session())  # STOP is always allowed: it ends
                right = dict(back, unix=now, nonce=b"phone-02")
                assert await refused(intruder._command(MsgType.SET_TIME, right)) == \
                    ErrorCode.PERMIT_BAD_TAG
                st = await within(intruder.status())
                assert abs(st.last_session_end - now) <= 2
                assert st.lockout_until >= now + 72 * 3600
            pen = await r.pen()
            try:
                summary = await within(sync_log(pen, r.db, r.serial, now=r.now()), 30.0)
                assert summary.clock_findings == []  # the clock never moved
                [session] = S.list_sessions(r.db, pen_serial=r.serial)
                assert session.ended_at is not None
                assert abs(session.ended_at.timestamp() - now) <= 2
            finally:
                await within(pen.close())

    run(scenario(), 150)


def test_a_refusal_flood_leaves_the_evidence_for_the_host(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await r.pair()
            pen = await r.pen()
            await r.start_session(pen, 500)
            await within(r.twin.run_for(3_000))
            await within(pen.end_session())
            await host_gone(r, pen)
            before = await probe(r.twin, "app.pen.store.last_seq()")
            async with phone(r, tmp_path) as intruder:
                now = int((await within(intruder.status())).clock)
                for i in range(150):
                    forged = {"unix": now - DAY, "nonce": b"f%07d" % i, "tag": bytes(32)}
                    with contextlib.suppress(PenRefused):
                        await within(intruder._command(MsgType.SET_TIME, forged))
                    with contextlib.suppress(PenRefused):
                        await within(intruder.start())
                ack = {"up_to_seq": 10**6, "tag": bytes(32)}  # free the space? no key
                assert await refused(intruder._command(MsgType.LOG_ACK, ack)) == \
                    ErrorCode.PERMIT_BAD_TAG
            await within(r.twin.run_for(61_000))  # the counts are written
            written = await probe(r.twin, "app.pen.store.last_seq()") - before
            assert written < 20, f"{written} records for 301 refused requests"
            pen = await r.pen()
            try:
                summary = await within(sync_log(pen, r.db, r.serial, now=r.now()), 30.0)
                kinds = [x.kind for x in S.list_log_records(r.db, r.serial)]
                assert RecordKind.SESSION_START in kinds and RecordKind.SESSION_END in kinds
                counted = sum(x.a for x in S.list_log_records(
                    r.db, r.serial, kinds=[RecordKind.REFUSALS_REPEATED]))
                assert counted >= 290
                # the host told the pen what it stored, signed with the key
                assert summary.acknowledged == summary.last_seq
                assert await probe(r.twin, "app.pen.store.c['ack']") == summary.last_seq
            finally:
                await within(pen.close())

    run(scenario(), 170)
