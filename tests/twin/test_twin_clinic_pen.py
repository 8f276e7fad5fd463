"""A clinic pen in the twin (issue 15 item 3): the firmware bundle built for a clinic
(``scalppen build --clinic``) keeps rule 6 per patient. The host's permits name the
patient by their reference; a second patient is treated right after the first, and
the first patient's early return is refused by the pen itself, even with a permit
signed past the host's policy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.client import PenRefused
from scalppen.policy import CONTRAINDICATIONS
from scalppen.policy.permits import NO_PATIENT, sign_permit
from scalppen.workflows.session import SessionPlan, run_session
from scalppen_protocol.codes import ErrorCode
from tests.e2e.vpen_fixtures import within
from tests.twin.twin_rig import twin_rig


def run(coro: object, timeout: float = 240.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_a_second_patient_right_after_the_first_and_the_first_refused_by_the_pen(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, clinic=True) as r:
            await r.pair()
            ada = r.patient_id
            assert ada is not None
            bob = S.add_profile(r.db, "Bob", birth_year=1980).id
            S.record_screening(r.db, bob, dict.fromkeys(CONTRAINDICATIONS, False), now=r.now())
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.limits is not None
                assert pen.info.limits.patient_slots == 64 and pen.info.limits.clinic
                first = await within(run_session(
                    pen, r.db, SessionPlan(ada, 500, 60, attested=True), r.now), 120.0)
                assert first.ended_by == "permitted time reached", first.ended_by
                await r.ready_body(pen)
                second = await within(run_session(
                    pen, r.db, SessionPlan(bob, 500, 60, attested=True), r.now), 120.0)
                assert second.ended_by == "permitted time reached", second.ended_by
                ada_ref, bob_ref = S.patient_ref(r.db, ada), S.patient_ref(r.db, bob)
                assert NO_PATIENT not in (ada_ref, bob_ref) and ada_ref != bob_ref
                # Ada again, with a permit signed past the host's policy: the pen refuses
                await r.ready_body(pen)
                unix = r.twin.unix_time()
                permit = sign_permit(r.key(), 500, 60, unix - 5, unix + 300, b"ada-back",
                                     ada_ref)
                await within(pen.arm(permit.as_dict()))
                status = await within(pen.status())
                assert status.lockout_until >= unix + 3 * 86400 - 120  # Ada's 72 h
                await within(pen.set_depth(500))
                with pytest.raises(PenRefused) as err:
                    await within(pen.start())
                assert err.value.code == ErrorCode.INTERVAL_LOCKOUT
                # and a permit that names nobody is refused outright
                nobody = sign_permit(r.key(), 500, 60, unix - 5, unix + 300, b"nobody-1")
                with pytest.raises(PenRefused) as err:
                    await within(pen.arm(nobody.as_dict()))
                assert err.value.code == ErrorCode.PERMIT_NO_PATIENT
            finally:
                await within(pen.close())

    run(scenario())
