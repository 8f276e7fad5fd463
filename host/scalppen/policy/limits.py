"""Requested depth and duration against the grid and hard limits (rules 1, 2 and 5).

The pen enforces its hard limits itself; the host checks them too so the user hears
about a bad request before arming.
"""

from __future__ import annotations

import math
from typing import Final

from scalppen.policy.history import PenLimits, SessionRequest
from scalppen.policy.outcome import PolicyWarning, Refusal, RuleResult
from scalppen.policy.rules import (
    DEPTH_GRID_UM,
    MIN_DEPTH_UM,
    PolicyConfig,
    format_depth,
)

CEILING_RULE: Final = 1
GRID_RULE: Final = 2
LENGTH_RULE: Final = 5


def depth_ceiling_um(limits: PenLimits, config: PolicyConfig) -> int:
    """The deepest any session may go: the lower of the pen's and the policy's ceilings."""
    return min(limits.ceiling_um, config.max_depth_um)


def depth_grid_um(limits: PenLimits) -> int:
    """The grid on which both the pen's grid and the 0.25 mm grid hold (their lcm)."""
    return math.lcm(max(limits.grid_um, 1), DEPTH_GRID_UM)


def check_depth(request: SessionRequest, limits: PenLimits, config: PolicyConfig) -> RuleResult:
    """Refuse a requested depth off the grid, too shallow or above a ceiling."""
    result = RuleResult()
    depth = request.depth_um
    if depth is None:
        return result
    grid = depth_grid_um(limits)
    lowest = max(MIN_DEPTH_UM, limits.min_depth_um)
    ceiling = depth_ceiling_um(limits, config)
    if depth < lowest or depth % grid:
        result.refusals.append(
            Refusal(
                rule=GRID_RULE,
                reason=(
                    f"{format_depth(depth)} is not a depth setting: choose a multiple of "
                    f"{format_depth(grid)} from {format_depth(lowest)}."
                ),
            )
        )
    if depth > ceiling:
        result.refusals.append(
            Refusal(
                rule=CEILING_RULE,
                reason=(f"{format_depth(depth)} is above the ceiling of {format_depth(ceiling)}."),
            )
        )
    return result


def check_duration(
    request: SessionRequest, limits: PenLimits, config: PolicyConfig
) -> tuple[RuleResult, int, int]:
    """Rule 5: the permit's duration never exceeds the cap; the timer warns at 10 min.

    Returns:
        The rule result, the permitted max duration (s) and the warning time (s).
    """
    result = RuleResult()
    cap = min(config.session_cap_s, limits.session_cap_s)
    wanted = request.duration_s
    if wanted is not None and not 0 < wanted <= cap:
        result.refusals.append(
            Refusal(
                rule=LENGTH_RULE,
                reason=(
                    f"A session lasts at most {cap // 60} min {cap % 60:02d} s of needling: "
                    f"ask for up to {cap} s."
                    if wanted > 0
                    else "A session needs a positive duration."
                ),
            )
        )
    max_s = cap if wanted is None or wanted > cap or wanted <= 0 else wanted
    warn_s = min(config.session_warn_s, limits.session_warn_s, max_s)
    result.warnings.append(
        PolicyWarning(
            rule=LENGTH_RULE,
            message=(
                f"The timer warns at {warn_s // 60} min and the pen stops at "
                f"{max_s // 60} min {max_s % 60:02d} s."
            ),
        )
    )
    return result, max_s, warn_s
