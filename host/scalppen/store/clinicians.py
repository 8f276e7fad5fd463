"""Trusted clinician keys, signed clearances, and every clearance presented (rule 22).

The first key is pinned when the toolkit is set up; every later one needs an
endorsement signed by a key already trusted, so a patient cannot trust a key of
their own once the clinic's is pinned. A revoked key stays on record (what it
signed is history) but signs nothing more, and what it cleared no longer counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scalppen.policy.clearance import rule_of_lock, validate_clearance
from scalppen.policy.clearance_statement import Signed, TrustedKey, fingerprint, key_id
from scalppen.store.db import Store, from_ts, to_ts, utcnow
from scalppen.store.dialect import Row
from scalppen.store.errors import NotFoundError, StoreError
from scalppen.store.rows import Clearance


@dataclass(frozen=True)
class ClinicianKey:
    """A clinician key this toolkit knows."""

    fingerprint: str
    name: str
    public_key: bytes
    trusted_at: datetime
    endorsed_by: str | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class ClearanceAttempt:
    """A clearance presented to ``scalppen clear``, accepted or refused."""

    id: int
    at: datetime
    lock_id: str
    profile_id: int | None
    key_fingerprint: str | None
    clearance_id: str | None
    accepted: bool
    detail: str
    presented: str
    #: the room (laptop) and the user that presented it (clinic audit)
    made_on: str = ""
    made_by: str = ""


def _when(value: int | None) -> datetime | None:
    return from_ts(value)


def _key(row: Row) -> ClinicianKey:
    at = from_ts(row["trusted_at"])
    assert at is not None
    return ClinicianKey(
        fingerprint=row["fingerprint"],
        name=row["name"],
        public_key=bytes(row["public_key"]),
        trusted_at=at,
        endorsed_by=row["endorsed_by"],
        revoked_at=_when(row["revoked_at"]),
    )


def list_clinician_keys(db: Store) -> list[ClinicianKey]:
    """Every clinician key ever trusted here, oldest first."""
    rows = db.query("SELECT * FROM clinician_keys ORDER BY trusted_at, fingerprint")
    return [_key(r) for r in rows]


def trusted_keys(db: Store) -> dict[bytes, TrustedKey]:
    """The keys by key id, as the statement check takes them (revoked ones marked)."""
    return {
        key_id(k.public_key): TrustedKey(
            k.fingerprint, k.name, k.public_key, revoked=k.revoked_at is not None
        )
        for k in list_clinician_keys(db)
    }


def trust_key(
    db: Store, name: str, public_key: bytes, *, endorsed_by: str | None, at: datetime | None = None
) -> ClinicianKey:
    """Pin a clinician key.

    Args:
        name: the clinician's name, as their key file gives it.
        public_key: the 32-byte Ed25519 public key.
        endorsed_by: the fingerprint of the trusted key that endorsed it; None only
            for the first key (set-up).

    Raises:
        StoreError: already known, or a later key without an endorsement.
    """
    fp = fingerprint(public_key)
    known = list_clinician_keys(db)
    if any(k.fingerprint == fp for k in known):
        raise StoreError(f"key {fp} is already known here")
    if known and endorsed_by is None:
        raise StoreError(
            "this toolkit already trusts a clinician key: another one needs an endorsement "
            "signed by a trusted clinician"
        )
    db.execute(
        "INSERT INTO clinician_keys (fingerprint, name, public_key, trusted_at, endorsed_by)"
        " VALUES (?, ?, ?, ?, ?)",
        (fp, name.strip(), public_key, to_ts(at or utcnow()), endorsed_by),
    )
    return next(k for k in list_clinician_keys(db) if k.fingerprint == fp)


def revoke_key(db: Store, fp: str, *, at: datetime | None = None) -> ClinicianKey:
    """Stop trusting a key (what it cleared no longer counts).

    Raises:
        NotFoundError: no such key.
    """
    cur = db.execute(
        "UPDATE clinician_keys SET revoked_at = ? WHERE fingerprint = ? AND revoked_at IS NULL",
        (to_ts(at or utcnow()), fp),
    )
    if cur.rowcount == 0 and not any(k.fingerprint == fp for k in list_clinician_keys(db)):
        raise NotFoundError(f"no clinician key {fp} here: see scalppen clinician keys")
    return next(k for k in list_clinician_keys(db) if k.fingerprint == fp)


def used_statement_ids(db: Store) -> dict[str, datetime]:
    """Ids of the signed statements accepted here (clearances and endorsements), with when."""
    used: dict[str, datetime] = {}
    for row in db.query(
        "SELECT clearance_id, at FROM clearance_attempts WHERE accepted = 1 "
        "AND clearance_id IS NOT NULL"
    ):
        at = from_ts(row["at"])
        assert at is not None
        used.setdefault(row["clearance_id"], at)
    return used


def record_attempt(
    db: Store,
    *,
    lock_id: str,
    accepted: bool,
    detail: str,
    presented: str,
    profile_id: int | None = None,
    signed: Signed | None = None,
    key_fp: str | None = None,
    at: datetime | None = None,
) -> None:
    """Record a clearance or endorsement presented, accepted or refused."""
    db.execute(
        "INSERT INTO clearance_attempts (at, lock_id, profile_id, key_fingerprint, clearance_id,"
        " accepted, detail, presented, made_on, made_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            to_ts(at or utcnow()),
            lock_id,
            profile_id,
            key_fp,
            signed.statement.id_text if signed else None,
            int(accepted),
            detail,
            presented[:2000],
            *db.actor,
        ),
    )


def list_attempts(db: Store) -> list[ClearanceAttempt]:
    """Every clearance presented, oldest first."""
    return [
        ClearanceAttempt(
            id=r["id"],
            at=from_ts(r["at"]) or utcnow(),
            lock_id=r["lock_id"],
            profile_id=r["profile_id"],
            key_fingerprint=r["key_fingerprint"],
            clearance_id=r["clearance_id"],
            accepted=bool(r["accepted"]),
            detail=r["detail"],
            presented=r["presented"],
            made_on=r["made_on"],
            made_by=r["made_by"],
        )
        for r in db.query("SELECT * FROM clearance_attempts ORDER BY at, id")
    ]


def record_signed_clearance(
    db: Store, signed: Signed, key: TrustedKey, *, profile_id: int | None, at: datetime
) -> Clearance:
    """Record a clearance whose statement was checked (``check_statement``).

    Raises:
        ClearanceError: the lock is not one a clinician can clear.
        StoreError: this statement was recorded before.
    """
    stmt = signed.statement
    rec = validate_clearance(
        stmt.subject,
        clinician_name=key.name,
        role="clinician",
        reason=stmt.reason,
        at=at,
        signed_by=key.fingerprint,
    )
    try:
        new_id = db.insert(
            "INSERT INTO clearances (lock_id, rule, profile_id, clinician_name, role, reason, at,"
            " clearance_id, key_fingerprint, issued, expires, statement, made_on, made_by)"
            " VALUES (?, ?, ?, ?, 'clinician', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.lock_id,
                rule_of_lock(rec.lock_id),
                profile_id,
                rec.clinician_name,
                rec.reason,
                to_ts(at),
                stmt.id_text,
                key.fingerprint,
                to_ts(stmt.issued),
                to_ts(stmt.expires),
                signed.blob,
                *db.actor,
            ),
        )
    except StoreError as exc:
        if "UNIQUE" in str(exc).upper():
            raise StoreError(f"clearance {stmt.id_text} was recorded before") from None
        raise
    from scalppen.store.clinical import clearance_by_id

    return clearance_by_id(db, new_id)
