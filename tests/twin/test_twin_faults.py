"""Resets of the twin mid-session: power cut, brown-out, a firmware crash caught by the
app's own fail-safe loop, a watchdog that is no longer fed. Each is a new MicroPython
process over the same flash; nothing resumes without a new start (rule 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalppen.client import PenRefused
from scalppen.workflows.logsync import sync_log
from scalppen_protocol.codes import PenState, RecordKind
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import TwinRig, twin_rig

HOME_UM = 25


async def _after_reset(r: TwinRig, boots: int) -> None:
    await wait_until(lambda: r.twin.boots > boots and r.twin.bridge is not None, 30.0,
                     "the reset")
    await r.twin.run_for(2000)


async def _check_nothing_resumed(r: TwinRig) -> None:
    hw = r.twin.hw
    assert hw.stroke_rate < 1.0 and hw.motor.duty == 0.0
    assert hw.depth_um <= HOME_UM
    pen = await r.pen()
    try:
        assert (await within(pen.status())).state != PenState.RUNNING
        with pytest.raises(PenRefused):
            await within(pen.start())  # the permit did not survive the reset
        sync = await within(sync_log(pen, r.db, r.serial, now=r.now()), 30.0)
        assert sync.new > 0
    finally:
        await within(pen.close())
    # eight records a read: a probe must not ask the pen's heap for much
    ends = await r.twin.probe(
        "from pen.store import unpack_record\n"
        "ends = []\nseq = 1\n"
        "while True:\n"
        "    recs = app.store.read(seq, 8)[2]\n"
        "    if not recs:\n        break\n"
        "    for x in recs:\n"
        "        rec = unpack_record(x)\n"
        "        seq = rec['seq'] + 1\n"
        f"        if rec['kind'] == {int(RecordKind.SESSION_END)}:\n"
        "            ends.append(rec)\n"
        "result = ends", exec_=True)
    assert ends and ends[-1]["flags"] & 1, ends  # the session closed as interrupted


@pytest.mark.parametrize("fault", ["power_loss", "brownout"])
def test_power_failure_mid_session_comes_back_safe(tmp_path: Path, fault: str) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            pen = await r.pen()
            await r.start_session(pen)
            boots = r.twin.boots
            r.twin.hw.inject(fault)
            await within(pen.close())
            await _after_reset(r, boots)
            await _check_nothing_resumed(r)

    run(scenario(), 150)


def test_a_firmware_crash_stops_the_motor_at_once_then_the_watchdog_resets(
        tmp_path: Path) -> None:
    # The app's loop catches the exception, stops the motor and waits for the
    # watchdog (pen/app.py _loop): the real run() loop, only the twin exercises it.
    # 4x: the watchdog's second is 250 ms of wall time, room to see the motor stop
    # before the reset on a loaded machine.
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=4.0) as r:
            await r.pair()
            pen = await r.pen()
            await r.start_session(pen)
            boots = r.twin.boots
            hw = r.twin.hw
            await r.twin.probe("def boom(*a):\n    raise RuntimeError('injected firmware bug')\n"
                               "app.pen.tick = boom\nresult = 1", exec_=True)
            await wait_until(lambda: hw.motor.duty == 0.0 or r.twin.boots > boots, 10.0,
                             "the motor to stop")
            assert r.twin.boots == boots  # stopped by the fail-safe, before any reset
            await within(pen.close())
            await _after_reset(r, boots)
            assert "injected firmware bug" in r.twin.console_text()
            await _check_nothing_resumed(r)

    run(scenario(), 150)


def test_the_watchdog_resets_a_pen_that_stops_feeding_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            pen = await r.pen()
            await r.start_session(pen)
            boots = r.twin.boots
            await r.twin.probe("app.pen.broken = True\nresult = 1", exec_=True)
            await within(pen.close())
            await _after_reset(r, boots)
            assert r.twin.hw.reset_cause == 3  # WDT_RESET
            await _check_nothing_resumed(r)

    run(scenario(), 150)
