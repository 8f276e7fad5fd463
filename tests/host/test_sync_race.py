"""Two laptops syncing the same pen at the same moment: every record stored once,
none lost, every session derived once. Each laptop is its own process; both
engines."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from tests.host.test_store_logsync import rec

from scalppen import store as S
from scalppen_protocol.codes import MAX_PAGE_RECORDS, RecordKind

SESSIONS = 120
T0 = 1_780_000_000


def pen_log() -> list[dict[str, Any]]:
    out = []
    for n in range(SESSIONS):
        t = T0 + n * 3 * 86400
        out += [rec(3 * n, RecordKind.ARMED, t - 60, 500),
                rec(3 * n + 1, RecordKind.SESSION_START, t, 500),
                rec(3 * n + 2, RecordKind.SESSION_END, t + 600, 500, a=600_000, b=7000)]
    return out


def _laptop(target: str, barrier: Any, results: Any) -> None:
    records = pen_log()
    pages = [records[i: i + MAX_PAGE_RECORDS] for i in range(0, len(records), MAX_PAGE_RECORDS)]
    errors = []
    with S.open_store(target, timeout_s=30) as db:
        barrier.wait(timeout=60)
        for page in pages:  # both the same pages in the same order: every one contended
            try:
                S.ingest_log_records(db, "SP-1", page)
            except S.StoreError as exc:
                errors.append(str(exc))
    results.put(errors)


def test_two_laptops_syncing_one_pen_store_each_record_once(db_target: str) -> None:
    S.open_store(db_target).close()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_laptop, args=(db_target, barrier, results))
             for i in range(2)]
    for p in procs:
        p.start()
    errors = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert errors == [[], []]
    with S.open_store(db_target) as db:
        assert [r.seq for r in S.list_log_records(db, "SP-1")] == list(range(3 * SESSIONS))
        sessions = S.list_sessions(db, pen_serial="SP-1")
        assert len(sessions) == SESSIONS
        assert all(s.complete and s.duration_s == 600 for s in sessions)
        assert S.list_gaps(db, "SP-1") == []
