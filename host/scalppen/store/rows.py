"""Typed rows the store's repository functions return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Pen:
    """A paired (or at least synced) pen. The permit key is never part of the row."""

    serial: str
    model: str
    fw_version: str
    hw_rev: str
    ble_address: str | None
    paired_at: datetime | None
    limits: dict[str, Any]
    owner_profile_id: int | None
    has_key: bool


@dataclass(frozen=True)
class Profile:
    """A patient, home user or clinician."""

    id: int
    name: str
    role: str
    birth_year: int | None
    created_at: datetime
    notes: str


@dataclass(frozen=True)
class Session:
    """A needling session derived from the pen's log.

    Attributes:
        started_at: None when the pen's clock was unset.
        ended_at: None when unknown (clock unset, or the session never closed).
        complete: False if the log shows no SESSION_END for it (reset, lost power).
        start_seq: the SESSION_START record's seq (None if that record was lost).
        end_seq: the SESSION_END record's seq (None if there was none).
    """

    id: int
    pen_serial: str
    profile_id: int | None
    started_at: datetime | None
    ended_at: datetime | None
    depth_um: int
    duration_s: float
    strokes: int
    tolerated: bool | None
    complete: bool
    start_seq: int | None
    end_seq: int | None
    #: the room (laptop) and the user that rated it (clinic audit)
    rated_on: str = ""
    rated_by: str = ""


@dataclass(frozen=True)
class LogRecord:
    """One record of a pen's usage log, as the pen stores it (``time`` 0 = clock unset)."""

    seq: int
    time: int
    kind: int
    flags: int
    code: int
    depth_um: int
    a: int
    b: int


@dataclass(frozen=True)
class StoredLogRecord:
    """A log record as stored, with its pen."""

    pen_serial: str
    seq: int
    time: datetime | None
    kind: int
    flags: int
    code: int
    depth_um: int
    a: int
    b: int
    log_epoch: int = 0  # which of the pen's logs (one more each time its log restarted)


@dataclass(frozen=True)
class SyncResult:
    """What one log ingest did.

    Attributes:
        new: records stored for the first time.
        duplicates: records already stored (same pen and seq, same content).
        gaps: missing seq ranges (inclusive) found by this ingest.
        conflicts: seqs already stored with different content (kept as first stored).
        sessions: sessions derived or completed by this ingest.
    """

    new: int
    duplicates: int
    gaps: list[tuple[int, int]] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    sessions: int = 0


@dataclass(frozen=True)
class TelemetrySummary:
    """Summary of one session's telemetry."""

    samples: int
    rate_mean_x10: int
    rate_min_x10: int
    rate_max_x10: int
    temp_max_c10: int
    motor_ma_max: int
    battery_start: int
    battery_end: int
    contact_pct: int


@dataclass(frozen=True)
class Event:
    """Something that happened: a pen fault or notice, a CLI action, a refusal."""

    id: int
    at: datetime
    pen_serial: str | None
    profile_id: int | None
    kind: str
    code: int
    message: str
    data: dict[str, Any]


@dataclass(frozen=True)
class WearSnapshot:
    """Cartridge and handpiece counters read from a pen (WEAR message)."""

    id: int
    pen_serial: str
    at: datetime
    cartridge: bool
    cart_id: str
    needles: int
    strokes_used: int
    strokes_rated: int
    first_use: datetime | None
    expiry: datetime | None
    cart_state: int
    hp_strokes: int
    hp_punctures: int
    hp_sessions: int
    hp_run_s: int
    hp_first_session: datetime | None

    @property
    def punctures_used(self) -> int:
        """Strokes x needles used."""
        return self.strokes_used * self.needles

    @property
    def punctures_rated(self) -> int:
        """Strokes x needles the cartridge is rated for."""
        return self.strokes_rated * self.needles


@dataclass(frozen=True)
class Service:
    """A handpiece service (rule 16)."""

    id: int
    pen_serial: str
    at: datetime
    by_name: str
    notes: str


@dataclass(frozen=True)
class Screening:
    """A stored contraindication screening (rule 17)."""

    id: int
    profile_id: int
    at: datetime
    answers: dict[str, bool]
    result: str
    positives: tuple[str, ...]
    #: the room (laptop) and the user that made it (clinic audit)
    made_on: str = ""
    made_by: str = ""


@dataclass(frozen=True)
class AdverseEvent:
    """A stored adverse-event report (rule 18)."""

    id: int
    profile_id: int
    session_id: int | None
    at: datetime
    kind: str
    severity: str
    notes: str
    #: the room (laptop) and the user that made it (clinic audit)
    made_on: str = ""
    made_by: str = ""


@dataclass(frozen=True)
class Clearance:
    """A stored clinician clearance (rule 22).

    ``statement`` is the signed blob it was accepted with (None for clearances
    recorded before signatures: history that lifts nothing).
    """

    id: int
    lock_id: str
    rule: int
    profile_id: int | None
    clinician_name: str
    role: str
    reason: str
    at: datetime
    clearance_id: str | None = None
    key_fingerprint: str | None = None
    issued: datetime | None = None
    expires: datetime | None = None
    statement: bytes | None = None
    #: the room (laptop) and the user that made it (clinic audit)
    made_on: str = ""
    made_by: str = ""


@dataclass(frozen=True)
class Attestation:
    """A stored sterilisation attestation (rule 19)."""

    id: int
    profile_id: int
    pen_serial: str | None
    at: datetime
    statement: str
    #: the room (laptop) and the user that made it (clinic audit)
    made_on: str = ""
    made_by: str = ""


@dataclass(frozen=True)
class IssuedPermit:
    """A permit the host issued (the tag is not kept)."""

    id: int
    pen_serial: str
    profile_id: int | None
    nonce: bytes
    max_depth_um: int
    max_duration_s: int
    issued_at: datetime
    expires_at: datetime
    #: the room (laptop) and the user that made it (clinic audit)
    made_on: str = ""
    made_by: str = ""
