"""Log sync: idempotent ingest, gaps reported and remembered, sessions derived."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalppen import store as S
from scalppen.policy import AttestationRecord, PermitFields
from scalppen_protocol.codes import RecordKind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = int(NOW.timestamp()) - 10 * 86400
PEN = "SP-1"


@pytest.fixture
def db(db_target: str) -> Iterator[S.Store]:
    with S.open_store(db_target) as store:
        yield store


def rec(seq: int, kind: RecordKind, t: int = 0, depth: int = 0, a: int = 0, b: int = 0) -> dict:
    return {
        "seq": seq,
        "time": t,
        "kind": int(kind),
        "flags": 0,
        "code": 0,
        "depth_um": depth,
        "a": a,
        "b": b,
    }


def session_records(first_seq: int, start: int, depth: int = 500, minutes: int = 10) -> list[dict]:
    """ARMED, SESSION_START, SESSION_END; ``start`` 0 = the pen's clock is unset."""
    end = start + minutes * 60 if start else 0
    return [
        rec(first_seq, RecordKind.ARMED, max(start - 30, 0), depth),
        rec(first_seq + 1, RecordKind.SESSION_START, start, depth),
        rec(
            first_seq + 2, RecordKind.SESSION_END, end, depth, a=minutes * 60_000, b=minutes * 7000
        ),
    ]


def test_same_records_twice_are_stored_once(db: S.Store) -> None:
    records = session_records(1, T0)
    first = S.ingest_log_records(db, PEN, records, now=NOW)
    assert (first.new, first.duplicates, first.gaps, first.sessions) == (3, 0, [], 1)
    again = S.ingest_log_records(db, PEN, records, now=NOW)
    assert (again.new, again.duplicates, again.gaps, again.sessions) == (0, 3, [], 0)
    assert len(S.list_log_records(db, PEN)) == 3
    assert len(S.list_sessions(db)) == 1


def test_duplicates_inside_one_batch(db: S.Store) -> None:
    records = session_records(1, T0)
    result = S.ingest_log_records(db, PEN, records + records[:2], now=NOW)
    assert (result.new, result.duplicates) == (3, 2)


def test_resume_from_last_synced_seq(db: S.Store) -> None:
    assert S.last_synced_seq(db, PEN) is None
    S.ingest_log_records(db, PEN, session_records(1, T0), now=NOW)
    assert S.last_synced_seq(db, PEN) == 3
    S.ingest_log_records(db, PEN, session_records(4, T0 + 86400), from_seq=4, now=NOW)
    assert S.last_synced_seq(db, PEN) == 6
    assert S.list_gaps(db, PEN) == []


def test_gap_is_reported_and_remembered(db: S.Store) -> None:
    S.ingest_log_records(db, PEN, session_records(1, T0), now=NOW)
    result = S.ingest_log_records(db, PEN, session_records(10, T0 + 86400), from_seq=4, now=NOW)
    assert result.gaps == [(4, 9)]
    assert S.list_gaps(db, PEN) == [(4, 9)]
    later = S.ingest_log_records(db, PEN, session_records(13, T0 + 2 * 86400), now=NOW)
    assert later.gaps == []  # reported once...
    assert S.list_gaps(db, PEN) == [(4, 9)]  # ...and remembered


def test_gap_inside_one_batch(db: S.Store) -> None:
    records = session_records(1, T0) + session_records(7, T0 + 86400)
    assert S.ingest_log_records(db, PEN, records, now=NOW).gaps == [(4, 6)]


def test_leading_gap_when_the_log_already_lost_records(db: S.Store) -> None:
    result = S.ingest_log_records(db, PEN, session_records(50, T0), from_seq=0, now=NOW)
    assert result.gaps == [(0, 49)]
    assert S.list_gaps(db, PEN) == [(0, 49)]


def test_filled_gap_is_closed_and_sessions_rederived(db: S.Store) -> None:
    first = session_records(1, T0)
    second = session_records(4, T0 + 86400)
    third = session_records(7, T0 + 2 * 86400)
    S.ingest_log_records(db, PEN, first + third, now=NOW)
    assert S.list_gaps(db, PEN) == [(4, 6)]
    assert len(S.list_sessions(db)) == 2
    result = S.ingest_log_records(db, PEN, second, now=NOW)
    assert result.gaps == []
    assert S.list_gaps(db, PEN) == []
    assert [s.start_seq for s in S.list_sessions(db)] == [2, 5, 8]


def test_conflicting_record_is_reported_not_overwritten(db: S.Store) -> None:
    S.ingest_log_records(db, PEN, [rec(1, RecordKind.BOOT, T0)], now=NOW)
    result = S.ingest_log_records(db, PEN, [rec(1, RecordKind.FAULT, T0)], now=NOW)
    assert result.conflicts == [1] and result.new == 0
    assert S.list_log_records(db, PEN)[0].kind == RecordKind.BOOT


