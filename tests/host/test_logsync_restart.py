"""Sync against a pen whose log restarted (issue 14 item 1): the host recognises the
new log, stores it from its start as a new epoch and never reports success having
stored less than the pen holds.

The pen here is the host client's own paging (``Pen.sync_log``) over a list of
records, as the pen's LOG_READ answers them (first_seq, last_seq, records)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.client import Pen
from scalppen.results import LogPage, LogRecord
from scalppen.workflows.logsync import LogNotStored, sync_log
from scalppen_protocol.codes import RecordKind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = int(NOW.timestamp()) - 5 * 86400
SERIAL = "SP3-0A0B0C"


class LogPen:
    """A pen's log as LOG_READ serves it."""

    sync_log = Pen.sync_log
    _sync_pages = Pen._sync_pages

    def __init__(self, records: list[LogRecord], *, first_seq: int = 1) -> None:
        self.records = records
        self.first_seq = first_seq
        self.problems: list[str] = []
        self.silent = False  # answer pages without records (a broken pen)

    def max_page_records(self) -> int:
        return 4

    async def read_log(self, from_seq: int, count: int | None = None) -> LogPage:
        last = self.records[-1].seq if self.records else self.first_seq - 1
        held = [r for r in self.records if r.seq >= max(from_seq, self.first_seq)]
        return LogPage(self.first_seq, last, () if self.silent else tuple(held[: count or 4]))

    def _problem(self, kind: str, message: str) -> None:
        self.problems.append(message)

    async def log_ack(self, seq: int, key: bytes) -> None:
        pass


def a_log(log_id: int, day: int, depth: int = 500, sessions: int = 1) -> list[LogRecord]:
    """BOOT (a = the log's id) then ``sessions`` sessions, seqs from 1."""
    t = T0 + day * 86400
    out = [LogRecord(1, t, RecordKind.BOOT, 0, 0, 0, log_id, 0)]
    for i in range(sessions):
        s = t + 60 + i * 4 * 86400
        out += [
            LogRecord(len(out) + 1, s, RecordKind.ARMED, 0, 0, depth, 600, 0),
            LogRecord(len(out) + 2, s + 5, RecordKind.SESSION_START, 0, 0, depth, 0, 0),
            LogRecord(len(out) + 3, s + 605, RecordKind.SESSION_END, 0, 0, depth, 600_000,
                      70_000 + day),
        ]
    return out


@pytest.fixture
def db(tmp_path: Path) -> Iterator[S.Store]:
    with S.open_store(tmp_path / "pen.db") as store:
        yield store


def sync(pen: LogPen, db: S.Store):  # type: ignore[no-untyped-def]
    return asyncio.run(sync_log(pen, db, SERIAL, now=NOW))  # type: ignore[arg-type]


def test_a_log_that_restarted_shorter_is_stored_from_its_start(db: S.Store) -> None:
    first = sync(LogPen(a_log(0x1111, 0, sessions=3)), db)  # seqs 1..10
    (old_id,) = first.session_ids[-1:]
    S.set_tolerated(db, old_id, True)
    again = sync(LogPen(a_log(0x2222, 1, depth=750, sessions=2)), db)  # seqs 1..7
    assert again.restarted and "ends at 7, before 10" in again.restarted
    assert (again.new, again.log_epoch, again.last_seq) == (7, 1, 7)
    sessions = S.list_sessions(db, pen_serial=SERIAL)
    assert len(sessions) == 5
    new = [s for s in sessions if s.id in again.session_ids]
    assert [(s.depth_um, s.strokes, s.tolerated) for s in new] == [(750, 70_001, None)] * 2
    assert S.get_session(db, old_id).tolerated is True  # the old log's session untouched
    assert sync(LogPen(a_log(0x2222, 1, depth=750, sessions=2)), db).new == 0  # same log now


def test_another_log_as_long_is_told_by_its_records(db: S.Store) -> None:
    sync(LogPen(a_log(0x1111, 0, sessions=2)), db)
    other = sync(LogPen(a_log(0x3333, 2, sessions=3)), db)
    assert "not the one stored" in other.restarted
    assert other.new == 10 and len(S.list_sessions(db, pen_serial=SERIAL)) == 5


def test_another_log_past_the_stored_one_is_told_by_its_log_id(db: S.Store) -> None:
    sync(LogPen(a_log(0x1111, 0, sessions=1)), db)  # seqs 1..4 stored
    records = a_log(0x4444, 3, sessions=3)
    boot = LogRecord(5, T0 + 3 * 86400 + 1, RecordKind.BOOT, 0, 0, 0, 0x4444, 0)
    # the new log (seqs 1..10, a BOOT at 5) rotated its seqs 1..4 out
    got = sync(LogPen([boot, *records[5:]], first_seq=5), db)
    assert "log id is 00004444, not 00001111" in got.restarted
    assert got.log_epoch == 1 and got.gaps == [(1, 4)]


def test_sync_that_stores_nothing_of_what_the_pen_holds_fails(db: S.Store) -> None:
    pen = LogPen(a_log(0x1111, 0, sessions=1))
    pen.silent = True
    with pytest.raises(LogNotStored, match="reaches 4"):
        sync(pen, db)
    assert S.list_sessions(db) == []
