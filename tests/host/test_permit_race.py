"""Several laptops arming the same patient at the same moment: exactly one permit.

Each laptop is its own process with its own connection, released together by a
barrier; the database (SQLite's write lock, PostgreSQL's row lock) makes them
decide one after the other, and the permit the first recorded counts for rule 6
until its session is synced. Run on both engines.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import UTC, datetime, timedelta

from scalppen import store as S
from scalppen.policy import CONTRAINDICATIONS, PenLimits
from scalppen.workflows.session import SessionPlan, SessionRefused, issue_session_permit

LAPTOPS = 4
NOW = datetime.now(UTC).replace(microsecond=0)


def _laptop(target: str, pen: str, profile_id: int, barrier: mp.synchronize.Barrier,
            results: mp.Queue) -> None:  # type: ignore[type-arg]
    with S.open_store(target, timeout_s=30) as db:
        barrier.wait(timeout=60)
        try:
            _, permit = issue_session_permit(
                db, pen, SessionPlan(profile_id, 500, attested=True), PenLimits(),
                os.urandom(32), NOW,
            )
            results.put(("permit", pen, permit.nonce.hex()))
        except SessionRefused as refused:
            results.put(("refused", pen, [r.rule for r in refused.decision.refusals]))


def _patient(target: str) -> int:
    with S.open_store(target) as db:
        ann = S.add_profile(db, "Ann", birth_year=1980, now=NOW - timedelta(days=10))
        S.record_screening(db, ann.id, {k: False for k in CONTRAINDICATIONS},
                           now=NOW - timedelta(days=1))
        for n in range(LAPTOPS):
            S.upsert_pen(db, f"SP-{n}", paired_at=NOW - timedelta(days=5))
        return ann.id


def test_two_rooms_arming_one_patient_get_exactly_one_permit(db_target: str) -> None:
    profile_id = _patient(db_target)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(LAPTOPS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_laptop, args=(db_target, f"SP-{n}", profile_id, barrier,
                                                results)) for n in range(LAPTOPS)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    permits = [g for g in got if g[0] == "permit"]
    assert len(permits) == 1, got
    assert all(g[2] == [6] for g in got if g[0] == "refused"), got
    with S.open_store(db_target) as db:
        assert len(S.list_permits(db)) == 1
        history = S.load_history(db, profile_id)
        assert [p.pen_serial for p in history.pending_permits] == [permits[0][1]]


def test_a_permit_stops_counting_once_its_session_is_synced(db_target: str) -> None:
    from tests.host.test_store_logsync import rec

    from scalppen_protocol.codes import RecordKind

    profile_id = _patient(db_target)
    with S.open_store(db_target) as db:
        _, permit = issue_session_permit(db, "SP-0", SessionPlan(profile_id, 250, attested=True),
                                         PenLimits(), os.urandom(32), NOW)
        assert S.load_history(db, profile_id).pending_permits
        start = int(NOW.timestamp()) + 60
        S.ingest_log_records(db, "SP-0", [
            rec(1, RecordKind.SESSION_START, start, 250),
            rec(2, RecordKind.SESSION_END, start + 300, 250, a=300_000, b=1000),
        ])
        S.assign_profile(db, S.list_sessions(db, pen_serial="SP-0")[0].id, profile_id)
        history = S.load_history(db, profile_id)
        assert history.pending_permits == ()
        assert [s.ended_at for s in history.sessions] == [
            datetime.fromtimestamp(start + 300, UTC)]


def test_an_unused_permit_stops_counting_when_the_log_runs_past_its_expiry(
    db_target: str,
) -> None:
    from tests.host.test_store_logsync import rec

    from scalppen_protocol.codes import RecordKind

    profile_id = _patient(db_target)
    with S.open_store(db_target) as db:
        _, permit = issue_session_permit(db, "SP-0", SessionPlan(profile_id, 250, attested=True),
                                         PenLimits(), os.urandom(32), NOW)
        later = permit.expires_at + 3600
        S.ingest_log_records(db, "SP-0", [rec(1, RecordKind.BOOT, later)])
        assert S.load_history(db, profile_id).pending_permits == ()


def test_a_permit_the_pen_refused_and_dropped_stops_counting(db_target: str) -> None:
    profile_id = _patient(db_target)
    with S.open_store(db_target) as db:
        _, permit = issue_session_permit(db, "SP-0", SessionPlan(profile_id, 250, attested=True),
                                         PenLimits(), os.urandom(32), NOW)
        assert S.load_history(db, profile_id).pending_permits
        S.void_permit(db, permit.nonce, at=NOW)
        assert S.load_history(db, profile_id).pending_permits == ()


def test_the_pens_own_report_of_a_later_session_settles_a_permit(db_target: str) -> None:
    profile_id = _patient(db_target)
    with S.open_store(db_target) as db:
        issue_session_permit(db, "SP-0", SessionPlan(profile_id, 250, attested=True),
                             PenLimits(), os.urandom(32), NOW)
        ended = (NOW + timedelta(minutes=3), 250)
        on_the_pen = S.load_history(db, profile_id, pen_serial="SP-0", pen_last_session=ended)
        assert on_the_pen.pending_permits == ()
        elsewhere = S.load_history(db, profile_id, pen_serial="SP-1", pen_last_session=ended)
        assert [p.pen_serial for p in elsewhere.pending_permits] == ["SP-0"]
