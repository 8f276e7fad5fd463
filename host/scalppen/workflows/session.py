"""One needling session: policy -> permit -> pen, live events, then log and wear.

The host's policy decides first (rules 4-7, 16-19, 22); only then is a permit
signed and sent. The pen enforces its own hard limits whatever the host sends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from scalppen import store as S
from scalppen.client import Pen, PenRefused, PenTimeout
from scalppen.policy import Decision, PenLimits, SessionRequest, evaluate, issue_permit
from scalppen.policy.cartridge import cartridge_refusal
from scalppen.policy.permits import NO_PATIENT, PermitFields
from scalppen.policy.resume import resume_permit
from scalppen.refusals import describe
from scalppen.results import FaultEvent, NoticeEvent, PenEvent, TelemetryEvent
from scalppen.workflows.logsync import SyncSummary, sync_log
from scalppen_protocol.codes import ErrorCode, Notice, PenState, RecordKind


class SessionOpen(Exception):
    """The pen already has a session open (running or paused): no new permit."""

    hint = "stop it first: scalppen session stop"

    def __init__(self, state: str, resume_left_s: int = 0) -> None:
        super().__init__(f"the pen has a session open ({state.lower()}); no new permit "
                         "was issued")
        if resume_left_s:
            self.hint = (f"go on with it: scalppen session resume ({_minutes(resume_left_s)} "
                         "left), or end it: scalppen session stop")


class NothingToResume(Exception):
    """The pen holds no paused session that can still be started again."""

    hint = "start a new one: scalppen session start"


def _minutes(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d} min"


class SessionRefused(Exception):
    """The host's safety policy refused the session; ``decision.refusals`` say why."""

    def __init__(self, decision: Decision) -> None:
        first = decision.refusals[0] if decision.refusals else None
        text = f"rule {first.rule}: {first.reason}" if first else "the policy refused"
        super().__init__(f"session refused by {text}")
        self.decision = decision


@dataclass
class SessionPlan:
    profile_id: int
    depth_um: int
    duration_s: int | None = None
    speed_level: int | None = None
    attested: bool = False


@dataclass
class SessionOutcome:
    decision: Decision | None  # None: a resumed session (decided when it started)
    ended_by: str = ""
    fault: int = 0
    elapsed_s: float = 0.0
    strokes: int = 0
    warned: bool = False
    telemetry: list[TelemetryEvent] = field(default_factory=list)
    sync: SyncSummary | None = None
    #: > 0: the pen paused the session instead of ending it (stopped in its first
    #: 30 s): seconds left to resume it (``scalppen session resume``)
    resumable_s: int = 0


def decide(
    db: S.Store, serial: str, plan: SessionPlan, limits: PenLimits, now: datetime,
    pen_last_session: tuple[datetime, int] | None = None,
    pen_lock_left_s: int = 0,
) -> Decision:
    """The host policy's decision for ``plan`` (records the attestation first, rule 19).

    ``pen_lock_left_s``: the wait the pen itself still counts (its STATUS lockout_until
    minus its clock, both in the pen's frame), whatever this computer's clock says."""
    if plan.attested:
        S.record_attestation(db, plan.profile_id, pen_serial=serial, at=now)
    history = S.load_history(
        db, plan.profile_id, pen_serial=serial, pen_last_session=pen_last_session,
        pen_lock_left_s=pen_lock_left_s,
    )
    return evaluate(
        history, SessionRequest(depth_um=plan.depth_um, duration_s=plan.duration_s),
        now=now, pen_limits=limits,
    )


