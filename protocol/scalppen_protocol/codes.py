"""Numbers that cross the pen/host boundary: message types, error codes, record kinds.

This module is the one source of truth. The firmware gets the same numbers in its
generated codec (``firmware/pen/wire.py``, see ``scalppen_protocol.codegen``).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

# 2: SET_TIME carries a tag, LOG_ACK; 3: STATUS resume_left_s, INFO profile;
# 4: a permit names its patient, INFO limits patient_slots (rule 6 per patient)
PROTOCOL_VERSION: Final = 5
MAX_FRAME: Final = 4096  # header + payload, bytes
#: A paused session stays open this long for a START (STATUS resume_left_s counts it
#: down; then it ends, PAUSE_EXPIRED). docs/sessions.md
PAUSE_WINDOW_S: Final = 600
HEADER_SIZE: Final = 6
MAX_PAGE_RECORDS: Final = 160
# While needles move the pen answers LOG_READ with at most this many records, so
# that reading the log cannot stretch a control tick (the host reads on).
RUNNING_PAGE_RECORDS: Final = 16
FRAGMENT_HEADER_SIZE: Final = 2
ATT_HEADER_SIZE: Final = 3
MIN_MTU: Final = 23
MAX_MTU: Final = 517
#: Domain prefixes of what the permit key signs besides permits (HMAC-SHA256 of the
#: prefix + the message's body): a tag made for one message never fits another.
TIME_TAG_PREFIX: Final = b"scalppen/SET_TIME"
LOG_ACK_TAG_PREFIX: Final = b"scalppen/LOG_ACK"


class MsgType(IntEnum):
    """Message type byte. 0x01-0x3F requests, 0x80-0xBF responses, 0xC0-0xEF events."""

    HELLO = 0x01
    GET_STATUS = 0x02
    SET_TIME = 0x03
    ARM = 0x04
    SET_DEPTH = 0x05
    SET_SPEED = 0x06
    START = 0x07
    STOP = 0x08
    LOG_READ = 0x09
    GET_WEAR = 0x0A
    SET_KEY = 0x0B
    LOG_ACK = 0x0C
    ACK = 0x7E
    NACK = 0x7F
    INFO = 0x81
    STATUS = 0x82
    LOG_PAGE = 0x89
    WEAR = 0x8A
    EV_TELEMETRY = 0xC0
    EV_CARTRIDGE = 0xC1
    EV_FAULT = 0xC2
    EV_NOTICE = 0xC3


class Capability(IntFlag):
    LOG = 0x0001
    WEAR = 0x0002
    TELEMETRY = 0x0004
    STANDALONE = 0x0008
    SERIAL = 0x0010
    PERMIT = 0x0020


class ErrorCode(IntEnum):
    """Error, refusal and fault codes: NACK ``error``, EV_FAULT ``code``, log ``code``."""

    OK = 0x00
    # framing / codec
    TRUNCATED = 0x01
    OVERSIZE = 0x02
    BAD_CRC = 0x03
    BAD_VERSION = 0x04
    DUPLICATE_FRAGMENT = 0x05
    OUT_OF_ORDER = 0x06
    NOT_SUPPORTED = 0x07
    MALFORMED = 0x08
    BAD_COBS = 0x09
    BUSY = 0x0A
    TIMEOUT = 0x0B
    # state
    WRONG_STATE = 0x20
    NOT_ARMED = 0x21
    ALREADY_RUNNING = 0x22
    LOCKED = 0x23
    NOT_AUTHORIZED = 0x24
    KEY_ALREADY_SET = 0x25
    # permits (rule 20)
    PERMIT_BAD_TAG = 0x30
    PERMIT_REPLAYED = 0x31
    PERMIT_EXPIRED = 0x32
    PERMIT_CLOCK_UNSET = 0x33
    PERMIT_OVER_LIMIT = 0x34
    PERMIT_NO_KEY = 0x35
    PERMIT_NOT_YET_VALID = 0x36
    PERMIT_NO_PATIENT = 0x37  # a clinic pen's permit names no patient (rule 6 per patient)
    PERMIT_OTHER_PATIENT = 0x38  # a paused session goes on only for its own patient
    # depth (rules 1-3)
    DEPTH_OFF_GRID = 0x40
    DEPTH_ABOVE_CEILING = 0x41
    DEPTH_ABOVE_PERMIT = 0x42
    DEPTH_VERIFY_FAILED = 0x43
    NOT_HOMED = 0x44
    SPEED_OUT_OF_RANGE = 0x48
    # start conditions (rules 5, 6, 10-15)
    CHARGING = 0x50
    BATTERY_LOW = 0x51
    NO_CONTACT = 0x52
    NO_CARTRIDGE = 0x53
    CARTRIDGE_USED = 0x54
    CARTRIDGE_WORN = 0x55
    CARTRIDGE_EXPIRED = 0x56
    CARTRIDGE_REINSERTED = 0x57
    INTERVAL_LOCKOUT = 0x58
    SESSION_CAP = 0x59
    CARTRIDGE_INVALID = 0x5A
    BATTERY_UNKNOWN = 0x5B  # the fuel gauge cannot be read: the charge is unknown (rule 12)
    # its authenticator failed the challenge: a copy or a rewrite (rules 13, 15)
    CARTRIDGE_UNAUTHENTIC = 0x5C
    CARTRIDGE_UNDATED = 0x5D  # no manufacture date: the shelf life cannot be checked (rule 15)
    PAUSE_EXPIRED = 0x5E  # a paused session was not started again within its window: it ended
    # a clinic pen's patient table holds only intervals in force: detail = when one lifts
    PATIENTS_FULL = 0x5F
    # faults (rules 3, 8, 9, 21)
    FAULT_STALL = 0x60
    FAULT_OVERCURRENT = 0x61
    FAULT_OVERTEMP = 0x62
    FAULT_RATE_DRIFT = 0x63
    FAULT_DEPTH = 0x64
    FAULT_HOMING = 0x65
    FAULT_WATCHDOG = 0x66
    FAULT_LINK_LOST = 0x67
    FAULT_BROWNOUT = 0x68
    FAULT_CHARGING = 0x69
    FAULT_CARTRIDGE_PULLED = 0x6A
    FAULT_STROKE_MISMATCH = 0x6B  # hall rate and the motor model's rate disagree (rules 8, 14)
    FAULT_DUTY_SATURATED = 0x6C  # the rate loop is at full duty: it no longer controls (rule 8)
    FAULT_GAUGE = 0x6D  # the fuel gauge stopped answering during a session (rule 12)
    FAULT_DEPTH_DISAGREE = 0x6E  # depth sensor, counted steps and home switch disagree (rule 3)
    # storage
    LOG_CORRUPT = 0x70
    STORAGE_FULL = 0x71
    LOG_UNSYNCED = 0x72  # the log has no room left for a session's records: sync it first


class RecordKind(IntEnum):
    """Kind byte of a usage-log record."""

    BOOT = 1
    TIME_SET = 2
    ARMED = 3
    PERMIT_REFUSED = 4
    SESSION_START = 5
    SESSION_END = 6
    FAULT = 7
    CARTRIDGE_IN = 8
    CARTRIDGE_OUT = 9
    START_REFUSED = 10
    SESSION_WARN = 11
    KEY_SET = 12
    LINK_LOST = 13
    LOG_RECOVERED = 14
    REFUSALS_REPEATED = 15  # the same refusal again and again: counted (a = count)
    DISARMED = 16  # the link that armed the permit changed: the permit is dropped
    PAIRED = 17  # a host bonded (a, b = its address; code = bonds kept)
    BONDS_REVOKED = 18  # a new permit key: this host's bond was forgotten (code = how many)
    SESSION_STOPPED = 19  # stopped early: paused, resumable (a = needling ms, b = strokes)
    # a firmware update's trial ended (code = UpdateOutcome; a = the version tried,
    # b = the version running after it, each major << 16 | minor << 8 | patch)
    UPDATE = 20


class UpdateOutcome(IntEnum):
    """The last firmware update over SMP (INFO ``update``, UPDATE records' code)."""

    NONE = 0  # none since the pen was flashed
    ON_TRIAL = 1  # the new build runs on trial: not yet started well or confirmed
    KEPT = 2  # the new build started well (or was confirmed) and stays
    ROLLED_BACK = 3  # the new build never started well: the previous one runs again


class PenState(IntEnum):
    IDLE = 0
    ARMED = 1
    RUNNING = 2
    PAUSED = 3
    FINISHED = 4
    FAULT = 5
    LOCKED = 6
    HOMING = 7


class Notice(IntEnum):
    """EV_NOTICE codes."""

    SESSION_WARN = 1  # 10-minute warning (rule 5)
    SESSION_CAP = 2  # hard stop at the session cap (rule 5)
    PAUSED_NO_CONTACT = 3  # rule 10
    RESUMED = 4
    SESSION_FINISHED = 5
    PERMIT_USED = 6
    PAUSED_STOPPED = 7  # stopped in its first 30 s: resumable for value s under its permit
