"""Screenings, adverse events, clearances, attestations, services and issued permits."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import datetime

from scalppen.policy.attestation import STATEMENT
from scalppen.policy.history import AdverseKind
from scalppen.policy.permits import PermitFields
from scalppen.policy.screening import evaluate_screening
from scalppen.store.db import Store, from_ts, to_ts, utcnow
from scalppen.store.dialect import Row
from scalppen.store.errors import StoreError
from scalppen.store.pens import ensure_pen, get_pen, get_profile
from scalppen.store.rows import (
    AdverseEvent,
    Attestation,
    Clearance,
    IssuedPermit,
    Screening,
    Service,
)


def _at(value: int) -> datetime:
    moment = from_ts(value)
    assert moment is not None
    return moment


def _screening(row: Row) -> Screening:
    return Screening(
        id=row["id"],
        profile_id=row["profile_id"],
        at=_at(row["at"]),
        answers=json.loads(row["answers_json"]),
        result=row["result"],
        positives=tuple(json.loads(row["positives_json"])),
        made_on=row["made_on"],
        made_by=row["made_by"],
    )


def record_screening(
    db: Store, profile_id: int, answers: Mapping[str, bool], *, now: datetime | None = None
) -> Screening:
    """Check and store a screening (rule 17); a positive one sets a lock.

    Raises:
        ScreeningError: incomplete or malformed answers.
        NotFoundError: no such profile.
    """
    now = now or utcnow()
    profile = get_profile(db, profile_id)
    outcome = evaluate_screening(answers, birth_year=profile.birth_year, now=now)
    new_id = db.insert(
        "INSERT INTO screenings (profile_id, at, answers_json, result, positives_json,"
        " made_on, made_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            profile_id,
            to_ts(now),
            json.dumps(outcome.answers),
            "clear" if outcome.clear else "contraindicated",
            json.dumps(list(outcome.positives)),
            *db.actor,
        ),
    )
    row = db.query_one("SELECT * FROM screenings WHERE id = ?", (new_id,))
    assert row is not None
    return _screening(row)


def list_screenings(db: Store, profile_id: int | None = None) -> list[Screening]:
    """Screenings, oldest first (of one profile if given)."""
    if profile_id is None:
        rows = db.query("SELECT * FROM screenings ORDER BY at, id")
    else:
        rows = db.query(
            "SELECT * FROM screenings WHERE profile_id = ? ORDER BY at, id", (profile_id,)
        )
    return [_screening(r) for r in rows]


def _adverse(row: Row) -> AdverseEvent:
    return AdverseEvent(
        id=row["id"],
        profile_id=row["profile_id"],
        session_id=row["session_id"],
        at=_at(row["at"]),
        kind=row["kind"],
        severity=row["severity"],
        notes=row["notes"],
        made_on=row["made_on"],
        made_by=row["made_by"],
    )


def report_adverse_event(
    db: Store,
    profile_id: int,
    kind: str | AdverseKind,
    *,
    severity: str = "",
    notes: str = "",
    session_id: int | None = None,
    at: datetime | None = None,
) -> AdverseEvent:
    """Store an adverse-event report (rule 18: oozing, extreme heat, pus lock).

    Raises:
        StoreError: unknown kind.
        NotFoundError: no such profile.
    """
    try:
        akind = AdverseKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in AdverseKind)
        raise StoreError(f"unknown adverse event {kind!r}: choose one of {names}") from None
    get_profile(db, profile_id)
    new_id = db.insert(
        "INSERT INTO adverse_events (profile_id, session_id, at, kind, severity, notes,"
        " made_on, made_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (profile_id, session_id, to_ts(at or utcnow()), akind.value, severity, notes,
         *db.actor),
    )
    row = db.query_one("SELECT * FROM adverse_events WHERE id = ?", (new_id,))
    assert row is not None
    return _adverse(row)


def list_adverse_events(db: Store, profile_id: int | None = None) -> list[AdverseEvent]:
    """Adverse events, oldest first (of one profile if given)."""
    if profile_id is None:
        rows = db.query("SELECT * FROM adverse_events ORDER BY at, id")
    else:
        rows = db.query(
            "SELECT * FROM adverse_events WHERE profile_id = ? ORDER BY at, id", (profile_id,)
        )
    return [_adverse(r) for r in rows]


def _clearance(row: Row) -> Clearance:
    return Clearance(
        id=row["id"],
        lock_id=row["lock_id"],
        rule=row["rule"],
        profile_id=row["profile_id"],
        clinician_name=row["clinician_name"],
        role=row["role"],
        reason=row["reason"],
        at=_at(row["at"]),
        clearance_id=row["clearance_id"],
        key_fingerprint=row["key_fingerprint"],
        issued=from_ts(row["issued"]),
        expires=from_ts(row["expires"]),
        statement=None if row["statement"] is None else bytes(row["statement"]),
        made_on=row["made_on"],
        made_by=row["made_by"],
    )


def clearance_by_id(db: Store, row_id: int) -> Clearance:
    """One stored clearance."""
    row = db.query_one("SELECT * FROM clearances WHERE id = ?", (row_id,))
    if row is None:
        raise StoreError(f"no clearance {row_id}")
    return _clearance(row)


def list_clearances(db: Store, profile_id: int | None = None) -> list[Clearance]:
    """Clearances, oldest first (of one profile, plus those not tied to a profile)."""
    if profile_id is None:
        rows = db.query("SELECT * FROM clearances ORDER BY at, id")
    else:
        rows = db.query(
            "SELECT * FROM clearances WHERE profile_id = ? OR profile_id IS NULL ORDER BY at, id",
            (profile_id,),
        )
    return [_clearance(r) for r in rows]


def _attestation(row: Row) -> Attestation:
    return Attestation(
        id=row["id"],
        profile_id=row["profile_id"],
        pen_serial=row["pen_serial"],
        at=_at(row["at"]),
        statement=row["statement"],
        made_on=row["made_on"],
        made_by=row["made_by"],
    )


def record_attestation(
    db: Store,
    profile_id: int,
    *,
    pen_serial: str | None = None,
    statement: str = STATEMENT,
    at: datetime | None = None,
) -> Attestation:
    """Record the user's sterilisation attestation (rule 19)."""
    get_profile(db, profile_id)
    if pen_serial is not None:
        ensure_pen(db, pen_serial)
    new_id = db.insert(
        "INSERT INTO attestations (profile_id, pen_serial, at, statement, made_on, made_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (profile_id, pen_serial, to_ts(at or utcnow()), statement, *db.actor),
    )
    row = db.query_one("SELECT * FROM attestations WHERE id = ?", (new_id,))
    assert row is not None
    return _attestation(row)