async def run_session(
    pen: Pen,
    db: S.Store,
    plan: SessionPlan,
    now: Callable[[], datetime],
    *,
    on_event: Callable[[PenEvent], None] | None = None,
    started: Callable[[Decision], None] | None = None,
    stop_requested: asyncio.Event | None = None,
) -> SessionOutcome:
    """Run one session on a connected pen (HELLO done) and store what happened.

    Raises:
        SessionOpen: the pen already has a session open (nothing was issued).
        SessionRefused: the policy refused (nothing was sent to the pen).
        PenRefused: the pen refused a step (its hard limits, its own lockouts).
    """
    info = pen.info
    assert info is not None and info.limits is not None
    serial = info.serial
    status = await pen.status()
    if status.state in (PenState.RUNNING, PenState.PAUSED):
        raise SessionOpen(PenState(status.state).name, status.resume_left_s)
    key = S.get_permit_key(db, serial)
    if key is None:
        raise S.NotFoundError(f"no permit key for pen {serial}: pair it with `scalppen pair`")
    if not status.clock:
        # A power cut took the pen's clock: set it (signed) before deciding, so the
        # wait the pen still counts is known in its own frame.
        await pen.set_time(int(now().timestamp()), key)
        status = await pen.status()
    last = None
    if status.last_session_end and not info.limits.clinic:
        # a clinic pen's last session may be another patient's: its rule 6 follows
        # the patient (the pen checks it per patient; the shared database has theirs)
        last = (datetime.fromtimestamp(status.last_session_end, UTC), status.last_session_depth_um)
    limits = PenLimits.from_info(asdict(info.limits))
    lock_left = status.lockout_until - status.clock if status.clock else 0
    wear = await pen.wear()
    moment = now()
    decision, permit = issue_session_permit(
        db, serial, plan, limits, key, moment, pen_last_session=last,
        pen_lock_left_s=max(0, lock_left), wear=wear, rate_max_sps=info.limits.rate_max_sps,
        clinic_pen=info.limits.clinic,
    )
    outcome = SessionOutcome(decision=decision)

    async def begin() -> None:
        await pen.set_time(int(moment.timestamp()), key)
        await pen.arm(permit.as_dict())
        await pen.set_depth(plan.depth_um)
        if plan.speed_level is not None:
            await pen.set_speed(plan.speed_level)
        await pen.start()
        if started is not None:
            started(decision)

    try:
        await _run_and_store(pen, db, serial, now, outcome, begin, on_event, stop_requested)
    except PenRefused:
        await _void_if_dropped(pen, db, permit.nonce, now())
        raise
    return outcome


async def _void_if_dropped(pen: Pen, db: S.Store, nonce: bytes, at: datetime) -> None:
    """The pen refused ARM or START and, after the STOP, is idle: the permit is gone
    from it, and stops counting for rule 6 (best effort: unknown keeps it counting)."""
    with contextlib.suppress(Exception):
        status = await asyncio.wait_for(pen.status(), STOP_ON_ERROR_S)
        if status.state == PenState.IDLE:
            S.void_permit(db, nonce, at=at)


async def run_resume(
    pen: Pen,
    db: S.Store,
    now: Callable[[], datetime],
    *,
    on_event: Callable[[PenEvent], None] | None = None,
    stop_requested: asyncio.Event | None = None,
) -> SessionOutcome:
    """Start again a session the pen paused (stopped in its first 30 s, or its contact
    or link lost), under the limits of the permit it started with, while the pen's
    window lasts (docs/sessions.md); then as :func:`run_session`.

    Raises:
        NothingToResume: the pen holds no paused session, or its window ran out.
        PenRefused: the pen refused (its hard limits: contact, battery, cartridge...).
    """
    info = pen.info
    assert info is not None
    serial = info.serial
    status = await pen.status()
    if status.state != PenState.PAUSED or not status.resume_left_s:
        state = PenState(status.state).name.lower() if status.state in PenState._value2member_map_ \
            else str(status.state)
        raise NothingToResume(f"no paused session to resume: the pen is {state}")
    key = S.get_permit_key(db, serial)
    if key is None:
        raise S.NotFoundError(f"no permit key for pen {serial}: pair it with `scalppen pair`")
    issued = S.list_permits(db, serial)
    if not issued:
        raise NothingToResume("the paused session was not started from this computer: it "
                              f"ends by itself in {_minutes(status.resume_left_s)}")
    original = issued[-1]
    moment = now()
    patient = NO_PATIENT
    if info.limits is not None and info.limits.clinic and original.profile_id is not None:
        patient = S.patient_ref(db, original.profile_id)  # the session's own patient
    permit = resume_permit(
        original_depth_um=original.max_depth_um, original_duration_s=original.max_duration_s,
        resume_left_s=status.resume_left_s, key=key, now=moment, patient=patient)
    S.record_permit(db, serial, permit, profile_id=original.profile_id)
    outcome = SessionOutcome(decision=None, elapsed_s=status.elapsed_ms / 1000,
                             strokes=status.strokes)

    async def begin() -> None:
        await pen.arm(permit.as_dict())
        await pen.start()

    await _run_and_store(pen, db, serial, now, outcome, begin, on_event, stop_requested)
    return outcome


