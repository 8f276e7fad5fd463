"""The v1 message catalogue, defined once with ``construct``.

Every payload is a ``construct.Struct`` built only from the vocabulary the firmware
codec generator understands (``scalppen_protocol.codegen``): little-endian integers
(``Int8ul``, ``Int16ul``, ``Int16sl``, ``Int32ul``), fixed ``Bytes(n)``, UTF-8
``PascalString(Int8ul, "utf8")`` and ``PrefixedArray(Int8ul, <Struct>)``.
"""

from __future__ import annotations

from typing import Final

from construct import Bytes, Int8ul, Int16sl, Int16ul, Int32ul, PascalString, PrefixedArray, Struct

from scalppen_protocol.codes import MsgType

Text = PascalString(Int8ul, "utf8")

Empty = Struct()

#: Hard limits the pen reports in INFO; the pen enforces them, the host shows them.
Limits = Struct(
    "abs_depth_um" / Int16ul,
    "ceiling_um" / Int16ul,
    "grid_um" / Int16ul,
    "min_depth_um" / Int16ul,
    "depth_tol_um" / Int16ul,
    "rate_min_sps" / Int16ul,
    "rate_max_sps" / Int16ul,
    "session_cap_s" / Int16ul,
    "session_warn_s" / Int16ul,
    "battery_reserve_pct" / Int8ul,
    "speed_levels" / Int8ul,
    "standalone_depth_um" / Int16ul,
    "standalone_s" / Int16ul,
    # 0: a home pen (rule 6 per pen); else a clinic pen keeping this many patients'
    # last sessions (rule 6 per patient, the permit's patient)
    "patient_slots" / Int8ul,
)

Hello = Struct(
    "proto_version" / Int8ul,
    "caps" / Int16ul,
)

Info = Struct(
    "proto_version" / Int8ul,
    "caps" / Int16ul,
    "max_frame" / Int16ul,
    "model" / Text,
    "serial" / Text,
    "fw_version" / Text,
    "hw_rev" / Text,
    "profile" / Text,  # the build: "production" (no bench UART, no REPL) or "development"
    "key_set" / Int8ul,
    "limits" / Limits,
    # the last firmware update over SMP (UpdateOutcome) and the version it tried
    "update" / Int8ul,
    "update_version" / Text,
)

Status = Struct(
    "state" / Int8ul,
    "fault" / Int16ul,
    "clock" / Int32ul,
    "depth_set_um" / Int16ul,
    "depth_actual_um" / Int16ul,
    "speed_level" / Int8ul,
    "elapsed_ms" / Int32ul,
    "strokes" / Int32ul,
    "battery_pct" / Int8ul,
    "charging" / Int8ul,
    "contact" / Int8ul,
    "cartridge" / Int8ul,
    "permit_depth_um" / Int16ul,
    "permit_s" / Int16ul,
    "last_session_end" / Int32ul,
    "last_session_depth_um" / Int16ul,
    "lockout_until" / Int32ul,
    "resume_left_s" / Int16ul,  # a paused session: s left to start it again (else it ends)
)

#: What a SET_TIME's tag covers. ``nonce`` is one-time, like a permit's.
TimeBody = Struct("unix" / Int32ul, "nonce" / Bytes(8))
TIME_BODY_SIZE: Final = 12

#: Set the pen's clock. ``tag`` = HMAC-SHA256(key, TIME_TAG_PREFIX + TimeBody): only
#: the holder of the permit key moves the pen's clock (rule 6).
SetTime = Struct(*TimeBody.subcons, "tag" / Bytes(32))

#: What a permit's tag covers (the first 28 bytes of a Permit). ``patient``: an
#: opaque 8-byte reference the host keeps per patient (no personal data); all zero
#: names nobody (a home pen's rule 6 is per pen and ignores it).
PermitBody = Struct(
    "max_depth_um" / Int16ul,
    "max_duration_s" / Int16ul,
    "issued_at" / Int32ul,
    "expires_at" / Int32ul,
    "nonce" / Bytes(8),
    "patient" / Bytes(8),
)
PERMIT_BODY_SIZE: Final = 28

