"""Clinic benchmark: one database shared by several laptops, SQLite and PostgreSQL side by side.

A clinic of 5,000 patients and 20 pens with 5 years of history (each patient
treated every two to four weeks, the sessions spread over the clinic's pens),
then four laptops at once, each its own process: syncing new log pages from its
pens and issuing permits for random patients. Prints, for each engine: the
history's ingest rate on one laptop, policy evaluation per permit (load the
patient's history and decide: p50 and p95; the goal is 5 ms p95 on PostgreSQL),
and the total ingest rate and permits with four laptops at once.

Run: ``python bench/host/bench_clinic.py [--patients N] [--pens N] [--years Y]``.
PostgreSQL is a throwaway server (tools/pgserver.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for sub in ("host", "protocol", ""):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from tools.pgserver import throwaway_server  # noqa: E402

from scalppen import store as S  # noqa: E402
from scalppen.policy import CONTRAINDICATIONS, PenLimits, SessionRequest, evaluate  # noqa: E402
from scalppen_protocol.codes import MAX_PAGE_RECORDS, RecordKind  # noqa: E402

START = datetime(2021, 3, 1, 8, 0, tzinfo=UTC)
LAPTOPS = 4


def _rec(seq: int, kind: RecordKind, t: int, depth: int = 0, a: int = 0, b: int = 0
         ) -> dict[str, int]:
    return {"seq": seq, "time": t, "kind": int(kind), "flags": 0, "code": 0,
            "depth_um": depth, "a": a, "b": b}


def clinic_logs(patients: int, pens: int, years: int, rnd: random.Random
                ) -> dict[str, list[dict[str, int]]]:
    """Each pen's log: every patient treated every 14-28 days on a random pen."""
    by_pen: dict[str, list[tuple[int, int]]] = {f"CP-{p:02d}": [] for p in range(pens)}
    end = int((START + timedelta(days=365 * years)).timestamp())
    for _ in range(patients):
        t = int(START.timestamp()) + rnd.randint(0, 28 * 86400)
        while t < end:
            by_pen[f"CP-{rnd.randrange(pens):02d}"].append((t, rnd.choice((250, 500, 750))))
            t += rnd.randint(14, 28) * 86400
    logs: dict[str, list[dict[str, int]]] = {}
    for serial, starts in by_pen.items():
        records: list[dict[str, int]] = []
        last_end = 0
        for t, depth in sorted(starts):
            t = max(t, last_end + 120)  # one session at a time on a pen
            minutes = rnd.randint(8, 15)
            n = len(records)
            records += [
                _rec(n, RecordKind.ARMED, t - 60, depth),
                _rec(n + 1, RecordKind.SESSION_START, t, depth),
                _rec(n + 2, RecordKind.SESSION_END, t + minutes * 60, depth, minutes * 60_000,
                     minutes * 7_000),
            ]
            last_end = t + minutes * 60
        logs[serial] = records
    return logs


def fill(target: str, patients: int, logs: dict[str, list[dict[str, int]]], now: datetime
         ) -> tuple[int, float]:
    """The clinic's history; (records, seconds spent ingesting them page by page)."""
    with S.open_store(target, timeout_s=60) as db:
        with db.transaction():
            for p in range(patients):
                prof = S.add_profile(db, f"patient {p:05d}", birth_year=1970 + p % 30,
                                     now=START)
                S.record_screening(db, prof.id, {k: False for k in CONTRAINDICATIONS},
                                   now=now - timedelta(days=1))
            for serial in logs:
                S.upsert_pen(db, serial, paired_at=START, limits={"ceiling_um": 1500})
                S.record_service(db, serial, by_name="clinic technician",
                                 at=now - timedelta(days=2))
        total = 0
        t0 = time.perf_counter()
        for serial, records in logs.items():
            for i in range(0, len(records), MAX_PAGE_RECORDS):
                S.ingest_log_records(db, serial, records[i: i + MAX_PAGE_RECORDS], now=now)
            total += len(records)
        seconds = time.perf_counter() - t0
        # a clinic's sessions belong to the patients the permits named; here, spread evenly
        db.execute(f"UPDATE sessions SET profile_id = (id % {patients}) + 1")
    return total, seconds


