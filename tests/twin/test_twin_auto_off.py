"""Auto power-off (issue 14 item 7): the firmware bundle in MicroPython, idle with
nobody around, goes to deep sleep after the board's idle_off_s (600 s) and draws
microamps; its button boots it again (reset cause DEEPSLEEP_RESET, wake reason
EXT0) with its bond, permit key, log and rule 6's interval as they were: the RTC
counted the time asleep, no more. A pen in use (a session paused, a central
connected, the charger in) stays awake.

Old code: the pen never slept (the virtual cell went from 80 % to empty in hours)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalppen.client import PenRefused
from scalppen.simctl import answer, hold_button
from scalppen_hardware.virtual_pen_hw import DEEPSLEEP_RESET, EXT0_WAKE, EXT1_WAKE
from scalppen_protocol.codes import ErrorCode, PenState
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import TwinRig, twin_rig

BOARD = Path(__file__).resolve().parents[2] / "hardware" / "boards" / "pen-s3-revb.json"
IDLE_OFF_MS = json.loads(BOARD.read_text())["limits"]["idle_off_s"] * 1000
DAY_MS = 86_400_000


async def _needle_and_end(r: TwinRig, pen, depth_um: int = 1000) -> None:
    # A permit signed with the pen's key (rule 6 at 1 mm: 7 days), 40 s of needling,
    # STOP: past the first 30 s, the session ends (it does not pause).
    await r.ready_body(pen)
    await within(pen.arm(r.signed_permit(depth_um, 600, b"autooff1")))
    await within(pen.set_depth(depth_um))
    await within(pen.start())
    hw = r.twin.hw
    await wait_until(lambda: hw.stroke_rate > 90, 20.0, "needling")
    await within(r.twin.run_for(40_000), 60.0)
    await within(pen.stop())
    await r.until_status(pen, lambda s: s.state == PenState.FINISHED, "the session to end")


async def _wake(r: TwinRig) -> None:
    boots = r.twin.boots
    await within(hold_button(r.twin, 100), 30.0)
    await wait_until(lambda: not r.twin.asleep and r.twin.boots > boots
                     and r.twin.bridge is not None, 30.0, "the pen to boot again")


def test_an_idle_pen_sleeps_draws_microamps_and_wakes_on_its_button_as_it_was(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await r.pair()
            pen = await r.pen()
            await _needle_and_end(r, pen)
            before = await within(pen.status())
            assert before.lockout_until > before.clock + 6 * 86400
            key = await r.twin.probe("app.store.c['key']")
            seq = await r.twin.probe("app.store.next_seq")
            await within(pen.close())

            # idle, nobody connected: awake until idle_off_s, then asleep
            await within(r.twin.run_for(IDLE_OFF_MS - 20_000), 120.0)
            assert not r.twin.asleep
            await within(r.twin.run_for(40_000), 60.0)
            assert r.twin.asleep
            assert r.twin.display == ""  # the glass is off
            assert not r.twin.hw.body.stepper.enabled and r.twin.hw.body.motor.duty == 0.0
            assert await within(r.radio.scan(1.0), 10.0) == []  # nothing advertises

            # three days asleep: microamps (about 0.4 % of the cell), not 40 mA (22 %/h)
            soc0 = r.twin.hw.body.battery.soc
            await within(r.twin.run_for(3 * DAY_MS), 120.0)
            used = soc0 - r.twin.hw.body.battery.soc
            assert r.twin.asleep
            assert 0.0 < used < 1.0, used

            await _wake(r)
            cause = await r.twin.probe(
                "import machine\nresult = (machine.reset_cause(), machine.wake_reason())",
                exec_=True)
            assert cause == (DEEPSLEEP_RESET, EXT0_WAKE)
            assert await r.twin.probe("app.store.c['key']") == key  # the permit key kept
            assert await r.twin.probe("app.store.next_seq") > seq  # the log goes on

            again = await r.pen()  # the host's bond still opens the link
            try:
                after = await within(again.status())
                # the RTC kept time asleep: the same lift, not three days earlier
                assert after.clock >= before.clock + 3 * 86400
                assert abs(after.lockout_until - before.lockout_until) <= 2
                await r.ready_body(again)
                await within(again.arm(r.signed_permit(1000, 600, b"autooff2")))
                with pytest.raises(PenRefused) as refused:
                    await within(again.start())
                assert refused.value.code == ErrorCode.INTERVAL_LOCKOUT
            finally:
                await within(again.close())

    run(scenario(), 600)


def test_a_paused_session_a_central_and_the_charger_keep_the_pen_awake(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await r.pair()
            pen = await r.pen()
            # a central connected, saying nothing: awake
            await within(r.twin.run_for(IDLE_OFF_MS + 60_000), 120.0)
            assert not r.twin.asleep

            # a session stopped in its first 30 s pauses; the link goes too. The
            # pause window (10 min) runs its course awake, then the countdown.
            await r.start_session(pen, 500, 600)
            await within(pen.stop())
            await r.until_status(pen, lambda s: s.state == PenState.PAUSED, "paused")
            await within(pen.close())
            window_ms = 600_000
            await within(r.twin.run_for(window_ms + IDLE_OFF_MS - 30_000), 180.0)
            assert not r.twin.asleep
            await within(r.twin.run_for(60_000), 60.0)
            assert r.twin.asleep

            # the charger in (it wakes rev B: its sense pin is an RTC GPIO): awake
            boots = r.twin.boots
            r.twin.hw.plug_charger(True)
            await wait_until(lambda: not r.twin.asleep and r.twin.boots > boots
                             and r.twin.bridge is not None, 30.0, "the charger to wake it")
            woke = await r.twin.probe("import machine\nresult = machine.wake_reason()",
                                      exec_=True)
            assert woke == EXT1_WAKE
            await within(r.twin.run_for(IDLE_OFF_MS + 60_000), 120.0)
            assert not r.twin.asleep
            r.twin.hw.plug_charger(False)
            await within(r.twin.run_for(IDLE_OFF_MS + 20_000), 120.0)
            assert r.twin.asleep

            # `scalppen sim`: its state says so, and its `press` wakes the pen
            assert (await answer(r.twin, "state")).endswith(" power=asleep")
            said = await within(answer(r.twin, "press"), 60.0)
            assert said == "ok: button: pressed (the pen woke from sleep)"
            assert not r.twin.asleep
            assert (await answer(r.twin, "state")).endswith(" power=on")

    run(scenario(), 600)