def test_malformed_record_is_rejected(db: S.Store) -> None:
    with pytest.raises(S.StoreError):
        S.ingest_log_records(db, PEN, [{**rec(1, RecordKind.BOOT), "depth_um": 70_000}])
    with pytest.raises(S.StoreError):
        S.ingest_log_records(db, PEN, [{"seq": 1}])


def test_session_fields_from_start_and_end(db: S.Store) -> None:
    S.ingest_log_records(db, PEN, session_records(1, T0, depth=750, minutes=12), now=NOW)
    (s,) = S.list_sessions(db)
    assert s.started_at == datetime.fromtimestamp(T0, UTC)
    assert s.ended_at == datetime.fromtimestamp(T0 + 720, UTC)
    assert (s.depth_um, s.duration_s, s.strokes, s.complete) == (750, 720.0, 84_000, True)
    assert (s.start_seq, s.end_seq, s.tolerated) == (2, 3, None)
    assert S.set_tolerated(db, s.id, True).tolerated is True


def test_session_split_across_two_reads(db: S.Store) -> None:
    records = session_records(1, T0)
    S.ingest_log_records(db, PEN, records[:2], now=NOW)
    assert S.list_sessions(db) == []
    result = S.ingest_log_records(db, PEN, records[2:], now=NOW)
    assert result.sessions == 1
    assert S.list_sessions(db)[0].complete


def test_session_cut_by_a_reset_is_kept_as_incomplete(db: S.Store) -> None:
    records = [
        rec(1, RecordKind.SESSION_START, T0, 1000),
        rec(2, RecordKind.BOOT, T0 + 200),
    ]
    S.ingest_log_records(db, PEN, records, now=NOW)
    (s,) = S.list_sessions(db)
    assert not s.complete and s.depth_um == 1000
    assert s.ended_at == datetime.fromtimestamp(T0 + 200, UTC)


def test_session_end_without_its_start_still_counts(db: S.Store) -> None:
    records = [rec(3, RecordKind.SESSION_END, T0 + 600, 500, a=600_000, b=1)]
    S.ingest_log_records(db, PEN, records, now=NOW)
    (s,) = S.list_sessions(db)
    assert s.started_at == datetime.fromtimestamp(T0, UTC) and s.start_seq is None


def test_clock_unset_gives_sessions_without_times(db: S.Store) -> None:
    S.ingest_log_records(db, PEN, session_records(1, 0), now=NOW)
    (s,) = S.list_sessions(db)
    assert s.ended_at is None and s.depth_um == 500


