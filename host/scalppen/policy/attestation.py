"""Rule 19: the user confirms the cartridge area was sterilised before arming."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from scalppen.policy.history import PatientHistory
from scalppen.policy.outcome import Refusal, RuleResult
from scalppen.policy.rules import PolicyConfig, format_duration

RULE: Final = 19
STATEMENT: Final = (
    "I cleaned the cartridge area of the pen with 70 % isopropyl alcohol before this session."
)


def check_attestation(history: PatientHistory, now: datetime, config: PolicyConfig) -> RuleResult:
    """Refuse unless a fresh attestation was recorded after the last session."""
    result = RuleResult()
    att = history.attestation
    ends = [s.finished_at for s in history.sessions if s.finished_at is not None]
    last_end = max(ends) if ends else None
    if att is None or att.at > now:
        reason = "Confirm that you cleaned the cartridge area with 70 % isopropyl alcohol."
    elif now - att.at > config.attestation_valid:
        reason = (
            "The cleaning confirmation is older than "
            f"{format_duration(config.attestation_valid)}: clean with 70 % isopropyl alcohol "
            "and confirm again."
        )
    elif last_end is not None and att.at < last_end:
        reason = (
            "The cleaning confirmation belongs to the previous session: clean with 70 % "
            "isopropyl alcohol and confirm again."
        )
    else:
        return result
    result.refusals.append(Refusal(rule=RULE, reason=reason))
    return result
