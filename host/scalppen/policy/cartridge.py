"""Rule 14 on the host: the cartridge's remaining wear budget against the permit.

The pen makes the same check at START (firmware ``pen/safety.py``); the host makes
it before arming so that a cartridge too worn for the permitted time is refused
with the minutes it has left, and no permit is spent on it.
"""

from __future__ import annotations

from scalppen.policy.outcome import Refusal

CARTRIDGE_RULE = 14


def strokes_needed(duration_s: int, rate_max_sps: int) -> int:
    """Strokes ``duration_s`` of needling can take at the top of the stroke window."""
    return max(0, duration_s) * max(0, rate_max_sps)


def minutes_left(strokes_left: int, rate_max_sps: int) -> int:
    """Whole minutes of needling ``strokes_left`` covers at the top of the window."""
    if strokes_left <= 0 or rate_max_sps <= 0:
        return 0
    return strokes_left // (rate_max_sps * 60)


def cartridge_refusal(
    strokes_used: int, strokes_rated: int, duration_s: int, rate_max_sps: int
) -> Refusal | None:
    """A rule-14 refusal when the budget left cannot cover ``duration_s``, else None."""
    left = max(0, strokes_rated - strokes_used)
    if left >= strokes_needed(duration_s, rate_max_sps):
        return None
    mins = minutes_left(left, rate_max_sps)
    return Refusal(
        CARTRIDGE_RULE,
        f"the cartridge has {left:,} of {strokes_rated:,} strokes left: {mins} min at "
        f"{rate_max_sps} strokes/s, {duration_s // 60} min permitted; insert a new "
        "cartridge or choose a shorter session",
    )
