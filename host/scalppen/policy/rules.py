"""The numbers of the host's safety rules (``SAFETY_RULES.md``) and their configuration.

Numbers are defaults. A clinician profile may tighten them (:class:`PolicyConfig`
refuses any value that loosens a default); the firmware's hard limits are never
loosened by anything the host does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Final

#: Rule number -> short title, for messages and reports.
RULE_TITLES: Final[dict[int, str]] = {
    1: "Absolute depth ceiling",
    2: "Depth setting grid",
    4: "Beginner ramp",
    5: "Session length",
    6: "Interval between sessions",
    7: "Topical hold after needling",
    16: "Device service life",
    17: "Contraindication screening",
    18: "Adverse-event lockout",
    19: "Sterilisation attestation",
    22: "Clinician override",
}

#: HOST locks a clinician may clear (rule 22).
CLINICIAN_CLEARABLE_RULES: Final = frozenset({16, 17, 18})
#: Rules the firmware enforces (FW or BOTH): no clearance can override them.
FIRMWARE_RULES: Final = frozenset({1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21})

#: Rule 2: depth settings are multiples of 0.25 mm, from 0.25 mm.
DEPTH_GRID_UM: Final = 250
MIN_DEPTH_UM: Final = 250
#: Rule 1: the home model's product ceiling (the pen reports its own, possibly lower).
PRODUCT_CEILING_UM: Final = 1500

#: Rule 6 depth bands (the lower bound of each band is inclusive).
DEEP_BAND_UM: Final = 1000
MID_BAND_UM: Final = 500

#: The role allowed to clear HOST locks (rule 22).
CLINICIAN_ROLE: Final = "clinician"


@dataclass(frozen=True)
class PolicyConfig:
    """The policy's numbers. Every field may only be tightened from its default.

    Attributes:
        max_depth_um: highest depth the host permits (rule 1, product ceiling).
        beginner_depth_um: deepest first session (rule 4).
        ramp_step_um: largest raise per session after a tolerated one (rule 4).
        session_warn_s: live-timer warning (rule 5).
        session_cap_s: hard stop; the permit's max duration never exceeds it (rule 5).
        interval_deep: wait after a session >= 1.0 mm (rule 6).
        interval_mid: wait after a session of 0.5 mm up to 1.0 mm (rule 6).
        interval_shallow: wait after a session < 0.5 mm (rule 6).
        topical_threshold_um: sessions deeper than this start a topical hold (rule 7).
        topical_hold: no minoxidil for this long after such a session (rule 7).
        service_remind: remind this long after the handpiece's first session (rule 16).
        service_lock: lock this long after it unless serviced (rule 16).
        screening_valid: a screening is valid this long (rule 17).
        attestation_valid: a sterilisation attestation is valid this long (rule 19).
    """

    max_depth_um: int = PRODUCT_CEILING_UM
    beginner_depth_um: int = 500
    ramp_step_um: int = 250
    session_warn_s: int = 600
    session_cap_s: int = 900
    interval_deep: timedelta = timedelta(days=7)
    interval_mid: timedelta = timedelta(hours=72)
    interval_shallow: timedelta = timedelta(hours=24)
    topical_threshold_um: int = 500
    topical_hold: timedelta = timedelta(hours=24)
    service_remind: timedelta = timedelta(days=60)
    service_lock: timedelta = timedelta(days=90)
    screening_valid: timedelta = timedelta(days=30)
    attestation_valid: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        """Refuse any value that loosens a default.

        Raises:
            ValueError: a field is looser than its default or inconsistent.
        """
        defaults = {f.name: f.default for f in fields(self)}
        for name, default in defaults.items():
            value = getattr(self, name)
            if name in _AT_LEAST and value < default:
                raise ValueError(f"{name} may only be tightened (at least {default})")
            if name not in _AT_LEAST and value > default:
                raise ValueError(f"{name} may only be tightened (at most {default})")
        if self.beginner_depth_um < MIN_DEPTH_UM or self.beginner_depth_um % DEPTH_GRID_UM:
            raise ValueError("beginner_depth_um must be on the 0.25 mm grid")
        if self.ramp_step_um < 0 or self.ramp_step_um % DEPTH_GRID_UM:
            raise ValueError("ramp_step_um must be a non-negative multiple of 0.25 mm")
        if self.max_depth_um < MIN_DEPTH_UM:
            raise ValueError("max_depth_um must be at least 0.25 mm")
        if not 0 < self.session_warn_s <= self.session_cap_s:
            raise ValueError("session_warn_s must be positive and not after session_cap_s")
        if self.service_remind > self.service_lock:
            raise ValueError("service_remind must not come after service_lock")


#: Fields where a larger value is the tighter one (waits); all others tighten downwards.
_AT_LEAST: Final = frozenset({"interval_deep", "interval_mid", "interval_shallow", "topical_hold"})


def format_depth(depth_um: int) -> str:
    """Depth in micrometres as a user reads it, e.g. ``0.75 mm``."""
    return f"{depth_um / 1000:.2f} mm"


def format_duration(delta: timedelta) -> str:
    """A duration in plain words: ``7 days``, ``72 h``, ``30 min``."""
    seconds = int(delta.total_seconds())
    if seconds >= 3600 and seconds % 3600 == 0 and seconds <= 72 * 3600:
        return f"{seconds // 3600} h"
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(seconds // 60, 0)} min"
