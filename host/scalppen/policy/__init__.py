"""The host's patient-aware safety policy (HOST and BOTH rules of ``SAFETY_RULES.md``).

Pure logic over plain data: :func:`evaluate` turns a :class:`PatientHistory` and a
:class:`SessionRequest` into a :class:`Decision`; :func:`issue_permit` signs a permit
for an allowing decision. Nothing here reads a clock, a file or the radio.
"""

from scalppen.policy.adverse import adverse_lock_id
from scalppen.policy.clearance import validate_clearance
from scalppen.policy.decision import Decision, evaluate, find_locks
from scalppen.policy.errors import (
    ClearanceError,
    PermitNotAllowedError,
    PolicyError,
    ScreeningError,
)
from scalppen.policy.history import (
    LOCKING_ADVERSE_KINDS,
    AdverseEventRecord,
    AdverseKind,
    AttestationRecord,
    ClearanceRecord,
    Clock,
    FixedClock,
    HandpieceRecord,
    PatientHistory,
    PendingPermit,
    PenLimits,
    ScreeningRecord,
    SessionRequest,
    SessionSummary,
    SystemClock,
)
from scalppen.policy.interval import required_interval, topical_hold_until
from scalppen.policy.outcome import Lock, PolicyWarning, Refusal
from scalppen.policy.permits import PermitFields, issue_permit, permit_body, verify_permit
from scalppen.policy.ramp import ramp_limit_um
from scalppen.policy.rules import RULE_TITLES, PolicyConfig
from scalppen.policy.screening import (
    CONTRAINDICATIONS,
    ScreeningOutcome,
    evaluate_screening,
    screening_lock_id,
)
from scalppen.policy.service import service_due_at, service_lock_id

__all__ = [
    "CONTRAINDICATIONS",
    "LOCKING_ADVERSE_KINDS",
    "RULE_TITLES",
    "AdverseEventRecord",
    "AdverseKind",
    "AttestationRecord",
    "ClearanceError",
    "ClearanceRecord",
    "Clock",
    "Decision",
    "FixedClock",
    "HandpieceRecord",
    "Lock",
    "PatientHistory",
    "PenLimits",
    "PendingPermit",
    "PermitFields",
    "PermitNotAllowedError",
    "PolicyConfig",
    "PolicyError",
    "PolicyWarning",
    "Refusal",
    "ScreeningError",
    "ScreeningOutcome",
    "ScreeningRecord",
    "SessionRequest",
    "SessionSummary",
    "SystemClock",
    "adverse_lock_id",
    "evaluate",
    "evaluate_screening",
    "find_locks",
    "issue_permit",
    "permit_body",
    "ramp_limit_um",
    "required_interval",
    "screening_lock_id",
    "service_due_at",
    "service_lock_id",
    "topical_hold_until",
    "validate_clearance",
    "verify_permit",
]
