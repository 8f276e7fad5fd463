"""Every error exit of a session command stops the needles first (issue 14, item 2).

The session command died (an unanswered GET_STATUS) without sending STOP, and the
pen needled on until its link-loss timeout. Now ``run_session`` sends STOP on any
early exit (an exception, Ctrl-C, a lost answer) before it lets the error out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scalppen.results import TelemetryEvent
from scalppen.workflows.session import SessionPlan, run_session
from scalppen_protocol.codes import PenState
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig


class ViewCrashed(RuntimeError):
    pass


def test_an_error_in_the_session_command_stops_the_pen_before_it_exits(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            assert r.patient_id is not None
            pen = await r.pen()
            try:
                seen: list[object] = []

                def view(event: object) -> None:  # the live view fails mid-session
                    seen.append(event)
                    if isinstance(event, TelemetryEvent) and len(seen) > 3:
                        raise ViewCrashed("the terminal went away")

                plan = SessionPlan(r.patient_id, 500, 300, attested=True)
                with pytest.raises(ViewCrashed):
                    await within(run_session(pen, r.db, plan, r.now, on_event=view), 60.0)
                status = await within(pen.status())
                # stopped, not running: in its first 30 s of needling, paused and resumable
                assert status.state == PenState.PAUSED and status.resume_left_s > 0, status
                await wait_until(lambda: r.twin.hw.stroke_rate < 1.0, 10.0, "the motor to stop")
            finally:
                await within(pen.close())

    run(scenario(), 120)


def test_a_cancelled_session_command_stops_the_pen(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            assert r.patient_id is not None
            pen = await r.pen()
            try:
                plan = SessionPlan(r.patient_id, 500, 300, attested=True)
                task = asyncio.ensure_future(run_session(pen, r.db, plan, r.now))
                await wait_until(lambda: r.twin.hw.stroke_rate > 90, 20.0, "needling")
                task.cancel()  # Ctrl-C, or the event loop closing under it
                with pytest.raises(asyncio.CancelledError):
                    await task
                status = await within(pen.status())
                assert status.state == PenState.PAUSED and status.resume_left_s > 0, status
                await wait_until(lambda: r.twin.hw.stroke_rate < 1.0, 10.0, "the motor to stop")
            finally:
                await within(pen.close())

    run(scenario(), 120)
