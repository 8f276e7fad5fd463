"""Rule 6 (interval between sessions) and rule 7 (topical hold after needling).

Rule 6: after a session at >= 1.0 mm wait 7 days, at 0.5 mm up to 1.0 mm 72 h, below
0.5 mm 24 h, counted from the session's end. Every recent session is checked, not only
the last one, and the pen's own report of its last session counts too (the pen
enforces the rule as well).

Rule 7: after a session deeper than 0.5 mm, no minoxidil for 24 h.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Final

from scalppen.policy.history import PatientHistory
from scalppen.policy.outcome import PolicyWarning, Refusal, RuleResult
from scalppen.policy.rules import (
    DEEP_BAND_UM,
    MID_BAND_UM,
    PolicyConfig,
    format_depth,
    format_duration,
)

INTERVAL_RULE: Final = 6
TOPICAL_RULE: Final = 7


def format_time(moment: datetime, like: datetime) -> str:
    """``moment`` in the timezone of ``like`` (usually ``now``), to the minute."""
    local = moment.astimezone(like.tzinfo)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()


def required_interval(depth_um: int, config: PolicyConfig) -> timedelta:
    """The wait after a session at ``depth_um`` (rule 6)."""
    if depth_um >= DEEP_BAND_UM:
        return config.interval_deep
    if depth_um >= MID_BAND_UM:
        return config.interval_mid
    return config.interval_shallow


def session_ends(history: PatientHistory, config: PolicyConfig) -> Iterator[tuple[datetime, int]]:
    """(end, depth) of every session with a known time, the pen's report included.

    A session with a start but no end is taken to have run the full session cap.
    """
    for s in history.sessions:
        if s.ended_at is not None:
            yield s.ended_at, s.depth_um
        elif s.started_at is not None:
            yield s.started_at + timedelta(seconds=config.session_cap_s), s.depth_um
    if history.pen_last_session is not None:
        end, depth = history.pen_last_session
        if end.timestamp() > 0:
            yield end, depth
    for pending in history.pending_permits:
        yield pending.ends_by, pending.depth_um


def interval_lifts_at(
    history: PatientHistory, config: PolicyConfig
) -> tuple[datetime, datetime, int] | None:
    """The latest (lift time, session end, depth) over all sessions; None if no session."""
    best: tuple[datetime, datetime, int] | None = None
    for end, depth in session_ends(history, config):
        lift = end + required_interval(depth, config)
        if best is None or lift > best[0]:
            best = (lift, end, depth)
    return best


def check_interval(history: PatientHistory, now: datetime, config: PolicyConfig) -> RuleResult:
    """Refuse until the wait after every past session is over."""
    result = RuleResult()
    found = interval_lifts_at(history, config)
    if found is not None and found[0] > now:
        lift, end, depth = found
        wait = format_duration(required_interval(depth, config))
        pending = next((p for p in history.pending_permits if p.ends_by == end), None)
        what = (
            f"A session at {format_depth(depth)} was permitted "
            f"{format_time(pending.issued_at, now)} on pen {pending.pen_serial} and is not in "
            "this database yet (it counts until the pen's log is synced); it"
            if pending is not None
            else f"The session at {format_depth(depth)} that ended {format_time(end, now)}"
        )
        result.refusals.append(
            Refusal(
                rule=INTERVAL_RULE,
                reason=(
                    f"{what} needs {wait} of healing before the next one: next session from "
                    f"{format_time(lift, now)}."
                ),
                lifts_at=lift,
            )
        )
    if history.pen_lock_left_s > 0 and not result.refusals:
        lift = now + timedelta(seconds=history.pen_lock_left_s)
        result.refusals.append(
            Refusal(
                rule=INTERVAL_RULE,
                reason=(
                    f"The pen counts {format_duration(timedelta(seconds=history.pen_lock_left_s))}"
                    " more of the wait after its last session (on its own running time, which"
                    " no clock change shortens): next session from about "
                    f"{format_time(lift, now)}."
                ),
                lifts_at=lift,
            )
        )
    if any(s.finished_at is None for s in history.sessions):
        result.warnings.append(
            PolicyWarning(
                rule=INTERVAL_RULE,
                message=(
                    "Some sessions have no time (the pen's clock was not set): their "
                    "interval cannot be checked by the host; the pen still checks it."
                ),
            )
        )
    return result


def topical_hold_until(
    history: PatientHistory, now: datetime, config: PolicyConfig
) -> datetime | None:
    """When the minoxidil hold lifts (rule 7), or None if no hold applies at ``now``."""
    lifts = [
        end + config.topical_hold
        for end, depth in session_ends(history, config)
        if depth > config.topical_threshold_um and end <= now
    ]
    latest = max(lifts, default=None)
    return latest if latest is not None and latest > now else None


def check_topical(
    history: PatientHistory, now: datetime, config: PolicyConfig, planned_depth_um: int
) -> tuple[RuleResult, datetime | None]:
    """Rule 7 information: the hold in force now, and the one the planned session starts."""
    result = RuleResult()
    until = topical_hold_until(history, now, config)
    hold = format_duration(config.topical_hold)
    threshold = format_depth(config.topical_threshold_um)
    if until is not None:
        result.warnings.append(
            PolicyWarning(
                rule=TOPICAL_RULE,
                message=f"No minoxidil until {format_time(until, now)}.",
                at=until,
            )
        )
    if planned_depth_um > config.topical_threshold_um:
        result.warnings.append(
            PolicyWarning(
                rule=TOPICAL_RULE,
                message=(
                    f"After a session deeper than {threshold}, wait {hold} before applying "
                    "minoxidil (it is absorbed through the needled skin)."
                ),
            )
        )
    return result, until
