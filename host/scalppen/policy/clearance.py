"""Rule 22: a HOST lock is cleared only by a clinician, with a recorded reason, signed
with a clinician key this toolkit trusts (``clearance_statement`` checks the
signature; a record here carries the key that signed it).

Firmware limits (rules marked FW or BOTH) cannot be overridden at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from scalppen.policy.errors import ClearanceError
from scalppen.policy.history import ClearanceRecord, require_aware
from scalppen.policy.outcome import Lock
from scalppen.policy.rules import CLINICIAN_CLEARABLE_RULES, CLINICIAN_ROLE, FIRMWARE_RULES


def rule_of_lock(lock_id: str) -> int:
    """The rule number a lock id starts with (``17:screening:4`` -> 17).

    Raises:
        ClearanceError: the id is not a lock id.
    """
    head, _, rest = lock_id.partition(":")
    if not head.isdigit() or not rest:
        raise ClearanceError(f"{lock_id!r} is not a lock id (expected e.g. '17:screening:4')")
    return int(head)


def validate_clearance(
    lock_id: str, *, clinician_name: str, role: str, reason: str, at: datetime,
    signed_by: str = "",
) -> ClearanceRecord:
    """Check a clearance before it is recorded.

    Args:
        lock_id: the lock to clear, as the policy names it.
        clinician_name: who clears it.
        role: their role; only ``clinician`` may clear.
        reason: why; required.
        at: when.
        signed_by: the fingerprint of the trusted key whose signature was checked.

    Returns:
        The clearance record to store.

    Raises:
        ClearanceError: not a clinician, no reason, no name, no signature, or a
            firmware rule.
    """
    require_aware(at)
    rule = rule_of_lock(lock_id)
    if rule in FIRMWARE_RULES:
        raise ClearanceError(
            f"rule {rule} is a firmware limit: no one can override it, it lifts by itself"
        )
    if rule not in CLINICIAN_CLEARABLE_RULES:
        raise ClearanceError(f"rule {rule} does not set a lock a clinician can clear")
    if role != CLINICIAN_ROLE:
        raise ClearanceError(f"only a clinician can clear a lock (role given: {role!r})")
    if not clinician_name.strip():
        raise ClearanceError("a clearance needs the clinician's name")
    if not reason.strip():
        raise ClearanceError("a clearance needs a reason")
    if not signed_by:
        raise ClearanceError("a clearance must be signed by a trusted clinician key")
    return ClearanceRecord(
        lock_id=lock_id,
        rule=rule,
        clinician_name=clinician_name.strip(),
        role=role,
        reason=reason.strip(),
        at=at,
        signed_by=signed_by,
    )


def is_valid_clearance(clearance: ClearanceRecord) -> bool:
    """True if a stored clearance meets rule 22 (checked again when it is used)."""
    try:
        validate_clearance(
            clearance.lock_id,
            clinician_name=clearance.clinician_name,
            role=clearance.role,
            reason=clearance.reason,
            at=clearance.at,
            signed_by=clearance.signed_by,
        )
    except (ClearanceError, ValueError):
        return False
    return clearance.rule == rule_of_lock(clearance.lock_id)


def apply_clearances(
    locks: Iterable[Lock], clearances: Iterable[ClearanceRecord], now: datetime
) -> list[Lock]:
    """Mark the locks a valid clearance lifts.

    A clearance lifts exactly the lock it names, and only if it was given after the
    lock began and not in the future.

    Args:
        locks: the locks the rules set.
        clearances: recorded clearances.
        now: the current time.

    Returns:
        The locks, each with ``cleared`` set.
    """
    valid = [c for c in clearances if c.at <= now and is_valid_clearance(c)]
    out = []
    for lock in locks:
        cleared = any(c.lock_id == lock.lock_id and c.at >= lock.since for c in valid)
        out.append(Lock(lock.lock_id, lock.rule, lock.reason, lock.since, cleared=cleared))
    return out
