"""What holds a patient's next session back, as ``scalppen lockouts`` and the report
show it: the host's locks, the waits between sessions (rule 6, on the pen's clock
too), the minoxidil hold and the handpiece's service, from one policy evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from scalppen.policy import evaluate
from scalppen.store import Profile, Store, load_history, pen_limits

#: Refusals that are not lockouts (rule 19, the cleaning attestation, is per session).
NOT_LOCKOUTS: Final = frozenset({19})
#: What lifts a refusal that is neither a lock nor a wait.
ACTION: Final = {17: "after a new screening (scalppen screen)"}


@dataclass(frozen=True)
class Hold:
    """One thing that holds sessions back: whose, which rule, why, when it lifts."""

    who: str
    rule: int
    reason: str
    since: datetime | None
    lifts: str
    lock_id: str
    lifts_at: datetime | None = None  # a wait's end (None: a lock, or an action)


def when(moment: datetime | None, now: datetime) -> str:
    """A time in ``now``'s time zone, to the minute."""
    if moment is None:
        return ""
    local = moment.astimezone(now.tzinfo)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()


def holds_for(db: Store, prof: Profile, serial: str | None, now: datetime) -> list[Hold]:
    """What holds ``prof``'s next session (on ``serial``, if given) back at ``now``."""
    history = load_history(db, prof.id, pen_serial=serial)
    limits = pen_limits(db, serial) if serial else None
    decision = evaluate(history, now=now, pen_limits=limits)
    rows = [
        Hold(prof.name, k.rule, k.reason, k.since, "when a clinician clears it", k.lock_id)
        for k in decision.active_locks
    ]
    for r in decision.refusals:
        if r.lock_id is not None or r.rule in NOT_LOCKOUTS:
            continue
        lifts = when(r.lifts_at, now) if r.lifts_at else ACTION.get(r.rule, "see why")
        rows.append(Hold(prof.name, r.rule, r.reason, None, lifts, "", r.lifts_at))
    for w in decision.warnings:
        if w.rule == 7 and w.at is not None:
            rows.append(Hold(prof.name, 7, w.message, None, when(w.at, now), ""))
        elif w.rule == 16 and w.at is not None:
            rows.append(Hold(prof.name, 16, w.message, None, f"locks {when(w.at, now)}", ""))
    return rows
