"""Every HOST and BOTH rule of SAFETY_RULES.md, each with tests that fail without it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scalppen.policy import (
    CONTRAINDICATIONS,
    AdverseEventRecord,
    AdverseKind,
    AttestationRecord,
    ClearanceError,
    ClearanceRecord,
    Decision,
    HandpieceRecord,
    PatientHistory,
    PenLimits,
    PolicyConfig,
    ScreeningError,
    ScreeningRecord,
    SessionRequest,
    SessionSummary,
    adverse_lock_id,
    evaluate,
    evaluate_screening,
    screening_lock_id,
    service_lock_id,
    topical_hold_until,
    validate_clearance,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FP = "ab90-b122-8e0b-cbb3-e5e1-bde8-bd72-1d12"  # a trusted clinician key's fingerprint
H = timedelta(hours=1)
D = timedelta(days=1)


def ready(**changes: object) -> PatientHistory:
    """A history that passes every rule: screened yesterday, attested a minute ago."""
    base = PatientHistory(
        profile_id=1,
        birth_year=1990,
        screenings=(ScreeningRecord(screening_id=1, at=NOW - D),),
        attestation=AttestationRecord(at=NOW - timedelta(minutes=1)),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def session(
    depth_um: int, ended: datetime, tolerated: bool | None = True, sid: int = 1
) -> SessionSummary:
    return SessionSummary(
        depth_um=depth_um,
        started_at=ended - timedelta(minutes=12),
        ended_at=ended,
        duration_s=720,
        strokes=80000,
        tolerated=tolerated,
        session_id=sid,
    )


def rules_of(decision: Decision) -> set[int]:
    return {r.rule for r in decision.refusals}


def test_ready_history_is_allowed() -> None:
    d = evaluate(ready(), SessionRequest(depth_um=500), now=NOW)
    assert d.allowed, d.refusals
    assert d.max_depth_um == 500
    assert d.max_duration_s == 900


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        evaluate(ready(), now=datetime(2026, 3, 1))


# --- rules 1 and 2: grid and ceiling (the pen enforces them too) -------------------


@pytest.mark.parametrize("depth", [0, 100, 300, 510, 740])
def test_off_grid_depth_is_refused_rule_2(depth: int) -> None:
    d = evaluate(ready(), SessionRequest(depth_um=depth), now=NOW)
    assert not d.allowed
    assert 2 in rules_of(d)


def test_depth_above_pen_ceiling_is_refused_rule_1() -> None:
    sessions = tuple(session(1000, NOW - 30 * D + i * H, sid=i) for i in range(1))
    hist = ready(sessions=sessions)
    d = evaluate(
        hist, SessionRequest(depth_um=1250), now=NOW, pen_limits=PenLimits(ceiling_um=1000)
    )
    assert 1 in rules_of(d)
    ok = evaluate(
        hist, SessionRequest(depth_um=1000), now=NOW, pen_limits=PenLimits(ceiling_um=1000)
    )
    assert ok.allowed


def test_pen_ceiling_below_the_shallowest_setting_is_refused() -> None:
    d = evaluate(ready(), now=NOW, pen_limits=PenLimits(ceiling_um=0))
    assert not d.allowed
    assert rules_of(d) == {1}


def test_pen_grid_coarser_than_quarter_mm_is_respected() -> None:
    d = evaluate(ready(), SessionRequest(depth_um=250), now=NOW, pen_limits=PenLimits(grid_um=500))
    assert 2 in rules_of(d)


# --- rule 4: beginner ramp ----------------------------------------------------------


def test_rule4_first_session_deeper_than_half_mm_is_refused() -> None:
    d = evaluate(ready(), SessionRequest(depth_um=750), now=NOW)
    assert not d.allowed
    assert rules_of(d) == {4}
    assert "0.50 mm" in d.refusals[0].reason


def test_rule4_first_session_at_half_mm_is_allowed() -> None:
    assert evaluate(ready(), SessionRequest(depth_um=500), now=NOW).allowed


def test_rule4_default_depth_of_first_session_is_half_mm() -> None:
    assert evaluate(ready(), now=NOW).max_depth_um == 500


def test_rule4_raise_by_quarter_after_tolerated_session() -> None:
    hist = ready(sessions=(session(500, NOW - 4 * D, tolerated=True),))
    assert evaluate(hist, SessionRequest(depth_um=750), now=NOW).allowed
    d = evaluate(hist, SessionRequest(depth_um=1000), now=NOW)
    assert rules_of(d) == {4}
    assert d.ramp_limit_um == 750


def test_rule4_no_raise_after_untolerated_session() -> None:
    hist = ready(sessions=(session(500, NOW - 4 * D, tolerated=False),))
    d = evaluate(hist, SessionRequest(depth_um=750), now=NOW)
    assert rules_of(d) == {4}
    assert "not recorded as tolerated" in d.refusals[0].reason
    assert evaluate(hist, SessionRequest(depth_um=500), now=NOW).allowed


def test_rule4_unrecorded_tolerance_counts_as_not_tolerated() -> None:
    hist = ready(sessions=(session(500, NOW - 4 * D, tolerated=None),))
    assert rules_of(evaluate(hist, SessionRequest(depth_um=750), now=NOW)) == {4}


def test_rule4_adverse_event_on_a_session_means_not_tolerated() -> None:
    ev = AdverseEventRecord(event_id=9, at=NOW - 3 * D, kind=AdverseKind.REDNESS, session_id=1)
    hist = ready(sessions=(session(500, NOW - 4 * D, tolerated=True),), adverse_events=(ev,))
    assert 4 in rules_of(evaluate(hist, SessionRequest(depth_um=750), now=NOW))


def test_rule4_ramp_follows_the_last_session_not_the_deepest() -> None:
    hist = ready(
        sessions=(
            session(1000, NOW - 30 * D, sid=1),
            session(250, NOW - 5 * D, sid=2),
        )
    )
    assert evaluate(hist, now=NOW).ramp_limit_um == 500


def test_rule4_pen_reported_session_newer_than_the_store_counts() -> None:
    hist = ready(
        sessions=(session(500, NOW - 20 * D, tolerated=True),),
        pen_last_session=(NOW - 5 * D, 500),
    )
    assert 4 in rules_of(evaluate(hist, SessionRequest(depth_um=750), now=NOW))


# --- rule 5: session length -----------------------------------------------------------


def test_rule5_permit_never_exceeds_15_min_and_warns_at_10() -> None:
    d = evaluate(ready(), now=NOW)
    assert d.max_duration_s == 900
    assert d.warn_after_s == 600
    assert any(w.rule == 5 for w in d.warnings)


def test_rule5_request_over_15_min_is_refused() -> None:
    d = evaluate(ready(), SessionRequest(depth_um=500, duration_s=901), now=NOW)
    assert rules_of(d) == {5}


def test_rule5_shorter_request_and_pen_cap_tighten() -> None:
    d = evaluate(ready(), SessionRequest(duration_s=480), now=NOW)
    assert (d.max_duration_s, d.warn_after_s) == (480, 480)
    pen = PenLimits(session_cap_s=720, session_warn_s=540)
    d = evaluate(ready(), now=NOW, pen_limits=pen)
    assert (d.max_duration_s, d.warn_after_s) == (720, 540)


# --- rule 6: interval between sessions -------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "wait"),
    [
        (250, 24 * H),
        (499, 24 * H),
        (500, 72 * H),
        (750, 72 * H),
        (999, 72 * H),
        (1000, 7 * D),
        (1500, 7 * D),
    ],
)
def test_rule6_interval_at_each_band_boundary(depth: int, wait: timedelta) -> None:
    end = NOW - timedelta(hours=2)
    hist = ready(sessions=(session(depth, end),))
    lift = end + wait
    just_before = evaluate(hist, SessionRequest(depth_um=250), now=lift - timedelta(seconds=1))
    assert 6 in rules_of(just_before)
    refusal = next(r for r in just_before.refusals if r.rule == 6)
    assert refusal.lifts_at == lift
    assert not refusal.clearable_by_clinician
    at_lift = evaluate(
        replace(hist, attestation=AttestationRecord(at=lift - timedelta(minutes=1))),
        SessionRequest(depth_um=250),
        now=lift,
    )
    assert 6 not in rules_of(at_lift)


def test_rule6_every_recent_session_counts_not_only_the_last() -> None:
    hist = ready(
        sessions=(
            session(1500, NOW - 3 * D, sid=1),
            session(250, NOW - 2 * D, sid=2),
        )
    )
    d = evaluate(hist, SessionRequest(depth_um=250), now=NOW)
    refusal = next(r for r in d.refusals if r.rule == 6)
    assert refusal.lifts_at == NOW - 3 * D + 7 * D


def test_rule6_pen_reported_last_session_counts() -> None:
    hist = ready(pen_last_session=(NOW - H, 1000))
    d = evaluate(hist, SessionRequest(depth_um=250), now=NOW)
    assert next(r for r in d.refusals if r.rule == 6).lifts_at == NOW - H + 7 * D


def test_rule6_unfinished_session_counts_the_full_cap() -> None:
    start = NOW - 24 * H
    s = SessionSummary(depth_um=250, started_at=start, ended_at=None)
    d = evaluate(ready(sessions=(s,)), SessionRequest(depth_um=250), now=NOW)
    assert (
        next(r for r in d.refusals if r.rule == 6).lifts_at
        == start + timedelta(seconds=900) + 24 * H
    )
    assert d.next_possible_at == start + timedelta(seconds=900) + 24 * H


# --- rule 7: topical hold -------------------------------------------------------------


def test_rule7_hold_lifts_24h_after_a_session_deeper_than_half_mm() -> None:
    end = NOW - 5 * H
    hist = ready(sessions=(session(750, end),))
    cfg = PolicyConfig()
    assert topical_hold_until(hist, NOW, cfg) == end + 24 * H
    assert topical_hold_until(hist, end + 24 * H, cfg) is None


def test_rule7_no_hold_at_half_mm_or_less() -> None:
    hist = ready(sessions=(session(500, NOW - 5 * H),))
    assert topical_hold_until(hist, NOW, PolicyConfig()) is None


def test_rule7_decision_shows_the_hold_and_the_next_one() -> None:
    end = NOW - 8 * D
    hist = ready(sessions=(session(750, end, tolerated=True),))
    d = evaluate(hist, SessionRequest(depth_um=1000), now=NOW)
    assert d.allowed
    assert any(w.rule == 7 for w in d.warnings)
    d = evaluate(ready(sessions=(session(750, NOW - H),)), now=NOW)
    assert d.topical_hold_until == NOW - H + 24 * H
    assert any(w.rule == 7 and w.at == d.topical_hold_until for w in d.warnings)


# --- rule 16: device service life -------------------------------------------------------


def hp(first: datetime | None, serviced: datetime | None = None) -> HandpieceRecord:
    return HandpieceRecord(pen_serial="SP-1", first_session_at=first, serviced_at=serviced)


def test_rule16_no_reminder_before_60_days() -> None:
    d = evaluate(ready(handpiece=hp(NOW - 59 * D)), now=NOW)
    assert d.allowed
    assert not any(w.rule == 16 for w in d.warnings)


def test_rule16_reminder_at_60_days() -> None:
    first = NOW - 60 * D
    d = evaluate(ready(handpiece=hp(first)), now=NOW)
    assert d.allowed
    warning = next(w for w in d.warnings if w.rule == 16)
    assert warning.at == first + 90 * D


def test_rule16_lock_at_90_days() -> None:
    first = NOW - 90 * D
    d = evaluate(ready(handpiece=hp(first)), now=NOW)
    assert rules_of(d) == {16}
    refusal = d.refusals[0]
    assert refusal.clearable_by_clinician
    assert refusal.lock_id == service_lock_id(hp(first), first)
    assert evaluate(ready(handpiece=hp(first)), now=NOW - timedelta(seconds=1)).allowed


def test_rule16_servicing_resets_the_count() -> None:
    d = evaluate(ready(handpiece=hp(NOW - 120 * D, serviced=NOW - 10 * D)), now=NOW)
    assert d.allowed
    assert not any(w.rule == 16 for w in d.warnings)
    d = evaluate(ready(handpiece=hp(NOW - 200 * D, serviced=NOW - 95 * D)), now=NOW)
    assert 16 in rules_of(d)


def test_rule16_lock_cleared_by_a_clinician() -> None:
    handpiece = hp(NOW - 100 * D)
    lock_id = service_lock_id(handpiece, NOW - 100 * D)
    c = ClearanceRecord(lock_id, 16, "Dr Lee", "clinician", "inspected, needles fine", NOW - H, FP)
    assert evaluate(ready(handpiece=handpiece, clearances=(c,)), now=NOW).allowed


# --- rule 17: contraindication screening ------------------------------------------------


def no_answers() -> dict[str, bool]:
    return {k: False for k in CONTRAINDICATIONS}


def test_rule17_contraindication_list_is_complete() -> None:
    assert set(CONTRAINDICATIONS) == {
        "active_acne",
        "scalp_infection",
        "psoriasis_eczema",
        "keloids_poor_healing",
        "alopecia_areata",
        "anticoagulants",
        "isotretinoin",
        "pregnancy",
        "under_22",
    }


@pytest.mark.parametrize("key", sorted(CONTRAINDICATIONS))
def test_rule17_each_contraindication_locks(key: str) -> None:
    outcome = evaluate_screening({**no_answers(), key: True}, birth_year=1990, now=NOW)
    assert outcome.positives == (key,)
    s = ScreeningRecord(screening_id=7, at=NOW - H, positives=outcome.positives)
    d = evaluate(ready(screenings=(s,)), now=NOW)
    assert rules_of(d) == {17}
    assert d.refusals[0].lock_id == screening_lock_id(7)
    assert d.refusals[0].clearable_by_clinician
    assert d.refusals[0].lifts_at is None


def test_rule17_all_no_is_clear() -> None:
    assert evaluate_screening(no_answers(), birth_year=1990, now=NOW).clear


def test_rule17_birth_year_under_22_counts_as_yes() -> None:
    outcome = evaluate_screening(no_answers(), birth_year=NOW.year - 20, now=NOW)
    assert outcome.positives == ("under_22",)


def test_rule17_unanswered_or_unknown_question_is_an_error() -> None:
    answers = no_answers()
    del answers["pregnancy"]
    with pytest.raises(ScreeningError):
        evaluate_screening(answers, birth_year=None, now=NOW)
    with pytest.raises(ScreeningError):
        evaluate_screening({**no_answers(), "bogus": False}, birth_year=None, now=NOW)
    with pytest.raises(ScreeningError):
        evaluate_screening({**no_answers(), "pregnancy": "no"}, birth_year=None, now=NOW)  # type: ignore[dict-item]


def test_rule17_no_screening_refuses_first_session() -> None:
    d = evaluate(ready(screenings=()), now=NOW)
    assert rules_of(d) == {17}
    assert not d.refusals[0].clearable_by_clinician


def test_rule17_rescreening_every_30_days() -> None:
    at_limit = ready(screenings=(ScreeningRecord(1, NOW - 30 * D),))
    assert evaluate(at_limit, now=NOW).allowed
    expired = ready(screenings=(ScreeningRecord(1, NOW - 30 * D - timedelta(seconds=1)),))
    assert rules_of(evaluate(expired, now=NOW)) == {17}


def test_rule17_later_clear_screening_does_not_lift_an_earlier_positive() -> None:
    hist = ready(
        screenings=(
            ScreeningRecord(1, NOW - 5 * D, positives=("pregnancy",)),
            ScreeningRecord(2, NOW - D),
        )
    )
    d = evaluate(hist, now=NOW)
    assert rules_of(d) == {17}
    assert d.refusals[0].lock_id == screening_lock_id(1)


def test_rule17_clinician_clears_a_positive_screening() -> None:
    s = ScreeningRecord(3, NOW - D, positives=("anticoagulants",))
    c = ClearanceRecord(screening_lock_id(3), 17, "Dr Lee", "clinician", "low-dose aspirin", NOW,
                        FP)
    assert evaluate(ready(screenings=(s,), clearances=(c,)), now=NOW).allowed


# --- rule 18: adverse events ------------------------------------------------------------


@pytest.mark.parametrize("kind", [AdverseKind.OOZING, AdverseKind.EXTREME_HEAT, AdverseKind.PUS])
def test_rule18_oozing_heat_pus_lock(kind: AdverseKind) -> None:
    ev = AdverseEventRecord(event_id=4, at=NOW - 40 * D, kind=kind)
    d = evaluate(ready(adverse_events=(ev,)), now=NOW)
    assert rules_of(d) == {18}
    assert d.refusals[0].lock_id == adverse_lock_id(4)
    assert d.refusals[0].clearable_by_clinician
    assert d.refusals[0].lifts_at is None


@pytest.mark.parametrize("kind", [AdverseKind.REDNESS, AdverseKind.BRUISING])
def test_rule18_redness_bruising_are_logged_only(kind: AdverseKind) -> None:
    ev = AdverseEventRecord(event_id=4, at=NOW - D, kind=kind)
    d = evaluate(ready(adverse_events=(ev,)), now=NOW)
    assert d.allowed
    assert any(w.rule == 18 for w in d.warnings)


# --- rule 19: sterilisation attestation --------------------------------------------------


def test_rule19_no_attestation_is_refused() -> None:
    d = evaluate(ready(attestation=None), now=NOW)
    assert rules_of(d) == {19}


def test_rule19_stale_attestation_is_refused() -> None:
    old = AttestationRecord(at=NOW - timedelta(minutes=31))
    assert rules_of(evaluate(ready(attestation=old), now=NOW)) == {19}


def test_rule19_attestation_from_before_the_last_session_is_refused() -> None:
    end = NOW - timedelta(minutes=2)
    hist = ready(
        sessions=(session(250, end),),
        attestation=AttestationRecord(at=end - timedelta(minutes=5)),
    )
    d = evaluate(hist, now=end + 24 * H)
    assert 19 in rules_of(d)


# --- rule 22: clinician override ----------------------------------------------------------


def test_rule22_clearance_needs_clinician_role() -> None:
    with pytest.raises(ClearanceError, match="only a clinician"):
        validate_clearance(
            screening_lock_id(1), clinician_name="Sam", role="patient", reason="ok", at=NOW,
            signed_by=FP,
        )


def test_rule22_clearance_needs_a_reason() -> None:
    with pytest.raises(ClearanceError, match="reason"):
        validate_clearance(
            screening_lock_id(1), clinician_name="Dr Lee", role="clinician", reason="  ", at=NOW,
            signed_by=FP,
        )


def test_rule22_clearance_needs_a_signature() -> None:
    with pytest.raises(ClearanceError, match="signed by a trusted clinician key"):
        validate_clearance(
            screening_lock_id(1), clinician_name="Dr Lee", role="clinician", reason="ok", at=NOW
        )


@pytest.mark.parametrize("lock_id", ["6:interval:1", "1:ceiling", "5:cap", "14:wear:x"])
def test_rule22_firmware_limits_cannot_be_overridden(lock_id: str) -> None:
    with pytest.raises(ClearanceError):
        validate_clearance(
            lock_id, clinician_name="Dr Lee", role="clinician", reason="please", at=NOW,
            signed_by=FP,
        )


def test_rule22_stored_clearance_without_role_reason_or_signature_is_ignored() -> None:
    ev = AdverseEventRecord(event_id=4, at=NOW - D, kind=AdverseKind.PUS)
    for role, reason, signed_by in (("patient", "fine", FP), ("clinician", "", FP),
                                    ("user", "", FP), ("clinician", "fine", "")):
        c = ClearanceRecord(adverse_lock_id(4), 18, "X", role, reason, NOW, signed_by)
        assert rules_of(evaluate(ready(adverse_events=(ev,), clearances=(c,)), now=NOW)) == {18}


def test_rule22_clearance_lifts_exactly_that_lock() -> None:
    evs = (
        AdverseEventRecord(event_id=4, at=NOW - 2 * D, kind=AdverseKind.PUS),
        AdverseEventRecord(event_id=5, at=NOW - D, kind=AdverseKind.OOZING),
    )
    c = validate_clearance(
        adverse_lock_id(4), clinician_name="Dr Lee", role="clinician", reason="healed", at=NOW,
        signed_by=FP,
    )
    d = evaluate(ready(adverse_events=evs, clearances=(c,)), now=NOW)
    assert [r.lock_id for r in d.refusals] == [adverse_lock_id(5)]
    assert {lock.lock_id: lock.cleared for lock in d.locks} == {
        adverse_lock_id(4): True,
        adverse_lock_id(5): False,
    }


def test_rule22_clearance_before_the_lock_does_not_lift_it() -> None:
    ev = AdverseEventRecord(event_id=4, at=NOW - D, kind=AdverseKind.PUS)
    c = ClearanceRecord(adverse_lock_id(4), 18, "Dr Lee", "clinician", "early", NOW - 2 * D, FP)
    assert rules_of(evaluate(ready(adverse_events=(ev,), clearances=(c,)), now=NOW)) == {18}


def test_rule22_clearance_does_not_lift_a_wait() -> None:
    hist = ready(sessions=(session(1000, NOW - D),))
    d = evaluate(hist, SessionRequest(depth_um=250), now=NOW)
    assert all(not r.clearable_by_clinician for r in d.refusals if r.rule == 6)


# --- configuration ----------------------------------------------------------------------


def test_config_may_tighten_but_not_loosen() -> None:
    tight = PolicyConfig(beginner_depth_um=250, session_cap_s=600, interval_mid=timedelta(days=4))
    assert evaluate(ready(), SessionRequest(depth_um=500), now=NOW, config=tight).refusals
    for loose in (
        {"beginner_depth_um": 750},
        {"session_cap_s": 1200},
        {"interval_deep": timedelta(days=6)},
        {"service_lock": timedelta(days=120)},
        {"screening_valid": timedelta(days=60)},
        {"max_depth_um": 2000},
    ):
        with pytest.raises(ValueError):
            PolicyConfig(**loose)


def test_refusals_say_rule_reason_and_lift_time() -> None:
    hist = ready(sessions=(session(1000, NOW - D),), screenings=(), attestation=None)
    d = evaluate(hist, SessionRequest(depth_um=1500), now=NOW)
    assert rules_of(d) == {4, 6, 17, 19}
    assert all(r.reason and r.reason[0].isupper() for r in d.refusals)
    assert [r.rule for r in d.refusals] == sorted(r.rule for r in d.refusals)
    assert d.max_depth_um == 0 and d.max_duration_s == 0
    assert d.next_possible_at is None


def test_rule19_fresh_attestation_counts_after_the_clock_was_set_back(tmp_path) -> None:
    # The computer's clock was an hour fast when the user last confirmed; after it is
    # corrected, a new confirmation must count (the old one is now in the future).
    from scalppen import store as S
    from scalppen.policy import attestation
    from scalppen.policy.history import PatientHistory
    from scalppen.policy.rules import PolicyConfig

    db = S.open_store(tmp_path / "s.db")
    pid = S.add_profile(db, "P", birth_year=1980).id
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    S.record_attestation(db, pid, at=now + timedelta(hours=1))
    S.record_attestation(db, pid, at=now)
    att = S.latest_attestation(db, pid)
    assert att is not None and att.at == now
    result = attestation.check_attestation(PatientHistory(attestation=att), now, PolicyConfig())
    assert not result.refusals
    db.close()
