"""Rule 18: oozing, extreme heat or pus lock every session until a clinician clears it.

Redness and bruising are logged and shown, and do not lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from scalppen.policy.history import LOCKING_ADVERSE_KINDS, PatientHistory
from scalppen.policy.outcome import Lock, PolicyWarning, RuleResult

RULE: Final = 18
#: Logged (non-locking) events younger than this are shown as warnings.
RECENT: Final = timedelta(days=7)

_WORDS: Final = {
    "oozing": "oozing",
    "extreme_heat": "extreme heat",
    "pus": "pus",
    "redness": "redness",
    "bruising": "bruising",
    "other": "an adverse event",
}


def adverse_lock_id(event_id: int) -> str:
    """The lock id a locking adverse event sets."""
    return f"{RULE}:adverse:{event_id}"


def adverse_locks(history: PatientHistory, now: datetime) -> list[Lock]:
    """A lock for every oozing, extreme-heat or pus report made up to ``now``."""
    locks = []
    for ev in history.adverse_events:
        if ev.kind in LOCKING_ADVERSE_KINDS and ev.at <= now:
            locks.append(
                Lock(
                    lock_id=adverse_lock_id(ev.event_id),
                    rule=RULE,
                    reason=(
                        f"{_WORDS[ev.kind].capitalize()} was reported on {ev.at:%Y-%m-%d}: "
                        "seek medical attention. Sessions stay locked until a clinician "
                        "clears it."
                    ),
                    since=ev.at,
                )
            )
    return locks


def check_logged_events(history: PatientHistory, now: datetime) -> RuleResult:
    """Warn about recent redness, bruising or other non-locking reports."""
    result = RuleResult()
    for ev in sorted(history.adverse_events, key=lambda e: e.at):
        if ev.kind not in LOCKING_ADVERSE_KINDS and now - RECENT <= ev.at <= now:
            result.warnings.append(
                PolicyWarning(
                    rule=RULE,
                    message=(
                        f"{_WORDS[ev.kind].capitalize()} reported on {ev.at:%Y-%m-%d} is logged."
                        " If it gets worse, or oozing, heat or pus appear, stop and report it."
                    ),
                    at=ev.at,
                )
            )
    return result