def latest_attestation(db: Store, profile_id: int) -> Attestation | None:
    """The profile's attestation recorded last.

    By the order of recording, not by its time: after the computer's clock was set
    back, a fresh confirmation must not hide behind an older, now future-dated one.
    """
    row = db.query_one(
        "SELECT * FROM attestations WHERE profile_id = ? ORDER BY id DESC LIMIT 1",
        (profile_id,),
    )
    return _attestation(row) if row else None


def _service(row: Row) -> Service:
    return Service(
        id=row["id"],
        pen_serial=row["pen_serial"],
        at=_at(row["at"]),
        by_name=row["by_name"],
        notes=row["notes"],
    )


def record_service(
    db: Store, pen_serial: str, *, by_name: str, notes: str = "", at: datetime | None = None
) -> Service:
    """Record that the handpiece was serviced (restarts rule 16's count).

    Raises:
        NotFoundError: no such pen.
        StoreError: no name.
    """
    if not by_name.strip():
        raise StoreError("a service record needs the name of who serviced the pen")
    get_pen(db, pen_serial)
    new_id = db.insert(
        "INSERT INTO services (pen_serial, at, by_name, notes) VALUES (?, ?, ?, ?)",
        (pen_serial, to_ts(at or utcnow()), by_name.strip(), notes),
    )
    row = db.query_one("SELECT * FROM services WHERE id = ?", (new_id,))
    assert row is not None
    return _service(row)


