"""Rule 14 on the twin, through the host's session workflow (what `scalppen session
start` runs): the end reason is the one the pen logged, and a cartridge whose budget
cannot cover the permit is refused before arming (issue 14, items 4 and 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.workflows.session import SessionPlan, SessionRefused, run_session
from scalppen_protocol.codes import ErrorCode, PenState, RecordKind
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig

# What a debugger would do to the pen's memory: the cartridge's count 200 strokes
# short of its rating, as if it had counted more than the START check foresaw.
_NEAR_WORN = (
    "from pen.wear import cart_hex\n"
    "w = app.pen.wear\n"
    "rec = w._rec(cart_hex(app.pen.cart))\n"
    "rec[0] = w.rated(app.pen.cart) - 200\n"
    "result = rec[0]"
)


def test_a_session_the_cartridge_ends_is_reported_as_worn_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            assert r.patient_id is not None
            pen = await r.pen()
            try:
                plan = SessionPlan(r.patient_id, 500, 120, attested=True)
                task = asyncio.ensure_future(run_session(pen, r.db, plan, r.now))
                hw = r.twin.hw
                await wait_until(lambda: hw.stroke_rate > 90, 30.0, "needling")
                assert await r.twin.probe(_NEAR_WORN, exec_=True) > 0
                outcome = await within(task, 60.0)
                assert outcome.ended_by.startswith("cartridge worn out"), outcome.ended_by
                assert outcome.elapsed_s < 60  # long before the permitted 2 minutes
                assert (await within(pen.status())).state == PenState.FINISHED
            finally:
                await within(pen.close())
            recs = S.list_log_records(r.db, r.serial, kinds=[RecordKind.SESSION_END])
            assert recs and recs[-1].code == ErrorCode.CARTRIDGE_WORN  # as the pen logged it

    run(scenario())


def test_a_cartridge_too_worn_for_the_permit_is_refused_before_arming(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            # 100,000 strokes rated: 11 min at 150/s, less than the 15 asked
            r.twin.hw.insert_cartridge("new", rated=100000)
            await r.twin.run_for(500)
            await r.pair()
            assert r.patient_id is not None
            pen = await r.pen()
            try:
                plan = SessionPlan(r.patient_id, 500, 900, attested=True)
                with pytest.raises(SessionRefused) as err:
                    await within(run_session(pen, r.db, plan, r.now), 30.0)
                refusal = err.value.decision.refusals[0]
                assert refusal.rule == 14 and "11 min" in refusal.reason, refusal.reason
                status = await within(pen.status())
                assert status.state == PenState.IDLE and status.permit_s == 0  # never armed
            finally:
                await within(pen.close())

    run(scenario())
