"""Plain data the policy decides on, assembled by the caller (usually from the store).

Every time is a timezone-aware :class:`datetime`. The policy never reads a clock of
its own: callers pass ``now`` (a :class:`Clock` gives it where a live clock is needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from scalppen.policy.rules import DEPTH_GRID_UM, MIN_DEPTH_UM, PRODUCT_CEILING_UM


class Clock(Protocol):
    """Where the current time comes from."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The computer's clock, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, simulations)."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start)

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward and return the new time."""
        self._now += delta
        return self._now


def require_aware(moment: datetime) -> datetime:
    """Return ``moment`` if it carries a timezone.

    Raises:
        ValueError: ``moment`` is naive (its meaning would depend on the computer).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware (use datetime.now(UTC))")
    return moment


class AdverseKind(StrEnum):
    """Adverse events a user or clinician reports (rule 18)."""

    OOZING = "oozing"
    EXTREME_HEAT = "extreme_heat"
    PUS = "pus"
    REDNESS = "redness"
    BRUISING = "bruising"
    OTHER = "other"


#: Kinds that lock every session until a clinician clears them (rule 18).
LOCKING_ADVERSE_KINDS = frozenset({AdverseKind.OOZING, AdverseKind.EXTREME_HEAT, AdverseKind.PUS})


@dataclass(frozen=True)
class SessionSummary:
    """One past needling session.

    Attributes:
        depth_um: the session's depth.
        started_at: start, or None when the pen's clock was unset.
        ended_at: end, or None when unknown.
        duration_s: needling time in seconds.
        strokes: needle strokes in the session.
        tolerated: True if the user tolerated it, False if not, None if not recorded.
        session_id: the store's id, when it has one.
        pen_serial: the pen it ran on, when known.
    """

    depth_um: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float = 0.0
    strokes: int = 0
    tolerated: bool | None = None
    session_id: int | None = None
    pen_serial: str | None = None

    @property
    def finished_at(self) -> datetime | None:
        """The best known end: the end, else the start (sessions without times: None)."""
        return self.ended_at if self.ended_at is not None else self.started_at


@dataclass(frozen=True)
class ScreeningRecord:
    """A completed contraindication screening (rule 17).

    Attributes:
        screening_id: the store's id (names the lock a positive screening sets).
        at: when it was completed.
        positives: the contraindications answered yes (empty: clear).
    """

    screening_id: int
    at: datetime
    positives: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdverseEventRecord:
    """A reported adverse event (rule 18)."""

    event_id: int
    at: datetime
    kind: AdverseKind
    severity: str = ""
    notes: str = ""
    session_id: int | None = None


@dataclass(frozen=True)
class ClearanceRecord:
    """A recorded clinician clearance of one HOST lock (rule 22).

    ``signed_by`` is the fingerprint of the trusted clinician key whose signature the
    store checked when it loaded the record; without one the record lifts nothing.
    """

    lock_id: str
    rule: int
    clinician_name: str
    role: str
    reason: str
    at: datetime
    signed_by: str = ""


@dataclass(frozen=True)
class HandpieceRecord:
    """What rule 16 needs about the handpiece.

    Attributes:
        pen_serial: the handpiece.
        first_session_at: its first session ever, None if it never ran one.
        serviced_at: its most recent service, None if never serviced.
    """

    pen_serial: str
    first_session_at: datetime | None = None
    serviced_at: datetime | None = None


@dataclass(frozen=True)
class AttestationRecord:
    """A recorded sterilisation attestation (rule 19)."""

    at: datetime
    statement: str = "cleaned with 70 % isopropyl alcohol"


@dataclass(frozen=True)
class PenLimits:
    """The hard limits a pen reports (INFO ``limits``); the pen enforces them too."""

    ceiling_um: int = PRODUCT_CEILING_UM
    grid_um: int = DEPTH_GRID_UM
    min_depth_um: int = MIN_DEPTH_UM
    session_cap_s: int = 900
    session_warn_s: int = 600

    @classmethod
    def from_info(cls, limits: Mapping[str, Any]) -> PenLimits:
        """Build from the ``limits`` mapping of an INFO message (or the store's JSON)."""
        default = cls()
        return cls(
            ceiling_um=int(limits.get("ceiling_um", default.ceiling_um)),
            grid_um=int(limits.get("grid_um", default.grid_um)) or default.grid_um,
            min_depth_um=int(limits.get("min_depth_um", default.min_depth_um)),
            session_cap_s=int(limits.get("session_cap_s", default.session_cap_s)),
            session_warn_s=int(limits.get("session_warn_s", default.session_warn_s)),
        )


@dataclass(frozen=True)
class PendingPermit:
    """A permit issued for this patient whose session this store does not know yet
    (it may be running on a pen in another room). Until the pen's log shows what
    became of it, it counts for rule 6 as a session ending at ``ends_by`` at its depth.

    Attributes:
        pen_serial: the pen it was issued to.
        issued_at: when.
        ends_by: the latest a session under it can end (unused until it expired, then
            the whole needling time and the pause window).
        depth_um: its depth limit.
    """

    pen_serial: str
    issued_at: datetime
    ends_by: datetime
    depth_um: int


@dataclass(frozen=True)
class PatientHistory:
    """Everything the policy knows about one patient and the pen in hand.

    Attributes:
        profile_id: the patient's profile.
        birth_year: for the age check of screening (rule 17), when known.
        sessions: past sessions, any order.
        screenings: completed screenings.
        adverse_events: reported adverse events.
        clearances: recorded clinician clearances.
        handpiece: the pen in hand (rule 16), None if unknown.
        attestation: the latest sterilisation attestation (rule 19).
        pen_last_session: (end, depth_um) the pen itself reports, in case the store
            has not synced its log yet (rule 6 is BOTH).
        pen_lock_left_s: the wait the pen itself still counts, in its own frame (its
            clock and its running time): no clock on this computer can shorten it.
        pending_permits: permits issued for the patient whose sessions are not in the
            store yet (another laptop's, or not synced): each counts for rule 6.
    """

    profile_id: int | None = None
    birth_year: int | None = None
    sessions: tuple[SessionSummary, ...] = ()
    screenings: tuple[ScreeningRecord, ...] = ()
    adverse_events: tuple[AdverseEventRecord, ...] = ()
    clearances: tuple[ClearanceRecord, ...] = ()
    handpiece: HandpieceRecord | None = None
    attestation: AttestationRecord | None = None
    pen_last_session: tuple[datetime, int] | None = None
    pen_lock_left_s: int = 0
    pending_permits: tuple[PendingPermit, ...] = ()


@dataclass(frozen=True)
class SessionRequest:
    """What the user asks for.

    Attributes:
        depth_um: the depth wanted; None asks for the deepest the policy permits.
        duration_s: the needling time wanted; None asks for the longest permitted.
    """

    depth_um: int | None = None
    duration_s: int | None = None
