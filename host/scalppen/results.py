"""Typed values the client returns: pen information, status, logs, wear, events.

Each class is built from the decoded fields of one message (``from_fields``).
Numbers keep the wire's units (micrometres, Unix seconds, milliseconds). Coded
values become the enums of ``scalppen_protocol.codes`` when known, and stay plain
ints when a newer pen sends a value this host does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

from scalppen_protocol.codes import (
    PROTOCOL_VERSION,
    Capability,
    ErrorCode,
    MsgType,
    Notice,
    PenState,
    RecordKind,
    UpdateOutcome,
)

E = TypeVar("E", bound=IntEnum)


def known(enum: type[E], value: int) -> E | int:
    """``enum(value)`` when defined, else the plain int."""
    try:
        return enum(value)
    except ValueError:
        return int(value)


def name_of(value: IntEnum | int) -> str:
    """The enum name, or ``0x..`` for a value this host does not know."""
    return value.name if isinstance(value, IntEnum) else f"0x{value:02x}"


@dataclass(frozen=True)
class Limits:
    """Hard limits the pen enforces (reported in INFO; the host shows them)."""

    abs_depth_um: int
    ceiling_um: int
    grid_um: int
    min_depth_um: int
    depth_tol_um: int
    rate_min_sps: int
    rate_max_sps: int
    session_cap_s: int
    session_warn_s: int
    battery_reserve_pct: int
    speed_levels: int
    standalone_depth_um: int
    standalone_s: int
    #: 0: a home pen (rule 6 per pen); else a clinic pen keeping rule 6 per patient
    #: for this many patients (the permit's patient reference).
    patient_slots: int = 0

    @property
    def clinic(self) -> bool:
        """A clinic pen: its rule 6 follows the permit's patient, not the pen."""
        return self.patient_slots > 0

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Limits:
        """Build from the decoded ``limits`` fields."""
        return cls(**{name: int(fields[name]) for name in cls.__dataclass_fields__})


def version_text(code: int) -> str:
    """An UPDATE record's version (major << 16 | minor << 8 | patch) as text."""
    return f"{code >> 16 & 0xFF}.{code >> 8 & 0xFF}.{code & 0xFF}" if code else "?"


def update_text(outcome: UpdateOutcome | int, version: str) -> str:
    """INFO's last update over Bluetooth, in plain words."""
    if outcome == UpdateOutcome.ON_TRIAL:
        return f"{version} on trial (confirm it, or it rolls back if it does not start)"
    if outcome == UpdateOutcome.KEPT:
        return f"{version} started well and stays"
    if outcome == UpdateOutcome.ROLLED_BACK:
        return f"{version} never started well: rolled back"
    return "none since the pen was flashed"


@dataclass(frozen=True)
class PenInfo:
    """The pen's answer to HELLO."""

    proto_version: int
    caps: Capability
    max_frame: int
    model: str
    serial: str
    fw_version: str
    hw_rev: str
    key_set: bool
    limits: Limits
    profile: str = "development"  # the firmware build's profile
    #: the last firmware update over Bluetooth and the version it tried
    update: UpdateOutcome | int = UpdateOutcome.NONE
    update_version: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> PenInfo:
        """Build from decoded INFO fields."""
        return cls(
            proto_version=int(fields["proto_version"]),
            caps=Capability(int(fields["caps"])),
            max_frame=int(fields["max_frame"]),
            model=str(fields["model"]),
            serial=str(fields["serial"]),
            fw_version=str(fields["fw_version"]),
            hw_rev=str(fields["hw_rev"]),
            key_set=bool(fields["key_set"]),
            limits=Limits.from_fields(fields["limits"]),
            profile=str(fields.get("profile", "development")),
            update=known(UpdateOutcome, int(fields.get("update", 0))),
            update_version=str(fields.get("update_version", "")),
        )

    @property
    def compatible(self) -> bool:
        """True when the pen speaks this host's protocol version."""
        return self.proto_version == PROTOCOL_VERSION

    def has(self, capability: Capability) -> bool:
        """True when the pen announced ``capability``."""
        return bool(self.caps & capability)


