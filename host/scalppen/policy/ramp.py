"""Rule 4: the beginner ramp.

The first sessions go no deeper than 0.5 mm. After a tolerated session the next may
be at most 0.25 mm deeper than it; after a session not tolerated (or not recorded as
tolerated, or followed by an adverse event) the depth may not rise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from scalppen.policy.history import PatientHistory, SessionSummary
from scalppen.policy.outcome import Refusal, RuleResult
from scalppen.policy.rules import DEPTH_GRID_UM, MIN_DEPTH_UM, PolicyConfig, format_depth

RULE: Final = 4
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _order(s: SessionSummary) -> tuple[datetime, int]:
    return (s.finished_at or _EPOCH, s.session_id or 0)


def last_session(history: PatientHistory) -> SessionSummary | None:
    """The most recent session, the pen's own report included if it is newer."""
    last = max(history.sessions, key=_order, default=None)
    if history.pen_last_session is not None:
        end, depth = history.pen_last_session
        known = last.finished_at if last is not None else None
        if end.timestamp() > 0 and (known is None or (end - known).total_seconds() > 60):
            return SessionSummary(depth_um=depth, started_at=None, ended_at=end)
    return last


def was_tolerated(session: SessionSummary, history: PatientHistory) -> bool:
    """True only if recorded as tolerated and no adverse event names the session."""
    if session.tolerated is not True:
        return False
    return not any(
        ev.session_id is not None and ev.session_id == session.session_id
        for ev in history.adverse_events
    )


def ramp_limit_um(history: PatientHistory, config: PolicyConfig) -> int:
    """The deepest the next session may go under rule 4 (on the 0.25 mm grid)."""
    last = last_session(history)
    if last is None:
        limit = config.beginner_depth_um
    elif was_tolerated(last, history):
        limit = max(config.beginner_depth_um, last.depth_um + config.ramp_step_um)
    else:
        limit = last.depth_um
    limit = min(limit, config.max_depth_um)
    return max(MIN_DEPTH_UM, limit - limit % DEPTH_GRID_UM)


def check_ramp(
    history: PatientHistory, requested_um: int | None, config: PolicyConfig
) -> tuple[RuleResult, int]:
    """Refuse a requested depth above the ramp; return the ramp limit too."""
    result = RuleResult()
    limit = ramp_limit_um(history, config)
    if requested_um is None or requested_um <= limit:
        return result, limit
    last = last_session(history)
    if last is None:
        why = f"First sessions go no deeper than {format_depth(limit)}."
    elif was_tolerated(last, history):
        why = (
            f"The depth rises by at most {format_depth(config.ramp_step_um)} per session: your "
            f"last session was at {format_depth(last.depth_um)}."
        )
    else:
        why = (
            f"Your last session ({format_depth(last.depth_um)}) is not recorded as tolerated, "
            "so the depth may not rise. Record how it went to raise it next time."
        )
    result.refusals.append(
        Refusal(
            rule=RULE,
            reason=f"{why} Choose {format_depth(limit)} or less.",
        )
    )
    return result, limit