def policy_times(target: str, patients: int, now: datetime, samples: int) -> list[float]:
    """Milliseconds to load one patient's history and decide, for random patients."""
    rnd = random.Random(7)
    out = []
    with S.open_store(target) as db:
        for _ in range(samples):
            pid = rnd.randint(1, patients)
            t0 = time.perf_counter()
            history = S.load_history(db, pid, pen_serial="CP-00")
            evaluate(history, SessionRequest(depth_um=500), now=now)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def _laptop(target: str, index: int, pens: list[str], patients: int, now_ts: float,
            pages: int, barrier: Any, results: Any) -> None:
    from scalppen.workflows.session import SessionPlan, SessionRefused, issue_session_permit

    rnd = random.Random(index)
    now = datetime.fromtimestamp(now_ts, UTC)
    with S.open_store(target, timeout_s=60) as db:
        starts = {p: (S.last_synced_seq(db, p) or 0) + 1 for p in pens}
        barrier.wait()
        t0 = time.perf_counter()
        records = permits = refused = 0
        rules: set[int] = set()
        for page in range(pages):
            for serial in pens:
                seq0 = starts[serial] + page * MAX_PAGE_RECORDS
                batch = [_rec(seq0 + i, RecordKind.CARTRIDGE_IN if i % 2 else
                              RecordKind.CARTRIDGE_OUT, int(now_ts) + i)
                         for i in range(MAX_PAGE_RECORDS)]
                S.ingest_log_records(db, serial, batch, now=now)
                records += len(batch)
            try:
                issue_session_permit(db, pens[0], SessionPlan(rnd.randint(1, patients), 250,
                                                              attested=True),
                                     PenLimits(), os.urandom(32), now)
                permits += 1
            except SessionRefused as no:
                refused += 1
                rules.update(r.rule for r in no.decision.refusals)
        results.put((records, permits, refused, time.perf_counter() - t0, sorted(rules)))


def laptops_at_once(target: str, pens: list[str], patients: int, now: datetime, pages: int
                    ) -> tuple[int, int, int, float, list[int]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(LAPTOPS), ctx.Queue()
    share = [pens[i::LAPTOPS] for i in range(LAPTOPS)]
    procs = [ctx.Process(target=_laptop, args=(target, i, share[i], patients, now.timestamp(),
                                                pages, barrier, results))
             for i in range(LAPTOPS)]
    for p in procs:
        p.start()
    got = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    why = sorted({r for g in got for r in g[4]})
    return (sum(g[0] for g in got), sum(g[1] for g in got), sum(g[2] for g in got),
            max(g[3] for g in got), why)


def run(engine: str, target: str, args: argparse.Namespace,
        logs: dict[str, list[dict[str, int]]]) -> dict[str, Any]:
    now = START + timedelta(days=365 * args.years + 1)
    records, seconds = fill(target, args.patients, logs, now)
    times = policy_times(target, args.patients, now, args.samples)
    q = statistics.quantiles(times, n=20)
    total, permits, refused, wall, why = laptops_at_once(target, sorted(logs), args.patients,
                                                         now, args.pages)
    print(f"  {engine}: {records:,} records ingested in {seconds:.1f} s, policy p95 "
          f"{q[18]:.2f} ms, four laptops {total / wall:,.0f} records/s", flush=True)
    return {"engine": engine, "records": records, "ingest_rps": records / seconds,
            "policy_p50": statistics.median(times), "policy_p95": q[18],
            "four_rps": total / wall, "permits": permits, "refused": refused,
            "why": ", ".join(map(str, why)) or "-"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--pens", type=int, default=20)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--samples", type=int, default=400, help="policy decisions timed")
    parser.add_argument("--pages", type=int, default=20, help="pages each laptop syncs per pen")
    args = parser.parse_args(argv)
    logs = clinic_logs(args.patients, args.pens, args.years, random.Random(20261205))
    n = sum(len(v) for v in logs.values())
    print(f"clinic benchmark: {args.patients:,} patients, {args.pens} pens, {args.years} years "
          f"({n:,} log records, {n // 3:,} sessions); {LAPTOPS} laptops at once", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run("SQLite", str(Path(tmp) / "clinic.db"), args, logs))
        with throwaway_server(Path(tmp)) as url:
            results.append(run("PostgreSQL", url, args, logs))
    print(f"  {'':<44} {'SQLite':>12} {'PostgreSQL':>12}")
    rows = [
        ("history ingest, one laptop (records/s)", "ingest_rps", "{:,.0f}"),
        ("policy: load history + decide, p50 (ms)", "policy_p50", "{:.2f}"),
        ("policy: load history + decide, p95 (ms)", "policy_p95", "{:.2f}"),
        (f"ingest, {LAPTOPS} laptops at once (records/s)", "four_rps", "{:,.0f}"),
        (f"permits issued by {LAPTOPS} laptops at once", "permits", "{:,}"),
        ("  refused (the patient was seen recently)", "refused", "{:,}"),
        ("  refusing rules", "why", "{}"),
    ]
    for label, key, fmt in rows:
        print(f"  {label:<44} {fmt.format(results[0][key]):>12} {fmt.format(results[1][key]):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