@dataclass(frozen=True)
class PenStatus:
    """A snapshot of the pen (GET_STATUS)."""

    state: PenState | int
    fault: ErrorCode | int
    clock: int
    depth_set_um: int
    depth_actual_um: int
    speed_level: int
    elapsed_ms: int
    strokes: int
    battery_pct: int
    charging: bool
    contact: bool
    cartridge: int
    permit_depth_um: int
    permit_s: int
    last_session_end: int
    last_session_depth_um: int
    lockout_until: int
    resume_left_s: int = 0  # a paused session: seconds left to start it again

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> PenStatus:
        """Build from decoded STATUS fields."""
        values: dict[str, Any] = {name: int(fields[name]) for name in cls.__dataclass_fields__}
        values["state"] = known(PenState, values["state"])
        values["fault"] = known(ErrorCode, values["fault"])
        values["charging"] = bool(values["charging"])
        values["contact"] = bool(values["contact"])
        return cls(**values)

    @property
    def clock_set(self) -> bool:
        """False while the pen's clock is unset (0)."""
        return self.clock != 0

    @property
    def running(self) -> bool:
        """True while a session runs or is paused."""
        return self.state in (PenState.RUNNING, PenState.PAUSED)

    def locked_out(self, now: int | None = None) -> bool:
        """True when an interval lockout is in force at ``now`` (default: pen clock)."""
        at = self.clock if now is None else now
        return self.lockout_until != 0 and at < self.lockout_until


