"""Human messages for the pen's error, refusal and fault codes.

One line each, saying what happened and, where there is one, what to do. Used for
NACKs (:class:`scalppen.client.PenRefused`), fault events and log records.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from scalppen_protocol.codes import ErrorCode

MESSAGES: Final[dict[ErrorCode, str]] = {
    ErrorCode.OK: "no error",
    ErrorCode.TRUNCATED: "the pen received a truncated message",
    ErrorCode.OVERSIZE: "the message was too large for the pen",
    ErrorCode.BAD_CRC: "the pen received a damaged message (CRC)",
    ErrorCode.BAD_VERSION: "the pen speaks another protocol version; update the host or the pen",
    ErrorCode.DUPLICATE_FRAGMENT: "the pen received a fragment twice",
    ErrorCode.OUT_OF_ORDER: "the pen received fragments out of order",
    ErrorCode.NOT_SUPPORTED: "the pen does not support this request",
    ErrorCode.MALFORMED: "the pen could not read the request",
    ErrorCode.BAD_COBS: "the pen received a damaged serial packet",
    ErrorCode.BUSY: "the pen is busy; try again",
    ErrorCode.TIMEOUT: "the pen timed out waiting for the rest of the message",
    ErrorCode.WRONG_STATE: "the pen cannot do that in its current state",
    ErrorCode.NOT_ARMED: "the pen is not armed: issue a session permit first",
    ErrorCode.ALREADY_RUNNING: "a session is already running",
    ErrorCode.LOCKED: "the pen is locked",
    ErrorCode.NOT_AUTHORIZED: "this host is not authorised for that request",
    ErrorCode.KEY_ALREADY_SET: "the pen already has a permit key (reset the pen to set a new one)",
    ErrorCode.PERMIT_BAD_TAG: "the session permit's signature is wrong (wrong key?)",
    ErrorCode.PERMIT_REPLAYED: "this session permit was already used",
    ErrorCode.PERMIT_EXPIRED: "the session permit has expired: issue a new one",
    ErrorCode.PERMIT_CLOCK_UNSET: "the pen's clock is not set: set the time, then arm again",
    ErrorCode.PERMIT_OVER_LIMIT: "the session permit exceeds the pen's hard limits",
    ErrorCode.PERMIT_NO_KEY: "the pen has no permit key yet: pair and set the key first",
    ErrorCode.PERMIT_NOT_YET_VALID: "the session permit is not valid yet (check the clocks)",
    ErrorCode.PERMIT_NO_PATIENT: "this clinic pen needs a permit that names the patient "
                                 "(update the toolkit)",
    ErrorCode.PERMIT_OTHER_PATIENT: "the paused session belongs to another patient",
    ErrorCode.DEPTH_OFF_GRID: "that depth is not on the pen's depth grid",
    ErrorCode.DEPTH_ABOVE_CEILING: "that depth is above the pen's ceiling",
    ErrorCode.DEPTH_ABOVE_PERMIT: "that depth is above what the session permit allows",
    ErrorCode.DEPTH_VERIFY_FAILED: "the needle depth could not be verified",
    ErrorCode.NOT_HOMED: "the depth mechanism is not homed yet",
    ErrorCode.SPEED_OUT_OF_RANGE: "that speed level is out of range",
    ErrorCode.CHARGING: "the pen is charging: unplug it before a session",
    ErrorCode.BATTERY_LOW: "the battery is too low for a session: charge the pen",
    ErrorCode.BATTERY_UNKNOWN: "the pen cannot read its battery gauge: the charge is unknown; "
    "have the pen serviced",
    ErrorCode.NO_CONTACT: "no skin contact",
    ErrorCode.NO_CARTRIDGE: "no needle cartridge: insert a new one",
    ErrorCode.CARTRIDGE_USED: "this cartridge was already used: insert a new one",
    ErrorCode.CARTRIDGE_WORN: "this cartridge is worn out: insert a new one",
    ErrorCode.CARTRIDGE_EXPIRED: "this cartridge has expired: insert a new one",
    ErrorCode.CARTRIDGE_REINSERTED: "this cartridge was removed and reinserted: insert a new one",
    ErrorCode.INTERVAL_LOCKOUT: "too soon after the last session",
    ErrorCode.PATIENTS_FULL: "the pen's patient table is full of intervals still in force: "
                             "use another pen",
    ErrorCode.SESSION_CAP: "the session time limit was reached",
    ErrorCode.CARTRIDGE_INVALID: "the cartridge could not be read",
    ErrorCode.CARTRIDGE_UNAUTHENTIC: "the cartridge failed its authenticity check (a copy or a "
    "rewritten chip): insert a genuine new one",
    ErrorCode.CARTRIDGE_UNDATED: "the cartridge has no manufacture date: insert a new one",
    ErrorCode.FAULT_STALL: "fault: the motor stalled",
    ErrorCode.FAULT_OVERCURRENT: "fault: motor overcurrent",
    ErrorCode.FAULT_OVERTEMP: "fault: the pen is too hot; let it cool down",
    ErrorCode.FAULT_RATE_DRIFT: "fault: the stroke rate drifted out of tolerance",
    ErrorCode.FAULT_DEPTH: "fault: needle depth out of tolerance",
    ErrorCode.FAULT_HOMING: "fault: the depth mechanism could not find home",
    ErrorCode.FAULT_WATCHDOG: "fault: the pen's watchdog reset it",
    ErrorCode.FAULT_LINK_LOST: "fault: the link to the host was lost during a session",
    ErrorCode.FAULT_BROWNOUT: "fault: supply voltage dropped",
    ErrorCode.FAULT_STROKE_MISMATCH: "fault: the stroke sensor and the motor disagree "
    "(the stroke count cannot be trusted); have the pen serviced",
    ErrorCode.FAULT_DUTY_SATURATED: "fault: the motor is at full power and cannot hold the "
    "stroke rate; check the cartridge, then the pen",
    ErrorCode.FAULT_GAUGE: "fault: the battery gauge stopped answering; the session stopped",
    ErrorCode.FAULT_DEPTH_DISAGREE: "fault: the depth sensor disagrees with the depth motor; "
    "have the pen serviced",
    ErrorCode.FAULT_CHARGING: "fault: charging started during a session",
    ErrorCode.FAULT_CARTRIDGE_PULLED: "fault: the cartridge was removed during a session",
    ErrorCode.LOG_CORRUPT: "the pen's log is damaged",
    ErrorCode.STORAGE_FULL: "the pen's storage is full",
    ErrorCode.LOG_UNSYNCED: "the pen's log is full of records this computer has not read: "
    "run `scalppen logs sync`, then start again",
}


def format_time(unix: int) -> str:
    """A Unix time as local date and time (``YYYY-MM-DD HH:MM``)."""
    return dt.datetime.fromtimestamp(unix).astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


def describe(code: ErrorCode | int, detail: int = 0) -> str:
    """One line for ``code``, with what ``detail`` means where known.

    Args:
        code: an ``ErrorCode`` (or an int this host may not know).
        detail: the NACK's detail word (for INTERVAL_LOCKOUT: when it lifts; for
            CARTRIDGE_WORN: the minutes of needling the cartridge has left).
    """
    try:
        known = ErrorCode(int(code))
    except ValueError:
        text = f"the pen refused with unknown code 0x{int(code):02x}"
        return f"{text} (detail {detail})" if detail else text
    text = MESSAGES.get(known, known.name.lower().replace("_", " "))
    if known == ErrorCode.INTERVAL_LOCKOUT and detail:
        return f"{text}: the next session is allowed from {format_time(detail)}"
    if known == ErrorCode.PATIENTS_FULL and detail:
        return f"{text}; the first place frees at {format_time(detail)}"
    if known == ErrorCode.CARTRIDGE_WORN and detail:
        return (f"the cartridge has {detail} min of needling left at the top stroke rate, "
                "less than the permitted time: insert a new one or choose a shorter session")
    if detail:
        return f"{text} (detail {detail})"
    return text
