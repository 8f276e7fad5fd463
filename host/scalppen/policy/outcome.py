"""What a rule check produces: refusals, warnings, locks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Refusal:
    """Why a session is not allowed now.

    Attributes:
        rule: the rule number in ``SAFETY_RULES.md``.
        reason: plain words for the user: what is wrong and what to do.
        lifts_at: when the refusal lifts by itself; None if it needs an action.
        clearable_by_clinician: True if a clinician may clear it (rule 22).
        lock_id: the lock's identity, for a clearance; None for refusals that are
            not locks (a depth too deep, a wait).
    """

    rule: int
    reason: str
    lifts_at: datetime | None = None
    clearable_by_clinician: bool = False
    lock_id: str | None = None


@dataclass(frozen=True)
class PolicyWarning:
    """Something the user should know that does not stop the session.

    Attributes:
        rule: the rule number.
        message: plain words.
        at: a time the message is about (a deadline, a lift time), if any.
    """

    rule: int
    message: str
    at: datetime | None = None


@dataclass(frozen=True)
class Lock:
    """A HOST lock that holds until a clinician clears it (or its cause goes away).

    Attributes:
        lock_id: stable identity, e.g. ``17:screening:12``; a clearance names it.
        rule: the rule that set it.
        reason: plain words.
        since: when the lock began.
        cleared: True if a valid clinician clearance lifted it.
    """

    lock_id: str
    rule: int
    reason: str
    since: datetime
    cleared: bool = False

    def as_refusal(self) -> Refusal:
        """The refusal this lock gives while it holds."""
        return Refusal(
            rule=self.rule,
            reason=self.reason,
            lifts_at=None,
            clearable_by_clinician=True,
            lock_id=self.lock_id,
        )


@dataclass
class RuleResult:
    """What one rule check adds to a decision."""

    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[PolicyWarning] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)
