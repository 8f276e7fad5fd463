"""Rule 16: remind at 60 days, lock at 90 days since the handpiece's first session.

Servicing restarts the count from the service date. A clinician may clear the lock
(rule 22); it then holds no more for that service period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from scalppen.policy.history import HandpieceRecord
from scalppen.policy.outcome import Lock, PolicyWarning, RuleResult
from scalppen.policy.rules import PolicyConfig

RULE: Final = 16


def service_reference(handpiece: HandpieceRecord) -> datetime | None:
    """The time the service-life count runs from: the last service, else the first session."""
    if handpiece.serviced_at is not None and (
        handpiece.first_session_at is None or handpiece.serviced_at >= handpiece.first_session_at
    ):
        return handpiece.serviced_at
    return handpiece.first_session_at


def service_lock_id(handpiece: HandpieceRecord, reference: datetime) -> str:
    """The lock id of a handpiece's service period."""
    return f"{RULE}:service:{handpiece.pen_serial}:{int(reference.timestamp())}"


def service_due_at(handpiece: HandpieceRecord, config: PolicyConfig) -> datetime | None:
    """When the handpiece locks unless serviced; None if it never ran a session."""
    ref = service_reference(handpiece)
    return None if ref is None else ref + config.service_lock


def check_service(
    handpiece: HandpieceRecord | None, now: datetime, config: PolicyConfig
) -> RuleResult:
    """Remind from 60 days, lock from 90 days after the reference time."""
    result = RuleResult()
    if handpiece is None:
        return result
    ref = service_reference(handpiece)
    if ref is None or ref > now:
        return result
    due = ref + config.service_lock
    age = now - ref
    if age >= config.service_lock:
        result.locks.append(
            Lock(
                lock_id=service_lock_id(handpiece, ref),
                rule=RULE,
                reason=(
                    f"The handpiece {handpiece.pen_serial} reached its service life on "
                    f"{due:%Y-%m-%d}: have it serviced or replaced, or ask a clinician to "
                    "clear the lock."
                ),
                since=due,
            )
        )
    elif age >= config.service_remind:
        result.warnings.append(
            PolicyWarning(
                rule=RULE,
                message=(
                    f"The handpiece {handpiece.pen_serial} is due for service or replacement:"
                    f" it locks on {due:%Y-%m-%d}."
                ),
                at=due,
            )
        )
    return result