def latest_service(db: Store, pen_serial: str) -> Service | None:
    """The pen's most recent service."""
    row = db.query_one(
        "SELECT * FROM services WHERE pen_serial = ? ORDER BY at DESC, id DESC LIMIT 1",
        (pen_serial,),
    )
    return _service(row) if row else None


def _permit(row: Row) -> IssuedPermit:
    return IssuedPermit(
        id=row["id"],
        pen_serial=row["pen_serial"],
        profile_id=row["profile_id"],
        nonce=bytes(row["nonce"]),
        max_depth_um=row["max_depth_um"],
        max_duration_s=row["max_duration_s"],
        issued_at=_at(row["issued_at"]),
        expires_at=_at(row["expires_at"]),
        made_on=row["made_on"],
        made_by=row["made_by"],
    )


def void_permit(db: Store, nonce: bytes, *, at: datetime | None = None) -> None:
    """The pen refused this permit and is idle without it: it counts for nothing more."""
    db.execute("UPDATE permits SET voided_at = ? WHERE nonce = ? AND voided_at IS NULL",
               (to_ts(at or utcnow()), nonce))


def lock_patient(db: Store, profile_id: int) -> None:
    """Inside a transaction: hold the patient until it ends, so that two laptops
    issuing a permit for the same patient decide one after the other (PostgreSQL: the
    profile's row lock; SQLite's write transaction already runs alone)."""
    db.hold("profiles", "id", profile_id)


def patient_ref(db: Store, profile_id: int) -> bytes:
    """The patient's opaque 8-byte reference for a clinic pen's permits (rule 6 per
    patient), drawn at random the first time and kept: the same on every laptop of
    the clinic, never personal data, never all zero (which names nobody).

    Raises:
        StoreError: no such profile.
    """
    rows = db.query("SELECT pen_ref FROM profiles WHERE id = ?", (profile_id,))
    if not rows:
        raise StoreError(f"no profile with id {profile_id}")
    if rows[0]["pen_ref"] is not None:
        return bytes(rows[0]["pen_ref"])
    ref = bytes(8)
    while ref == bytes(8):
        ref = secrets.token_bytes(8)
    with db.transaction():
        db.execute("UPDATE profiles SET pen_ref = ? WHERE id = ? AND pen_ref IS NULL",
                   (ref, profile_id))
    return bytes(db.query("SELECT pen_ref FROM profiles WHERE id = ?",
                          (profile_id,))[0]["pen_ref"])


def record_permit(
    db: Store, pen_serial: str, permit: PermitFields, *, profile_id: int | None = None
) -> IssuedPermit:
    """Record an issued permit (its nonce is unique: a repeat is an error).

    Raises:
        StoreError: the nonce was used before.
    """
    ensure_pen(db, pen_serial)
    try:
        new_id = db.insert(
            "INSERT INTO permits (pen_serial, profile_id, nonce, max_depth_um, max_duration_s,"
            " issued_at, expires_at, made_on, made_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pen_serial,
                profile_id,
                permit.nonce,
                permit.max_depth_um,
                permit.max_duration_s,
                permit.issued_at,
                permit.expires_at,
                *db.actor,
            ),
        )
    except StoreError as exc:
        if "UNIQUE" in str(exc).upper():
            raise StoreError("this permit's nonce was issued before: issue a new permit") from exc
        raise
    row = db.query_one("SELECT * FROM permits WHERE id = ?", (new_id,))
    assert row is not None
    return _permit(row)


def list_permits(db: Store, pen_serial: str | None = None) -> list[IssuedPermit]:
    """Issued permits, oldest first."""
    if pen_serial is None:
        rows = db.query("SELECT * FROM permits ORDER BY issued_at, id")
    else:
        rows = db.query(
            "SELECT * FROM permits WHERE pen_serial = ? ORDER BY issued_at, id", (pen_serial,)
        )
    return [_permit(r) for r in rows]