@dataclass(frozen=True)
class LogRecord:
    """One usage-log record; ``seq`` is unique and increasing on the pen."""

    seq: int
    time: int
    kind: RecordKind | int
    flags: int
    code: ErrorCode | int
    depth_um: int
    a: int
    b: int

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> LogRecord:
        """Build from one decoded record."""
        return cls(
            seq=int(fields["seq"]),
            time=int(fields["time"]),
            kind=known(RecordKind, int(fields["kind"])),
            flags=int(fields["flags"]),
            code=known(ErrorCode, int(fields["code"])),
            depth_um=int(fields["depth_um"]),
            a=int(fields["a"]),
            b=int(fields["b"]),
        )

    def to_dict(self) -> dict[str, int]:
        """Plain ints, as on the wire (for storage and export)."""
        return {k: int(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LogPage:
    """An answer to LOG_READ.

    Attributes:
        first_seq: the oldest record the pen still holds (older ones rotated out).
        last_seq: the newest record written (``first_seq - 1`` when empty).
        records: the records from the requested position, in order.
    """

    first_seq: int
    last_seq: int
    records: tuple[LogRecord, ...]

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> LogPage:
        """Build from decoded LOG_PAGE fields."""
        return cls(
            first_seq=int(fields["first_seq"]),
            last_seq=int(fields["last_seq"]),
            records=tuple(LogRecord.from_fields(r) for r in fields["records"]),
        )


@dataclass(frozen=True)
class LogGap:
    """Records that will never arrive: ``first``..``last`` inclusive.

    Attributes:
        first: first missing sequence number.
        last: last missing sequence number.
        reason: ``"rotated"`` (the pen's log wrapped over them) or ``"missing"``
            (absent inside a page).
    """

    first: int
    last: int
    reason: str

    @property
    def count(self) -> int:
        """How many records are missing."""
        return self.last - self.first + 1


@dataclass(frozen=True)
class SyncProgress:
    """Where a log sync stands, for progress displays."""

    next_seq: int
    last_seq: int
    first_available: int
    fetched: int

    @property
    def remaining(self) -> int:
        """Records still to fetch (an estimate when there are gaps)."""
        return max(0, self.last_seq - self.next_seq + 1)


@dataclass
class LogSync:
    """The result of :meth:`scalppen.client.Pen.sync_log`.

    Attributes:
        from_seq: where the sync started (the caller's last stored seq + 1).
        next_seq: where the next sync should start (last seq received + 1).
        first_available: the oldest record the pen holds.
        last_seq: the newest record on the pen when the sync ended.
        records: the records received, in order.
        gaps: sequence ranges that will never arrive (reported, not hidden).
    """

    from_seq: int
    next_seq: int
    first_available: int = 0
    last_seq: int = 0
    records: list[LogRecord] = field(default_factory=list)
    gaps: list[LogGap] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when everything up to ``last_seq`` was fetched."""
        return self.next_seq > self.last_seq

    @property
    def lost(self) -> int:
        """How many records fell into gaps."""
        return sum(g.count for g in self.gaps)


@dataclass(frozen=True)
class WearInfo:
    """Needle cartridge and handpiece wear (GET_WEAR)."""

    cartridge: int
    cart_id: bytes
    needles: int
    strokes_used: int
    strokes_rated: int
    first_use: int
    expiry: int
    cart_state: int
    hp_strokes: int
    hp_punctures: int
    hp_sessions: int
    hp_run_s: int
    hp_first_session: int

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> WearInfo:
        """Build from decoded WEAR fields."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = fields[name]
            values[name] = bytes(raw) if name == "cart_id" else int(raw)
        return cls(**values)

    @property
    def cart_id_hex(self) -> str:
        """The cartridge id as 16 hex digits."""
        return self.cart_id.hex()

    @property
    def used_fraction(self) -> float:
        """Strokes used / rated (0.0 when no rating is known)."""
        return self.strokes_used / self.strokes_rated if self.strokes_rated else 0.0


@dataclass(frozen=True)
class TelemetryEvent:
    """EV_TELEMETRY: the running session, a few times a second."""

    seq: int
    elapsed_ms: int
    strokes: int
    depth_um: int
    rate_x10: int
    motor_ma: int
    temp_c10: int
    battery_pct: int
    contact: bool
    state: PenState | int


@dataclass(frozen=True)
class CartridgeEvent:
    """EV_CARTRIDGE: a cartridge was inserted or removed."""

    seq: int
    inserted: bool
    cart_id: bytes
    cart_state: int


@dataclass(frozen=True)
class FaultEvent:
    """EV_FAULT: the pen stopped for a fault."""

    seq: int
    code: ErrorCode | int
    state: PenState | int
    lockout: bool


@dataclass(frozen=True)
class NoticeEvent:
    """EV_NOTICE: session warnings, pauses, the end of a session."""

    seq: int
    code: Notice | int
    value: int


PenEvent = TelemetryEvent | CartridgeEvent | FaultEvent | NoticeEvent

EVENT_TYPES: frozenset[MsgType] = frozenset(
    {MsgType.EV_TELEMETRY, MsgType.EV_CARTRIDGE, MsgType.EV_FAULT, MsgType.EV_NOTICE}
)


def event_from_fields(msg_type: MsgType, seq: int, fields: Mapping[str, Any]) -> PenEvent:
    """Build the typed event of ``msg_type`` (one of :data:`EVENT_TYPES`).

    Raises:
        ValueError: ``msg_type`` is not an event.
    """
    if msg_type == MsgType.EV_TELEMETRY:
        return TelemetryEvent(
            seq=seq,
            elapsed_ms=int(fields["elapsed_ms"]),
            strokes=int(fields["strokes"]),
            depth_um=int(fields["depth_um"]),
            rate_x10=int(fields["rate_x10"]),
            motor_ma=int(fields["motor_ma"]),
            temp_c10=int(fields["temp_c10"]),
            battery_pct=int(fields["battery_pct"]),
            contact=bool(fields["contact"]),
            state=known(PenState, int(fields["state"])),
        )
    if msg_type == MsgType.EV_CARTRIDGE:
        return CartridgeEvent(
            seq=seq,
            inserted=bool(fields["inserted"]),
            cart_id=bytes(fields["cart_id"]),
            cart_state=int(fields["cart_state"]),
        )
    if msg_type == MsgType.EV_FAULT:
        return FaultEvent(
            seq=seq,
            code=known(ErrorCode, int(fields["code"])),
            state=known(PenState, int(fields["state"])),
            lockout=bool(fields["lockout"]),
        )
    if msg_type == MsgType.EV_NOTICE:
        return NoticeEvent(
            seq=seq, code=known(Notice, int(fields["code"])), value=int(fields["value"])
        )
    raise ValueError(f"{msg_type!r} is not an event")
