"""Rule 17: contraindication screening before the first session and every 30 days.

Any yes locks sessions until a clinician clears that screening's lock (rule 22). A
later screening answered all no does not lift an earlier positive one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from scalppen.policy.errors import ScreeningError
from scalppen.policy.history import PatientHistory, ScreeningRecord, require_aware
from scalppen.policy.outcome import Lock, Refusal, RuleResult
from scalppen.policy.rules import PolicyConfig, format_duration

RULE: Final = 17
#: The youngest age microneedling is authorised for.
MIN_AGE: Final = 22

#: Contraindication key -> the question a user answers (yes = contraindicated).
CONTRAINDICATIONS: Final[dict[str, str]] = {
    "active_acne": "Do you have active acne on your scalp?",
    "scalp_infection": "Do you have a scalp infection (for example folliculitis or a fungal "
    "infection)?",
    "psoriasis_eczema": "Do you have psoriasis or eczema on your scalp?",
    "keloids_poor_healing": "Do you form keloid scars, or do your wounds heal poorly?",
    "alopecia_areata": "Have you been diagnosed with alopecia areata?",
    "anticoagulants": "Do you take anticoagulants (blood thinners)?",
    "isotretinoin": "Do you take isotretinoin (for example Accutane), or did you in the past "
    "6 months?",
    "pregnancy": "Are you pregnant, or could you be?",
    "under_22": "Are you younger than 22?",
}

#: Contraindication key -> plain words used in refusals.
LABELS: Final[dict[str, str]] = {
    "active_acne": "active acne",
    "scalp_infection": "scalp infection",
    "psoriasis_eczema": "psoriasis or eczema on the scalp",
    "keloids_poor_healing": "keloids or poor wound healing",
    "alopecia_areata": "alopecia areata",
    "anticoagulants": "anticoagulants",
    "isotretinoin": "isotretinoin",
    "pregnancy": "pregnancy",
    "under_22": "age under 22",
}


@dataclass(frozen=True)
class ScreeningOutcome:
    """The result of one screening.

    Attributes:
        answers: every question's answer, by key.
        positives: the keys answered yes (or implied by the birth year), in order.
    """

    answers: dict[str, bool]
    positives: tuple[str, ...]

    @property
    def clear(self) -> bool:
        """True if nothing was answered yes."""
        return not self.positives


def evaluate_screening(
    answers: Mapping[str, bool], *, birth_year: int | None, now: datetime
) -> ScreeningOutcome:
    """Check a screening's answers.

    Args:
        answers: an answer (bool) for every key of :data:`CONTRAINDICATIONS`.
        birth_year: the profile's birth year; if it proves the user is under 22, that
            counts as yes whatever was answered.
        now: when the screening is made.

    Returns:
        The outcome, with the positive keys.

    Raises:
        ScreeningError: a question is unanswered, unknown, or not a yes/no.
    """
    require_aware(now)
    unknown = sorted(set(answers) - set(CONTRAINDICATIONS))
    if unknown:
        raise ScreeningError(f"unknown screening questions: {', '.join(unknown)}")
    missing = [k for k in CONTRAINDICATIONS if k not in answers]
    if missing:
        raise ScreeningError(f"every question needs an answer; missing: {', '.join(missing)}")
    for key, value in answers.items():
        if not isinstance(value, bool):
            raise ScreeningError(f"answer to {key!r} must be yes or no")
    clean = {k: answers[k] for k in CONTRAINDICATIONS}
    if birth_year is not None and now.year - birth_year < MIN_AGE:
        clean["under_22"] = True
    positives = tuple(k for k, yes in clean.items() if yes)
    return ScreeningOutcome(answers=clean, positives=positives)


def screening_lock_id(screening_id: int) -> str:
    """The lock id a positive screening sets."""
    return f"{RULE}:screening:{screening_id}"


def screening_locks(history: PatientHistory, now: datetime) -> list[Lock]:
    """A lock for every positive screening made up to ``now``."""
    locks = []
    for s in history.screenings:
        if s.positives and s.at <= now:
            found = ", ".join(LABELS.get(p, p) for p in s.positives)
            locks.append(
                Lock(
                    lock_id=screening_lock_id(s.screening_id),
                    rule=RULE,
                    reason=(
                        f"The screening of {s.at:%Y-%m-%d} found: {found}. Sessions stay "
                        "locked until a clinician clears it."
                    ),
                    since=s.at,
                )
            )
    return locks


def latest_screening(history: PatientHistory, now: datetime) -> ScreeningRecord | None:
    """The most recent screening made up to ``now``."""
    done = [s for s in history.screenings if s.at <= now]
    return max(done, key=lambda s: s.at) if done else None


def check_screening_due(history: PatientHistory, now: datetime, config: PolicyConfig) -> RuleResult:
    """Refuse if there is no screening, or the latest is older than its validity."""
    result = RuleResult()
    latest = latest_screening(history, now)
    if latest is None:
        result.refusals.append(
            Refusal(
                rule=RULE,
                reason=("Complete the contraindication screening before the first session."),
            )
        )
    elif now - latest.at > config.screening_valid:
        result.refusals.append(
            Refusal(
                rule=RULE,
                reason=(
                    f"The last screening ({latest.at:%Y-%m-%d}) is older than "
                    f"{format_duration(config.screening_valid)}: complete the screening again."
                ),
            )
        )
    return result
