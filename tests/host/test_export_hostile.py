"""Hostile strings from a rewritten pen (serial, model, cartridge) and from the user
(profile names, notes) stay inert in every export and in the report (issue 13 item 3):
a CSV cell that starts like a formula (=, +, -, @, tab, CR) is neutralised, JSON
carries the text as it is, and the HTML report escapes it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.report import write_report
from scalppen.store import DATASETS
from scalppen.store.export import neutralise
from scalppen_protocol.codes import RecordKind

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOSTILE = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
           "\t=1", "\r=1"]
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _filled(path: Path) -> S.Store:
    db = S.open_store(path)
    serial = HOSTILE[0]
    prof = S.add_profile(db, HOSTILE[3], birth_year=1985, notes=HOSTILE[2], now=NOW)
    S.upsert_pen(db, serial, model=HOSTILE[1], owner_profile_id=prof.id)
    t = int(NOW.timestamp()) - 7200
    S.ingest_log_records(db, serial, [
        {"seq": 1, "time": t, "kind": int(RecordKind.SESSION_START), "flags": 0, "code": 0,
         "depth_um": 500, "a": 900, "b": 0},
        {"seq": 2, "time": t + 600, "kind": int(RecordKind.SESSION_END), "flags": 0,
         "code": 0, "depth_um": 500, "a": 600_000, "b": 70_000}], now=NOW)
    S.record_event(db, "fault", message=HOSTILE[4], pen_serial=serial, at=NOW)
    S.report_adverse_event(db, prof.id, "redness", notes=HOSTILE[5], at=NOW)
    S.record_wear(db, serial, {
        "cartridge": True, "cart_id": b"=cmd|\x00\x01\x02", "needles": 12,
        "strokes_used": 1, "strokes_rated": 150_000, "first_use": 0, "expiry": 0,
        "cart_state": 0, "hp_strokes": 1, "hp_punctures": 12, "hp_sessions": 1,
        "hp_run_s": 1, "hp_first_session": 0}, at=NOW)
    return db


@pytest.mark.parametrize("dataset", DATASETS)
def test_no_csv_cell_starts_like_a_formula(tmp_path: Path, dataset: str) -> None:
    with _filled(tmp_path / "db") as db:
        out = io.StringIO()
        assert S.export(db, dataset, "csv", out) >= 1
        rows = list(csv.reader(io.StringIO(out.getvalue())))
        js = io.StringIO()
        S.export(db, dataset, "json", js)
    cells = [c for row in rows[1:] for c in row]
    assert cells and not [c for c in cells if c.startswith(FORMULA)], cells
    assert any(c.startswith("'") for c in cells) or dataset == "wear"  # something was hostile
    doc = json.loads(js.getvalue())
    assert doc  # JSON keeps the text as the pen sent it: no spreadsheet reads it as a formula


def test_the_neutralised_text_keeps_what_it_said() -> None:
    for text in HOSTILE:
        assert neutralise(text) == "'" + text
    assert neutralise("SP3-ABCDEF") == "SP3-ABCDEF" and neutralise(-5) == -5


def test_the_report_escapes_every_hostile_string(tmp_path: Path) -> None:
    with _filled(tmp_path / "db") as db:
        page = write_report(db, tmp_path / "r.html", now=NOW).read_text()
    assert "<script" not in page and 'href="http://x"' not in page
    assert "=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)" in page  # shown as text
