"""Properties of the policy over generated histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scalppen.policy import (
    AttestationRecord,
    PatientHistory,
    PenLimits,
    ScreeningRecord,
    SessionRequest,
    SessionSummary,
    evaluate,
    ramp_limit_um,
    required_interval,
)
from scalppen.policy.rules import PolicyConfig

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

sessions = st.lists(
    st.builds(
        lambda depth, ago_h, tol, sid: SessionSummary(
            depth_um=depth * 250,
            started_at=NOW - timedelta(hours=ago_h, minutes=15),
            ended_at=NOW - timedelta(hours=ago_h),
            tolerated=tol,
            session_id=sid,
        ),
        st.integers(1, 6),
        st.integers(0, 24 * 60),
        st.sampled_from([True, False, None]),
        st.integers(1, 10_000),
    ),
    max_size=8,
)
requests = st.builds(
    SessionRequest,
    depth_um=st.none() | st.integers(0, 2600),
    duration_s=st.none() | st.integers(-5, 2000),
)
limits = st.builds(
    PenLimits,
    ceiling_um=st.sampled_from([500, 1000, 1500, 2500]),
    session_cap_s=st.sampled_from([600, 900, 1200]),
)


def history(items: list[SessionSummary]) -> PatientHistory:
    return PatientHistory(
        sessions=tuple(items),
        screenings=(ScreeningRecord(1, NOW - timedelta(days=1)),),
        attestation=AttestationRecord(at=NOW),
    )


@settings(max_examples=300, deadline=None)
@given(sessions, requests, limits)
def test_an_allowing_decision_never_exceeds_any_limit(
    items: list[SessionSummary], request: SessionRequest, pen: PenLimits
) -> None:
    hist = history(items)
    d = evaluate(hist, request, now=NOW, pen_limits=pen)
    if not d.allowed:
        assert d.refusals and d.max_depth_um == 0 and d.max_duration_s == 0
        return
    assert d.max_depth_um <= ramp_limit_um(hist, PolicyConfig())
    assert d.max_depth_um <= min(pen.ceiling_um, 1500)
    assert d.max_depth_um % 250 == 0 and d.max_depth_um >= 250
    assert 0 < d.max_duration_s <= min(900, pen.session_cap_s)
    assert d.warn_after_s <= min(600, d.max_duration_s)
    for s in items:
        assert s.ended_at is not None
        assert s.ended_at + required_interval(s.depth_um, PolicyConfig()) <= NOW


@settings(max_examples=200, deadline=None)
@given(sessions)
def test_ramp_rises_at_most_one_step_over_the_last_session(items: list[SessionSummary]) -> None:
    hist = history(items)
    limit = ramp_limit_um(hist, PolicyConfig())
    if not items:
        assert limit == 500
        return
    last = max(items, key=lambda s: (s.ended_at, s.session_id))
    assert limit <= max(500, last.depth_um + 250)
    if last.tolerated is not True:
        assert limit <= last.depth_um