async def _run_and_store(
    pen: Pen, db: S.Store, serial: str, now: Callable[[], datetime], outcome: SessionOutcome,
    begin: Callable[[], Any], on_event: Callable[[PenEvent], None] | None,
    stop_requested: asyncio.Event | None,
) -> None:
    """Begin (arm, start), follow the live events to the end, then store the log,
    the end reason, the wear and the telemetry summary."""
    events = pen.events()
    try:
        await begin()
        await _follow(pen, events, outcome, on_event, stop_requested)
    except BaseException:
        # Whatever ends this command early (an error, Ctrl-C, a lost answer), the
        # needles must not go on without it: STOP first (always allowed, always safe).
        await _stop_quietly(pen)
        raise
    finally:
        events.close()
    outcome.sync = await sync_log(pen, db, serial, now=now())
    if not outcome.resumable_s:
        _end_from_log(db, serial, outcome)
    S.record_wear(db, serial, asdict(await pen.wear()), at=now())
    _store_summary(db, serial, outcome)


#: How long an error exit waits for the pen to acknowledge its STOP.
STOP_ON_ERROR_S = 3.0


async def _stop_quietly(pen: Pen) -> None:
    """Send STOP, best effort: the link may be the thing that failed."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(pen.stop(), STOP_ON_ERROR_S)


async def _follow(
    pen: Pen, events: object, outcome: SessionOutcome,
    on_event: Callable[[PenEvent], None] | None, stop_requested: asyncio.Event | None,
) -> None:
    stream = events
    while True:
        get = asyncio.ensure_future(stream.get(timeout=5.0))  # type: ignore[attr-defined]
        waiters: set[asyncio.Future[Any]] = {get}
        stopper = None
        if stop_requested is not None:
            stopper = asyncio.ensure_future(stop_requested.wait())
            waiters.add(stopper)
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if stopper is not None and stopper in done:
            get.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await get
            await pen.stop()
            outcome.ended_by = "stopped by the user"
            status = await pen.status()
            if status.state == PenState.PAUSED and status.resume_left_s:
                # stopped in its first 30 s: the pen holds it open to be resumed
                outcome.resumable_s = status.resume_left_s
                outcome.elapsed_s = status.elapsed_ms / 1000
                outcome.strokes = status.strokes
            return
        if stopper is not None:
            stopper.cancel()
        try:
            event = get.result()
        except PenTimeout:
            status = await pen.status()
            if status.state not in (PenState.RUNNING, PenState.PAUSED):
                outcome.ended_by = f"pen is {PenState(status.state).name.lower()}"
                outcome.elapsed_s = status.elapsed_ms / 1000
                outcome.strokes = status.strokes
                return
            continue
        if on_event is not None:
            on_event(event)
        if isinstance(event, TelemetryEvent):
            outcome.telemetry.append(event)
            outcome.elapsed_s = event.elapsed_ms / 1000
            outcome.strokes = event.strokes
        elif isinstance(event, NoticeEvent):
            if event.code == Notice.SESSION_WARN:
                outcome.warned = True
            elif event.code == Notice.SESSION_CAP:
                outcome.ended_by = "15-minute hard stop"
            elif event.code == Notice.SESSION_FINISHED:
                outcome.ended_by = outcome.ended_by or "permitted time reached"
                outcome.elapsed_s = float(event.value)
                return
        elif isinstance(event, FaultEvent):
            outcome.fault = int(event.code)
            outcome.ended_by = f"fault: {ErrorCode(event.code).name}" if event.code in \
                ErrorCode._value2member_map_ else f"fault 0x{event.code:02x}"
            return


def _check_cartridge(wear: Any, decision: Decision, rate_max_sps: int) -> Decision:
    """Rule 14 before arming: the inserted cartridge's budget left must cover the
    permitted time at the top of the stroke window (the pen checks it again)."""
    if not wear.cartridge or wear.cart_state:
        return decision  # none, or one the pen refuses itself with its own reason
    refusal = cartridge_refusal(wear.strokes_used, wear.strokes_rated,
                                decision.max_duration_s, rate_max_sps)
    if refusal is None:
        return decision
    raise SessionRefused(replace(decision, allowed=False, refusals=(refusal,)))


def issue_session_permit(
    db: S.Store, serial: str, plan: SessionPlan, limits: PenLimits, key: bytes,
    now: datetime, *, pen_last_session: tuple[datetime, int] | None = None,
    pen_lock_left_s: int = 0, wear: Any = None, rate_max_sps: int = 0,
    clinic_pen: bool = False,
) -> tuple[Decision, PermitFields]:
    """Decide and issue a permit as one step: the policy reads the history and the
    permit is recorded in one transaction, with the patient held, so two laptops
    arming the same patient at once cannot both pass rule 6 (the second sees the
    first's permit, which counts until its session is synced).

    Args:
        wear: the pen's WEAR reading (rule 14 is checked against it), if read.
        clinic_pen: the pen keeps rule 6 per patient: the permit names the patient
            by their reference (:func:`scalppen.store.patient_ref`).

    Raises:
        SessionRefused: the policy refused; nothing was recorded but the attestation.
    """
    if plan.attested:  # the user's word is kept whatever is decided (rule 19)
        S.record_attestation(db, plan.profile_id, pen_serial=serial, at=now)
        plan = replace(plan, attested=False)
    with db.transaction():
        S.lock_patient(db, plan.profile_id)
        decision = decide(db, serial, plan, limits, now, pen_last_session, pen_lock_left_s)
        if not decision.allowed:
            raise SessionRefused(decision)
        if wear is not None:
            decision = _check_cartridge(wear, decision, rate_max_sps)
        patient = S.patient_ref(db, plan.profile_id) if clinic_pen else NO_PATIENT
        permit = issue_permit(decision, key, now, patient=patient)
        S.record_permit(db, serial, permit, profile_id=plan.profile_id)
    return decision, permit


# The pen's SESSION_END code (its log) -> how the session ended.
_END_REASONS = {
    ErrorCode.CARTRIDGE_WORN: "cartridge worn out (its rated strokes were reached)",
    ErrorCode.SESSION_CAP: "15-minute hard stop",
}


def _end_from_log(db: S.Store, serial: str, outcome: SessionOutcome) -> None:
    """Take the end reason from the pen's own SESSION_END record, when the sync read
    it: the live events say only that the session finished, not why."""
    if outcome.sync is None or outcome.fault or outcome.ended_by == "stopped by the user":
        return
    ends = S.list_log_records(db, serial, since_seq=outcome.sync.from_seq,
                              kinds=[RecordKind.SESSION_END])
    if not ends:
        return
    code = ends[-1].code
    if code in _END_REASONS:
        outcome.ended_by = _END_REASONS[ErrorCode(code)]
    elif code:
        outcome.ended_by = f"ended by the pen: {describe(code)}"


def _store_summary(db: S.Store, serial: str, outcome: SessionOutcome) -> None:
    samples = [asdict(t) for t in outcome.telemetry]
    if not samples or outcome.resumable_s:
        return  # a paused session is summarised when it ends
    # the session this run's sync stored (never another pen's or patient's latest)
    ids = outcome.sync.session_ids if outcome.sync else []
    if ids:
        S.record_telemetry_summary(db, ids[-1], S.summarise_telemetry(samples))
