"""Errors the host's safety policy raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalppen.policy.outcome import Refusal


class PolicyError(Exception):
    """Base of every policy error."""


class PermitNotAllowedError(PolicyError):
    """A permit was asked for a decision that does not allow a session.

    Attributes:
        refusals: the refusals of the decision (empty when the decision was stale).
    """

    def __init__(self, message: str, refusals: tuple[Refusal, ...] = ()) -> None:
        super().__init__(message)
        self.refusals = refusals


class ClearanceError(PolicyError):
    """A clinician clearance that cannot be accepted (wrong role, no reason, FW rule)."""


class ScreeningError(PolicyError):
    """Screening answers that are incomplete or malformed."""
