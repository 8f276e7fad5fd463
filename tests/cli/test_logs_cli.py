"""``logs show`` and ``logs export`` on a store filled through the store's API."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scalppen import store as S
from scalppen.cli import storage
from scalppen_protocol.codes import ErrorCode, RecordKind

Invoke = Callable[..., Any]  # the ``cli`` fixture of conftest.py

T0 = int(datetime(2026, 3, 1, 9, 0, tzinfo=UTC).timestamp())


def rec(seq: int, kind: RecordKind, t: int, depth: int = 0, **kw: int) -> dict[str, int]:
    fields = {"flags": 0, "code": 0, "a": 0, "b": 0} | kw
    return {"seq": seq, "time": t, "kind": int(kind), "depth_um": depth, **fields}


RECORDS = [
    rec(1, RecordKind.BOOT, 0),
    rec(2, RecordKind.TIME_SET, T0, a=T0),
    rec(3, RecordKind.ARMED, T0 + 10, 750, a=900, b=T0 + 310),
    rec(4, RecordKind.SESSION_START, T0 + 20, 750, a=900, b=1170),
    rec(5, RecordKind.SESSION_END, T0 + 620, 750, a=600_000, b=70_000),
    # seq 6-7 never read: a gap
    rec(8, RecordKind.START_REFUSED, T0 + 700, 750, code=int(ErrorCode.INTERVAL_LOCKOUT)),
    rec(9, RecordKind.FAULT, T0 + 800, 750, code=int(ErrorCode.FAULT_STALL)),
]


@pytest.fixture
def filled(db_path: Path) -> Path:
    with S.open_store(db_path) as db:
        S.upsert_pen(db, "SP-1", model="home")
        S.ingest_log_records(db, "SP-1", RECORDS, from_seq=1)
        S.record_event(
            db, "fault", code=int(ErrorCode.FAULT_STALL), message="motor stalled", pen_serial="SP-1"
        )
    return db_path


def test_logs_show_in_plain_words_with_the_gap(cli: Invoke, filled: Path) -> None:
    run = cli("logs", "show")
    assert run.exit_code == 0, run.output
    for words in (
        "pen started",
        "clock unset",
        "session ended",
        "10.0 min of needling",
        "70000 strokes",
        "start refused",
        "too soon after the last session",
        "fault: the motor stalled",
        "0.75 mm",
    ):
        assert words in run.output, words
    assert "6-7" in run.output and "2 records missing" in run.output
    assert "seq 6-7" in run.output


def test_logs_show_filters_by_kind_and_last(cli: Invoke, filled: Path) -> None:
    faults = cli("logs", "show", "--kind", "fault", "--pen", "SP-1")
    assert faults.exit_code == 0, faults.output
    assert "the motor stalled" in faults.output and "session ended" not in faults.output
    last = cli("logs", "show", "--last", "2")
    assert "showing the last 2 of 7 records" in last.output
    assert "pen started" not in last.output


def test_logs_show_unknown_kind_is_one_line(cli: Invoke, db_path: Path) -> None:
    run = cli("logs", "show", "--kind", "sneeze")
    assert run.exit_code == 2
    line = run.one_line_error()
    assert "unknown record kind 'sneeze'" in line and "session-end" in line
    assert not db_path.exists()


def test_logs_show_empty_store(cli: Invoke) -> None:
    run = cli("logs", "show")
    assert run.exit_code == 0
    assert "no log records stored" in run.output


def test_export_log_as_csv_and_json_files(cli: Invoke, filled: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "log.csv"
    run = cli("logs", "export", "csv", "--dataset", "log", "--out", str(out_csv))
    assert run.exit_code == 0, run.output
    assert "wrote 7 log rows" in run.output
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8"))))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3, 4, 5, 8, 9]
    assert rows[0]["time"] == "" and rows[1]["time"].startswith("2026-03-01T09:00:00")
    assert os.stat(out_csv).st_mode & 0o077 == 0

    out_json = tmp_path / "sessions.json"
    run = cli("logs", "export", "json", "--dataset", "sessions", "--out", str(out_json))
    assert run.exit_code == 0, run.output
    sessions = json.loads(out_json.read_text(encoding="utf-8"))
    assert len(sessions) == 1
    assert sessions[0]["depth_um"] == 750 and sessions[0]["strokes"] == 70_000


def test_export_to_standard_output(cli: Invoke, filled: Path) -> None:
    run = cli("logs", "export", "json", "--dataset", "events")
    assert run.exit_code == 0, run.output
    events = json.loads(run.stdout)
    assert [e["message"] for e in events] == ["motor stalled"]
    wear = cli("logs", "export", "CSV", "--dataset", "wear")
    assert wear.exit_code == 0
    assert wear.stdout.splitlines()[0].startswith("id,pen_serial,at,")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("xml", "--dataset", "log"), "unknown export format 'xml' (choose one of csv, json)"),
        (("csv", "--dataset", "logs"), "unknown data set 'logs'"),
    ],
)
def test_export_bad_arguments_are_one_line_before_the_database(
    cli: Invoke, db_path: Path, args: tuple[str, ...], words: str
) -> None:
    run = cli("logs", "export", *args)
    assert run.exit_code == 2
    assert words in run.one_line_error()
    assert not db_path.exists()


def test_corrupt_database_is_one_line(cli: Invoke, db_path: Path) -> None:
    db_path.write_bytes(os.urandom(4096))
    db_path.chmod(0o600)
    for args in (("logs", "show"), ("logs", "export", "csv", "--dataset", "log")):
        run = cli(*args)
        assert run.exit_code == 1
        assert "not a scalppen database" in run.one_line_error()


def test_locked_database_is_one_line(
    cli: Invoke, filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "LOCK_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(filled, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        run = cli("logs", "export", "json", "--dataset", "log")
        assert run.exit_code == 1
        assert "locked by another program" in run.one_line_error()
    finally:
        holder.close()


def test_export_defaults_to_sessions_and_names_the_kinds(cli: Invoke, filled: Path) -> None:
    sessions = cli("logs", "export", "csv")  # issue 14 item 13: a default data set
    assert sessions.exit_code == 0, sessions.output
    assert sessions.stdout.splitlines()[0].startswith("id,pen_serial,")
    log = cli("logs", "export", "csv", "--dataset", "log")
    kinds = [row["kind"] for row in csv.DictReader(io.StringIO(log.stdout))]
    assert kinds[:3] == ["boot", "time_set", "armed"] and "session_end" in kinds


def test_logs_show_fits_80_columns_and_has_json(filled: Path, db_path: Path) -> None:
    import subprocess
    import sys

    env = dict(os.environ, COLUMNS="80", SCALPPEN_HOME=str(db_path.parent))
    done = subprocess.run([sys.executable, "-m", "scalppen.cli", "--db", str(db_path), "logs",
                           "show"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "session" in done.stdout and "missing" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80, done.stdout
    js = subprocess.run([sys.executable, "-m", "scalppen.cli", "--db", str(db_path), "logs",
                         "show", "--json"], capture_output=True, text=True, env=env, timeout=60)
    doc = json.loads(js.stdout)
    assert [r["kind"] for r in doc["records"]][-1] == "fault" and doc["gaps"]["SP-1"] == [[6, 7]]