def test_session_linked_to_the_profile_of_its_permit(db: S.Store) -> None:
    ann = S.add_profile(db, "Ann", now=NOW)
    bob = S.add_profile(db, "Bob", now=NOW)
    S.upsert_pen(db, PEN, owner_profile_id=ann.id)
    permit = PermitFields(500, 900, T0 - 60, T0 + 240, b"n" * 8, b"t" * 32)
    S.record_permit(db, PEN, permit, profile_id=bob.id)
    S.ingest_log_records(db, PEN, session_records(1, T0) + session_records(4, T0 + 7200), now=NOW)
    assert [s.profile_id for s in S.list_sessions(db)] == [bob.id, ann.id]
    history = S.load_history(db, bob.id)
    assert len(history.sessions) == 1
    assert isinstance(AttestationRecord(at=NOW), AttestationRecord)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
)
def test_any_chunking_and_repetition_gives_the_same_store(
    tmp_path_factory: pytest.TempPathFactory, chunk_sizes: list[int], rnd: object
) -> None:
    records = [r for i in range(6) for r in session_records(1 + 3 * i, T0 + i * 86400)]
    path = tmp_path_factory.mktemp("h") / "pen.db"
    with S.open_store(path) as db:
        pos = 0
        chunks = []
        for size in chunk_sizes * 10:
            if pos >= len(records):
                break
            chunks.append(records[pos : pos + size])
            pos += size
        chunks.append(records[pos:])
        chunks += chunks[: len(chunks) // 2]  # read some pages twice
        rnd.shuffle(chunks)  # type: ignore[attr-defined]
        for chunk in chunks:
            S.ingest_log_records(db, PEN, chunk, now=NOW)
        assert [r.seq for r in S.list_log_records(db, PEN)] == list(range(1, 19))
        assert S.list_gaps(db, PEN) == []
        sessions = S.list_sessions(db)
        assert [(s.start_seq, s.end_seq, s.complete) for s in sessions] == [
            (2 + 3 * i, 3 + 3 * i, True) for i in range(6)
        ]
        assert all(s.ended_at and s.started_at for s in sessions)


def test_history_days_apart(db: S.Store) -> None:
    S.ingest_log_records(db, PEN, session_records(1, T0), now=NOW)
    since = datetime.fromtimestamp(T0, UTC) + timedelta(seconds=1)
    assert S.list_sessions(db, since=since) == []


def power_cut_records(t_start: int, boot_time: int) -> list[dict]:
    """A session the power cut after 5 min 7 s: the pen's last record before the cut,
    then BOOT and the SESSION_END it wrote at boot (flagged interrupted)."""
    return [
        rec(1, RecordKind.ARMED, t_start - 30, 750),
        rec(2, RecordKind.SESSION_START, t_start, 750),
        rec(3, RecordKind.SESSION_WARN, t_start + 300, 750),
        rec(4, RecordKind.BOOT, boot_time),
        {**rec(5, RecordKind.SESSION_END, boot_time, 750, a=307_000, b=35_000), "flags": 1},
    ]


@pytest.mark.parametrize("boot_after_s", [0, 3600])
def test_power_cut_mid_session_is_one_session(db: S.Store, boot_after_s: int) -> None:
    # boot_after_s 0: the RTC lost its time (the END carries 0); else the pen came back later
    boot_time = T0 + boot_after_s if boot_after_s else 0
    S.ingest_log_records(db, PEN, power_cut_records(T0, boot_time), now=NOW)
    (s,) = S.list_sessions(db)
    assert (s.start_seq, s.end_seq, s.strokes, s.depth_um) == (2, 5, 35_000, 750)
    assert s.started_at == datetime.fromtimestamp(T0, UTC)
    assert s.ended_at == datetime.fromtimestamp(T0 + 307, UTC)
    assert s.duration_s == 307.0


def test_power_cut_session_read_page_by_page_is_still_one(db: S.Store) -> None:
    records = power_cut_records(T0, T0 + 3600)
    for r in records:  # the END closing it arrives in a later sync than the BOOT
        S.ingest_log_records(db, PEN, [r], now=NOW)
    (s,) = S.list_sessions(db)
    assert (s.start_seq, s.end_seq, s.strokes, s.complete) == (2, 5, 35_000, True)
    assert s.ended_at == datetime.fromtimestamp(T0 + 307, UTC)


def test_a_restarted_log_is_a_new_epoch_beside_the_old(db: S.Store) -> None:
    first = [rec(1, RecordKind.BOOT, T0 - 60, a=0x1111), *session_records(2, T0)]
    S.ingest_log_records(db, PEN, first, now=NOW)
    S.set_tolerated(db, S.list_sessions(db)[0].id, True)
    assert S.start_log_epoch(db, PEN) == 1 and S.last_synced_seq(db, PEN) is None
    again = [rec(1, RecordKind.BOOT, T0 + 86399, a=0x2222), *session_records(2, T0 + 86400)]
    result = S.ingest_log_records(db, PEN, again, from_seq=1, now=NOW)
    assert (result.new, result.duplicates, result.conflicts, result.sessions) == (4, 0, [], 1)
    assert S.last_synced_seq(db, PEN) == 4 and S.last_log_id(db, PEN) == 0x2222
    assert [(r.log_epoch, r.seq) for r in S.list_log_records(db, PEN)] == [
        (0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4)]
    old, new = S.list_sessions(db)
    assert (old.start_seq, old.tolerated) == (3, True)  # the old log's session is untouched
    assert (new.start_seq, new.tolerated) == (3, None)
    assert new.started_at == datetime.fromtimestamp(T0 + 86400, UTC)
    assert S.sessions_from_seq(db, PEN, 1) == [new.id]
    assert S.list_gaps(db, PEN) == []


def test_v1_store_migrates_keeping_sessions_and_what_refers_to_them(tmp_path: Path) -> None:
    import os
    import sqlite3

    from scalppen.store.db import _split
    from scalppen.store.migrations import MIGRATIONS

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for statement in _split(MIGRATIONS[0]):
        conn.execute(statement)
    conn.executescript(
        "PRAGMA user_version = 1;"
        "INSERT INTO pens (serial) VALUES ('SP-1');"
        "INSERT INTO log_records VALUES ('SP-1', 7, 100, 5, 0, 0, 500, 0, 0, 1);"
        "INSERT INTO sessions (id, pen_serial, depth_um, start_seq, tolerated)"
        " VALUES (42, 'SP-1', 500, 7, 1);"
        "INSERT INTO telemetry_summaries VALUES (42, 1, 1, 1, 1, 1, 1, 1, 1, 1);"
    )
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    with S.open_store(path) as store:
        (s,) = S.list_sessions(store)
        assert (s.id, s.start_seq, s.tolerated) == (42, 7, True)
        assert store.query_one("SELECT COUNT(*) FROM telemetry_summaries")[0] == 1
        assert [(r.log_epoch, r.seq) for r in S.list_log_records(store, "SP-1")] == [(0, 7)]
        assert store.query_one("PRAGMA foreign_keys")[0] == 1
