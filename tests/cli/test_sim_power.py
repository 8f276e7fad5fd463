"""`scalppen sim` says when the pen powers itself off and when a press wakes it
(issue 14 item 7): a ``power:`` line on its output, ``power=`` in its ``state``."""

from __future__ import annotations

import asyncio

from scalppen import sim
from scalppen.simctl import answer


class _Pen:
    asleep = False


def test_the_sim_prints_a_line_when_the_pen_sleeps_and_when_it_wakes() -> None:
    pen, said = _Pen(), []

    async def go() -> None:
        task = asyncio.create_task(sim._watch_power(pen, said.append))
        await asyncio.sleep(0.25)
        pen.asleep = True
        await asyncio.sleep(0.25)
        pen.asleep = False
        await asyncio.sleep(0.25)
        task.cancel()

    asyncio.run(go())
    assert said == [sim.POWER_ASLEEP, sim.POWER_ON]
    assert sim.POWER_ASLEEP == "power: asleep (press to wake)"


def test_press_on_a_pen_that_does_not_wake_is_one_error_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scalppen import simctl

    class _Hw:
        def set_button(self, pressed: bool) -> None:
            pass

    class _Asleep:
        asleep = True
        boots = 1
        hw = _Hw()

        async def run_for(self, ms: int) -> None:
            pass

    monkeypatch.setattr(simctl, "WAKE_WITHIN_S", 0.2)
    line = asyncio.run(answer(_Asleep(), "press"))
    assert line.startswith("error: button: pressed, the pen did not wake")