#: A session permit. ``tag`` = HMAC-SHA256(key, PermitBody of the same fields).
Permit = Struct(*PermitBody.subcons, "tag" / Bytes(32))

SetDepth = Struct("depth_um" / Int16ul)
SetSpeed = Struct("level" / Int8ul)
LogRead = Struct("from_seq" / Int32ul, "max_records" / Int8ul)

#: The host stored every record up to ``up_to_seq``: the pen may reuse their space.
#: ``tag`` = HMAC-SHA256(key, LOG_ACK_TAG_PREFIX + up_to_seq as u32 LE).
LogAck = Struct("up_to_seq" / Int32ul, "tag" / Bytes(32))

LogRecord = Struct(
    "seq" / Int32ul,
    "time" / Int32ul,
    "kind" / Int8ul,
    "flags" / Int8ul,
    "code" / Int16ul,
    "depth_um" / Int16ul,
    "a" / Int32ul,
    "b" / Int32ul,
)
LOG_RECORD_SIZE: Final = 22

LogPage = Struct(
    "first_seq" / Int32ul,
    "last_seq" / Int32ul,
    "records" / PrefixedArray(Int8ul, LogRecord),
)

Wear = Struct(
    "cartridge" / Int8ul,
    "cart_id" / Bytes(8),
    "needles" / Int8ul,
    "strokes_used" / Int32ul,
    "strokes_rated" / Int32ul,
    "first_use" / Int32ul,
    "expiry" / Int32ul,
    "cart_state" / Int8ul,
    "hp_strokes" / Int32ul,
    "hp_punctures" / Int32ul,
    "hp_sessions" / Int32ul,
    "hp_run_s" / Int32ul,
    "hp_first_session" / Int32ul,
)

SetKey = Struct("key" / Bytes(32))

Ack = Struct("req_type" / Int8ul)
Nack = Struct("req_type" / Int8ul, "error" / Int16ul, "detail" / Int32ul)

Telemetry = Struct(
    "elapsed_ms" / Int32ul,
    "strokes" / Int32ul,
    "depth_um" / Int16ul,
    "rate_x10" / Int16ul,
    "motor_ma" / Int16ul,
    "temp_c10" / Int16sl,
    "battery_pct" / Int8ul,
    "contact" / Int8ul,
    "state" / Int8ul,
)

CartridgeEvent = Struct("inserted" / Int8ul, "cart_id" / Bytes(8), "cart_state" / Int8ul)
FaultEvent = Struct("code" / Int16ul, "state" / Int8ul, "lockout" / Int8ul)
NoticeEvent = Struct("code" / Int16ul, "value" / Int32ul)

#: Message type -> payload definition. The whole catalogue, in one place.
CATALOGUE: Final[dict[MsgType, Struct]] = {
    MsgType.HELLO: Hello,
    MsgType.GET_STATUS: Empty,
    MsgType.SET_TIME: SetTime,
    MsgType.ARM: Permit,
    MsgType.SET_DEPTH: SetDepth,
    MsgType.SET_SPEED: SetSpeed,
    MsgType.START: Empty,
    MsgType.STOP: Empty,
    MsgType.LOG_READ: LogRead,
    MsgType.GET_WEAR: Empty,
    MsgType.SET_KEY: SetKey,
    MsgType.LOG_ACK: LogAck,
    MsgType.ACK: Ack,
    MsgType.NACK: Nack,
    MsgType.INFO: Info,
    MsgType.STATUS: Status,
    MsgType.LOG_PAGE: LogPage,
    MsgType.WEAR: Wear,
    MsgType.EV_TELEMETRY: Telemetry,
    MsgType.EV_CARTRIDGE: CartridgeEvent,
    MsgType.EV_FAULT: FaultEvent,
    MsgType.EV_NOTICE: NoticeEvent,
}

#: The response each request expects (ACK/NACK otherwise).
RESPONSES: Final[dict[MsgType, MsgType]] = {
    MsgType.HELLO: MsgType.INFO,
    MsgType.GET_STATUS: MsgType.STATUS,
    MsgType.LOG_READ: MsgType.LOG_PAGE,
    MsgType.GET_WEAR: MsgType.WEAR,
}
