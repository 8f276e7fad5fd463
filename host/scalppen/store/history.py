"""Assemble the policy's :class:`PatientHistory` from the store."""

from __future__ import annotations

from datetime import datetime, timedelta

from scalppen.policy.clearance_statement import Expected, Kind, check_statement, decode
from scalppen.policy.errors import ClearanceError
from scalppen.policy.history import (
    AdverseEventRecord,
    AdverseKind,
    AttestationRecord,
    ClearanceRecord,
    HandpieceRecord,
    PatientHistory,
    PendingPermit,
    ScreeningRecord,
    SessionSummary,
)
from scalppen.store.clinical import (
    latest_attestation,
    latest_service,
    list_adverse_events,
    list_clearances,
    list_screenings,
)
from scalppen.store.clinicians import trusted_keys
from scalppen.store.db import Store, from_ts
from scalppen.store.pens import get_pen, get_profile
from scalppen.store.sessions import list_sessions
from scalppen.store.toolkit import toolkit_id
from scalppen.store.wear import handpiece_first_session
from scalppen_protocol.codes import PAUSE_WINDOW_S


def handpiece_record(db: Store, pen_serial: str) -> HandpieceRecord:
    """What rule 16 needs about one handpiece."""
    get_pen(db, pen_serial)
    service = latest_service(db, pen_serial)
    return HandpieceRecord(
        pen_serial=pen_serial,
        first_session_at=handpiece_first_session(db, pen_serial),
        serviced_at=service.at if service else None,
    )


def load_history(
    db: Store,
    profile_id: int,
    *,
    pen_serial: str | None = None,
    pen_last_session: tuple[datetime, int] | None = None,
    pen_lock_left_s: int = 0,
) -> PatientHistory:
    """Everything the policy needs about a patient (and the pen in hand).

    Args:
        db: the store.
        profile_id: the patient.
        pen_serial: the pen about to be used (rule 16), if known.
        pen_last_session: (end, depth_um) from the pen's STATUS, so a session the
            store has not synced yet still counts for rule 6.

    Returns:
        The history.

    Raises:
        NotFoundError: no such profile or pen.
    """
    profile = get_profile(db, profile_id)
    sessions = tuple(
        SessionSummary(
            depth_um=s.depth_um,
            started_at=s.started_at,
            ended_at=s.ended_at,
            duration_s=s.duration_s,
            strokes=s.strokes,
            tolerated=s.tolerated,
            session_id=s.id,
            pen_serial=s.pen_serial,
        )
        for s in list_sessions(db, profile_id=profile_id)
    )
    screenings = tuple(
        ScreeningRecord(screening_id=s.id, at=s.at, positives=s.positives)
        for s in list_screenings(db, profile_id)
    )
    adverse = tuple(
        AdverseEventRecord(
            event_id=e.id,
            at=e.at,
            kind=AdverseKind(e.kind),
            severity=e.severity,
            notes=e.notes,
            session_id=e.session_id,
        )
        for e in list_adverse_events(db, profile_id)
    )
    clearances = clearance_records(db, profile_id)
    pending = tuple(
        p for p in pending_permits(db, profile_id)
        # the pen in hand reports a session that ended after this permit was issued:
        # its session, or a later one (a pen runs one at a time) that counts instead
        if not (pen_last_session is not None and p.pen_serial == pen_serial
                and pen_last_session[0].timestamp() >= p.issued_at.timestamp() - CLOCK_SKEW_S)
    )
    att = latest_attestation(db, profile_id)
    return PatientHistory(
        profile_id=profile_id,
        birth_year=profile.birth_year,
        sessions=sessions,
        screenings=screenings,
        adverse_events=adverse,
        clearances=clearances,
        handpiece=handpiece_record(db, pen_serial) if pen_serial else None,
        attestation=AttestationRecord(at=att.at, statement=att.statement) if att else None,
        pen_last_session=pen_last_session,
        pen_lock_left_s=pen_lock_left_s,
        pending_permits=pending,
    )


def clearance_records(db: Store, profile_id: int | None) -> tuple[ClearanceRecord, ...]:
    """The clearances of a profile as policy input; with None, those bound to no
    profile (the pen's own locks, rule 16).

    Each one's signed statement is checked again here against the keys trusted now:
    one written into the database by hand, signed by a key since revoked, or
    recorded before clearances were signed lifts nothing.
    """
    rows = list_clearances(db, profile_id)
    if not rows:
        return ()
    trusted = trusted_keys(db)
    here = toolkit_id(db)
    names = {pid: get_profile(db, pid).name
             for pid in {c.profile_id for c in rows if c.profile_id is not None}}
    out = []
    for c in rows:
        if profile_id is None and c.profile_id is not None:
            continue
        if c.statement is None:
            continue
        try:
            signed = decode(c.statement)
            expected = Expected(
                Kind.CLEARANCE, c.lock_id, names.get(c.profile_id, "") if c.profile_id else "", here
            )
            key = check_statement(signed, trusted=trusted, expected=expected)
        except ClearanceError:
            continue
        out.append(
            ClearanceRecord(
                lock_id=signed.statement.subject,
                rule=c.rule,
                clinician_name=key.name,
                role=c.role,
                reason=signed.statement.reason,
                at=c.at,
                signed_by=key.fingerprint,
            )
        )
    return tuple(out)


#: Clocks of the pen and of this computer may differ by this much.
CLOCK_SKEW_S = 300


def pending_permits(db: Store, profile_id: int) -> tuple[PendingPermit, ...]:
    """Permits issued for the patient whose outcome the store does not know yet.

    A permit is settled once its pen's stored log holds a session that ran while
    the permit could be used (from its issue to its expiry: that session counts for
    rule 6 instead; a resumed session started before its resume permit), or runs
    past its expiry (it went unused). Until then it counts as a session that
    ended as late as one under it could: expiry, the needling time, the pause window.
    """
    rows = db.query(
        "SELECT p.pen_serial, p.issued_at, p.expires_at, p.max_depth_um, p.max_duration_s"
        " FROM permits p WHERE p.profile_id = ? AND p.voided_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.pen_serial = p.pen_serial"
        "   AND COALESCE(s.started_at, s.ended_at) <= p.expires_at + ?"
        "   AND COALESCE(s.ended_at, s.started_at + 86400) >= p.issued_at - ?)"
        " AND NOT EXISTS (SELECT 1 FROM log_records r WHERE r.pen_serial = p.pen_serial"
        "   AND r.time > p.expires_at + ?)"
        " ORDER BY p.issued_at",
        (profile_id, CLOCK_SKEW_S, CLOCK_SKEW_S, CLOCK_SKEW_S),
    )
    out = []
    for r in rows:
        issued, expires = from_ts(r["issued_at"]), from_ts(r["expires_at"])
        if issued is None or expires is None:
            continue
        ends_by = expires + timedelta(seconds=int(r["max_duration_s"]) + PAUSE_WINDOW_S)
        out.append(PendingPermit(r["pen_serial"], issued, ends_by, int(r["max_depth_um"])))
    return tuple(out)
