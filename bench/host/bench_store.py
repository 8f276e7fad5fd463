"""Store benchmark: five years of daily-ish sessions, then the queries policy and report use.

Run: ``python bench/host/bench_store.py [--pens N] [--years Y]``. Prints one line per
measurement. Each pen belongs to its own patient and syncs its log in pages of 160
records, as the client reads them.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
for sub in ("host", "protocol"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from scalppen import store as S  # noqa: E402
from scalppen.policy import CONTRAINDICATIONS, SessionRequest, evaluate  # noqa: E402
from scalppen.report import build_report_data, render_report  # noqa: E402
from scalppen_protocol.codes import MAX_PAGE_RECORDS, RecordKind  # noqa: E402

T = TypeVar("T")
START = datetime(2021, 3, 1, 8, 0, tzinfo=UTC)


def pen_log(years: int, rnd: random.Random) -> tuple[list[dict[str, int]], int]:
    """A pen's log over ``years``: a session every 1-3 days, 8 records each."""
    records: list[dict[str, int]] = []
    seq = 0
    t = int(START.timestamp())
    end = int((START + timedelta(days=365 * years)).timestamp())
    sessions = 0

    def add(kind: RecordKind, when: int, depth: int = 0, a: int = 0, b: int = 0) -> None:
        nonlocal seq
        records.append(
            {
                "seq": seq,
                "time": when,
                "kind": int(kind),
                "flags": 0,
                "code": 0,
                "depth_um": depth,
                "a": a,
                "b": b,
            }
        )
        seq += 1

    while t < end:
        depth = rnd.choice((250, 500, 500, 750, 1000))
        minutes = rnd.randint(8, 15)
        add(RecordKind.BOOT, t - 120)
        add(RecordKind.TIME_SET, t - 110)
        add(RecordKind.CARTRIDGE_IN, t - 100)
        add(RecordKind.ARMED, t - 60, depth)
        add(RecordKind.SESSION_START, t, depth)
        add(RecordKind.SESSION_WARN, t + 600, depth)
        add(RecordKind.SESSION_END, t + minutes * 60, depth, minutes * 60_000, minutes * 7_000)
        add(RecordKind.CARTRIDGE_OUT, t + minutes * 60 + 30)
        sessions += 1
        t += rnd.randint(1, 3) * 86400 + rnd.randint(-3600, 3600)
    return records, sessions


def timed(label: str, fn: Callable[[], T], repeat: int = 1) -> T:
    """Run ``fn`` ``repeat`` times and print the mean time."""
    t0 = time.perf_counter()
    result = fn()
    for _ in range(repeat - 1):
        fn()
    ms = (time.perf_counter() - t0) * 1000 / repeat
    print(f"  {label:<52} {ms:10.2f} ms")
    return result


def main(argv: list[str] | None = None) -> int:
    """Fill a store and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pens", type=int, default=1, help="pens (one patient each)")
    parser.add_argument("--years", type=int, default=5)
    args = parser.parse_args(argv)
    rnd = random.Random(20260301)
    now = START + timedelta(days=365 * args.years + 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        db = S.open_store(path)
        total_records = total_sessions = 0
        print(f"store benchmark: {args.pens} pen(s), {args.years} years")
        t0 = time.perf_counter()
        profile_ids: list[int] = []
        for p in range(args.pens):
            serial = f"SP-{p:04d}"
            prof = S.add_profile(db, f"patient {p}", birth_year=1980, now=START)
            profile_ids.append(prof.id)
            S.upsert_pen(db, serial, owner_profile_id=prof.id, limits={"ceiling_um": 1500})
            records, n = pen_log(args.years, rnd)
            for i in range(0, len(records), MAX_PAGE_RECORDS):
                S.ingest_log_records(db, serial, records[i : i + MAX_PAGE_RECORDS], now=now)
            for day in range(0, 365 * args.years, 7):
                S.record_wear(
                    db,
                    serial,
                    {
                        "cart_id": (day // 7).to_bytes(8, "big"),
                        "needles": 12,
                        "strokes_used": 70_000,
                        "strokes_rated": 100_000,
                        "hp_first_session": int(START.timestamp()),
                    },
                    at=START + timedelta(days=day),
                )
            S.record_screening(
                db, prof.id, {k: False for k in CONTRAINDICATIONS}, now=now - timedelta(days=1)
            )
            S.record_attestation(db, prof.id, at=now)
            total_records += len(records)
            total_sessions += n
        fill_s = time.perf_counter() - t0
        print(
            f"  {'fill (ingest in pages + derive sessions)':<52} {fill_s * 1000:10.2f} ms"
            f"  ({total_records:,} records, {total_sessions:,} sessions,"
            f" {total_records / fill_s:,.0f} records/s)"
        )
        serial, pid = "SP-0000", profile_ids[0]
        page: list[dict[str, Any]] = pen_log(1, random.Random(1))[0][:MAX_PAGE_RECORDS]
        last = S.last_synced_seq(db, serial) or 0
        for i, r in enumerate(page):
            r["seq"] = last + 1 + i
            r["time"] = int(now.timestamp()) + i
        timed(
            "ingest one new page of 160 records",
            lambda: S.ingest_log_records(db, serial, page, now=now),
        )
        timed(
            "re-ingest the same page (all duplicates)",
            lambda: S.ingest_log_records(db, serial, page, now=now),
            repeat=10,
        )
        timed("last_synced_seq", lambda: S.last_synced_seq(db, serial), repeat=200)
        history = timed(
            "load_history (patient + pen)",
            lambda: S.load_history(db, pid, pen_serial=serial),
            repeat=20,
        )
        timed(
            "evaluate (policy decision)",
            lambda: evaluate(history, SessionRequest(depth_um=500), now=now),
            repeat=50,
        )
        timed(
            "list_sessions (one patient, all years)",
            lambda: S.list_sessions(db, profile_id=pid),
            repeat=20,
        )
        timed(
            "list_sessions (last 30 days)",
            lambda: S.list_sessions(db, profile_id=pid, since=now - timedelta(days=30)),
            repeat=50,
        )
        timed(
            "cartridge_wear (latest per cartridge)", lambda: S.cartridge_wear(db, serial), repeat=20
        )
        timed(
            "list_log_records (refusals/faults, report)",
            lambda: S.list_log_records(db, serial, kinds=[4, 7, 10]),
            repeat=20,
        )
        data = timed(
            "build_report_data (one patient)",
            lambda: build_report_data(db, profile_id=pid, pen_serial=serial, now=now),
            repeat=3,
        )
        html = timed("render_report (HTML + SVG)", lambda: render_report(data), repeat=3)
        print(f"  {'report size':<52} {len(html) / 1024:10.1f} KiB")
        timed(
            "export sessions as CSV",
            lambda: S.export(db, "sessions", "csv", io.StringIO(), pen_serial=serial),
            repeat=3,
        )
        timed(
            "export log as JSON",
            lambda: S.export(db, "log", "json", io.StringIO(), pen_serial=serial),
            repeat=3,
        )
        db.close()
        print(f"  {'database size':<52} {path.stat().st_size / 1024:10.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
