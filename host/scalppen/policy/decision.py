"""The decision: every HOST and BOTH rule applied to one request at one moment.

A session is allowed only if no rule refuses it. The decision says which rules
refused, why in plain words, when each refusal lifts, and what the permit may allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scalppen.policy import adverse, attestation, interval, limits, ramp, screening, service
from scalppen.policy.clearance import apply_clearances
from scalppen.policy.history import PatientHistory, PenLimits, SessionRequest, require_aware
from scalppen.policy.outcome import Lock, PolicyWarning, Refusal, RuleResult
from scalppen.policy.rules import MIN_DEPTH_UM, PolicyConfig


@dataclass(frozen=True)
class Decision:
    """The policy's answer to one request.

    Attributes:
        allowed: True only if no rule refuses; a permit may be issued.
        refusals: why not, sorted by rule number (empty when allowed).
        warnings: what the user should know (service reminder, topical hold, timer).
        max_depth_um: the permit's depth when allowed, else 0.
        max_duration_s: the permit's needling time when allowed, else 0.
        warn_after_s: when the live timer warns (rule 5).
        ramp_limit_um: the deepest the beginner ramp allows now (rule 4).
        topical_hold_until: when the current minoxidil hold lifts, or None (rule 7).
        locks: every HOST lock found, cleared ones included (see ``Lock.cleared``).
        evaluated_at: the moment the decision was made.
    """

    allowed: bool
    refusals: tuple[Refusal, ...]
    warnings: tuple[PolicyWarning, ...]
    max_depth_um: int
    max_duration_s: int
    warn_after_s: int
    ramp_limit_um: int
    topical_hold_until: datetime | None
    locks: tuple[Lock, ...]
    evaluated_at: datetime

    @property
    def next_possible_at(self) -> datetime | None:
        """When every refusal has lifted by itself; None if one needs an action."""
        if not self.refusals or any(r.lifts_at is None for r in self.refusals):
            return None
        return max(r.lifts_at for r in self.refusals if r.lifts_at is not None)

    @property
    def active_locks(self) -> tuple[Lock, ...]:
        """The locks that still hold."""
        return tuple(lock for lock in self.locks if not lock.cleared)


def find_locks(
    history: PatientHistory, now: datetime, config: PolicyConfig | None = None
) -> list[Lock]:
    """Every HOST lock (rules 16, 17, 18) with its clearance state (rule 22).

    Args:
        history: the patient's history.
        now: the current time (timezone-aware).
        config: the policy numbers.

    Returns:
        The locks, oldest first; ``cleared`` tells which a clinician lifted.
    """
    config = config or PolicyConfig()
    require_aware(now)
    found = screening.screening_locks(history, now) + adverse.adverse_locks(history, now)
    found += service.check_service(history.handpiece, now, config).locks
    return sorted(apply_clearances(found, history.clearances, now), key=lambda k: k.since)


def evaluate(
    history: PatientHistory,
    request: SessionRequest | None = None,
    *,
    now: datetime,
    pen_limits: PenLimits | None = None,
    config: PolicyConfig | None = None,
) -> Decision:
    """Apply every HOST and BOTH rule to a session request.

    Args:
        history: the patient's history, assembled by the caller.
        request: depth and duration wanted (None: the most the policy permits).
        now: the current time (timezone-aware).
        pen_limits: the hard limits the pen reported (defaults: the home model's).
        config: the policy numbers (defaults from ``SAFETY_RULES.md``).

    Returns:
        The decision.

    Raises:
        ValueError: ``now`` is naive.
    """
    require_aware(now)
    request = request or SessionRequest()
    pen_limits = pen_limits or PenLimits()
    config = config or PolicyConfig()

    parts: list[RuleResult] = []
    parts.append(limits.check_depth(request, pen_limits, config))
    ramp_result, ramp_um = ramp.check_ramp(history, request.depth_um, config)
    parts.append(ramp_result)
    length_result, max_s, warn_s = limits.check_duration(request, pen_limits, config)
    parts.append(length_result)
    parts.append(interval.check_interval(history, now, config))
    parts.append(screening.check_screening_due(history, now, config))
    parts.append(adverse.check_logged_events(history, now))
    service_result = service.check_service(history.handpiece, now, config)
    service_result.locks.clear()  # the lock itself comes from find_locks
    parts.append(service_result)
    parts.append(attestation.check_attestation(history, now, config))

    ceiling = limits.depth_ceiling_um(pen_limits, config)
    grid = limits.depth_grid_um(pen_limits)
    cap = min(ramp_um, ceiling)
    depth = request.depth_um if request.depth_um is not None else cap - cap % grid
    topical_result, hold_until = interval.check_topical(history, now, config, depth)
    parts.append(topical_result)

    if depth < MIN_DEPTH_UM:
        parts.append(
            RuleResult(
                refusals=[
                    Refusal(
                        rule=limits.CEILING_RULE,
                        reason=(
                            "The pen reports a depth ceiling below the shallowest setting: "
                            "check the pen's configuration."
                        ),
                    )
                ]
            )
        )

    locks = find_locks(history, now, config)
    refusals = [r for p in parts for r in p.refusals]
    refusals += [lock.as_refusal() for lock in locks if not lock.cleared]
    refusals.sort(key=lambda r: r.rule)
    warnings = sorted((w for p in parts for w in p.warnings), key=lambda w: w.rule)
    allowed = not refusals
    return Decision(
        allowed=allowed,
        refusals=tuple(refusals),
        warnings=tuple(warnings),
        max_depth_um=depth if allowed else 0,
        max_duration_s=max_s if allowed else 0,
        warn_after_s=warn_s,
        ramp_limit_um=ramp_um,
        topical_hold_until=hold_until,
        locks=tuple(locks),
        evaluated_at=now,
    )
