"""Presenting a signed clearance or key endorsement to this toolkit (rule 22).

Each one presented is recorded, accepted or refused, with the one-line reason; an
accepted clearance is recorded with the statement it was accepted on, in the same
transaction, and its id is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scalppen.clearance_file import read_presented
from scalppen.clinician import PublicKey
from scalppen.policy.clearance_statement import (
    Expected,
    Kind,
    Signed,
    TrustedKey,
    check_fresh,
    check_statement,
)
from scalppen.policy.errors import ClearanceError
from scalppen.store import Store
from scalppen.store.clinicians import (
    ClinicianKey,
    list_clinician_keys,
    record_attempt,
    record_signed_clearance,
    trust_key,
    trusted_keys,
    used_statement_ids,
)
from scalppen.store.rows import Clearance, Profile
from scalppen.store.toolkit import toolkit_id

#: How a key trust appears in the record of clearances presented.
TRUST_PREFIX = "trust:"


@dataclass(frozen=True)
class Accepted:
    clearance: Clearance
    key: TrustedKey


def _judge(
    db: Store, presented: str, expected: Expected, now: datetime, *, subject: str,
    profile_id: int | None,
) -> tuple[Signed, TrustedKey, str]:
    signed: Signed | None = None
    key_fp: str | None = None
    try:
        signed, shown = read_presented(presented)
        trusted = trusted_keys(db)
        known = trusted.get(signed.statement.key_id)
        key_fp = known.fingerprint if known else None
        key = check_statement(signed, trusted=trusted, expected=expected)
        check_fresh(signed.statement, now=now, used_ids=used_statement_ids(db))
    except ClearanceError as exc:
        record_attempt(
            db, lock_id=subject, accepted=False, detail=str(exc), presented=presented,
            profile_id=profile_id, signed=signed, key_fp=key_fp, at=now,
        )
        raise
    return signed, key, shown


def present_clearance(
    db: Store, presented: str, *, lock_id: str, profile: Profile | None, now: datetime
) -> Accepted:
    """Check a clearance for ``lock_id`` and, if it holds, record it.

    Args:
        presented: a clearance file's path or the clearance text.
        lock_id: the lock it must clear (found holding by the caller).
        profile: whose lock it is (None for a pen's service lock).
        now: this toolkit's time.

    Raises:
        ClearanceError: refused, with the reason (the refusal is recorded).
    """
    expected = Expected(Kind.CLEARANCE, lock_id, profile.name if profile else "",
                        toolkit_id(db))
    pid = profile.id if profile else None
    signed, key, shown = _judge(db, presented, expected, now, subject=lock_id, profile_id=pid)
    with db.transaction():
        rec = record_signed_clearance(db, signed, key, profile_id=pid, at=now)
        record_attempt(
            db, lock_id=lock_id, accepted=True, detail=f"accepted: signed by {key.name}",
            presented=shown, profile_id=pid, signed=signed, key_fp=key.fingerprint, at=now,
        )
    return Accepted(rec, key)


def pin_key(
    db: Store, pub: PublicKey, *, endorsement: str | None, now: datetime
) -> ClinicianKey:
    """Trust a clinician key: the first without more (set-up), later ones only with an
    endorsement signed by a key already trusted.

    Raises:
        ClearanceError: no endorsement where one is needed, or a refused one.
    """
    subject = TRUST_PREFIX + pub.fingerprint
    if endorsement is None:
        if list_clinician_keys(db):
            detail = ("this toolkit already trusts a clinician key: a new one needs an "
                      "endorsement signed by a trusted clinician")
            record_attempt(db, lock_id=subject, accepted=False, detail=detail,
                           presented=pub.to_json(), at=now)
            raise ClearanceError(detail)
        with db.transaction():
            key = trust_key(db, pub.name, pub.public_key, endorsed_by=None, at=now)
            record_attempt(db, lock_id=subject, accepted=True,
                           detail="pinned at set-up (first key)", presented=pub.to_json(),
                           at=now)
        return key
    expected = Expected(Kind.ENDORSEMENT, pub.fingerprint, pub.name, toolkit_id(db))
    signed, by, shown = _judge(db, endorsement, expected, now, subject=subject, profile_id=None)
    with db.transaction():
        key = trust_key(db, pub.name, pub.public_key, endorsed_by=by.fingerprint, at=now)
        record_attempt(db, lock_id=subject, accepted=True,
                       detail=f"endorsed by {by.name}", presented=shown, signed=signed,
                       key_fp=by.fingerprint, at=now)
    return key
