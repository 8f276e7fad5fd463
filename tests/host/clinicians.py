"""A clinician's key and signed clearances for tests: the real signing path, no vault."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scalppen import store as S
from scalppen.clinician import PublicKey, sign
from scalppen.policy.clearance_statement import Kind, Signed, new_statement
from scalppen.workflows.clearing import Accepted, pin_key, present_clearance


class Clinician:
    """A clinician with a fresh Ed25519 key."""

    def __init__(self, name: str = "Dr Lee") -> None:
        self.private = Ed25519PrivateKey.generate()
        self.pub = PublicKey(name, self.private.public_key().public_bytes_raw())

    def sign(
        self,
        lock_id: str,
        *,
        profile: str,
        toolkit: str,
        reason: str = "reviewed in clinic",
        issued: datetime,
        valid_for: timedelta = timedelta(days=7),
        kind: Kind = Kind.CLEARANCE,
    ) -> Signed:
        stmt = new_statement(
            kind, public_key=self.pub.public_key, toolkit=toolkit, subject=lock_id,
            profile=profile, clinician=self.pub.name, reason=reason, issued=issued,
            valid_for=valid_for,
        )
        return sign(self.private, stmt)

    def endorse(self, other: Clinician, *, toolkit: str, issued: datetime) -> Signed:
        return self.sign(other.pub.fingerprint, profile=other.pub.name, toolkit=toolkit,
                         reason="colleague", issued=issued, kind=Kind.ENDORSEMENT)


def trusted_clinician(db: S.Store, name: str = "Dr Lee", *, at: datetime) -> Clinician:
    """A clinician whose key this database trusts (pinned at set-up)."""
    doc = Clinician(name)
    pin_key(db, doc.pub, endorsement=None, now=at)
    return doc


def clear_lock(
    db: S.Store, doc: Clinician, lock_id: str, profile: S.Profile | None, *, at: datetime,
    reason: str = "reviewed in clinic",
) -> Accepted:
    """Clear a lock with a clearance ``doc`` signs, as ``scalppen clear`` does."""
    signed = doc.sign(lock_id, profile=profile.name if profile else "",
                      toolkit=S.toolkit_id(db), reason=reason, issued=at)
    return present_clearance(db, signed.text(), lock_id=lock_id, profile=profile, now=at)
