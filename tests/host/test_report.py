"""The HTML report: self-contained, with the plots and tables, all text escaped."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.host.clinicians import clear_lock, trusted_clinician

from scalppen import store as S
from scalppen.policy import CONTRAINDICATIONS, adverse_lock_id
from scalppen.report import write_report
from scalppen.report_svg import budget_bars_svg, time_series_svg
from scalppen_protocol.codes import ErrorCode, RecordKind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = int(NOW.timestamp()) - 40 * 86400
EVIL = '<script>alert("x")</script> & Co'


def rec(seq: int, kind: int, t: int, depth: int = 0, a: int = 0, b: int = 0, code: int = 0) -> dict:
    return {
        "seq": seq,
        "time": t,
        "kind": kind,
        "flags": 0,
        "code": code,
        "depth_um": depth,
        "a": a,
        "b": b,
    }


def filled_store(path: Path) -> tuple[S.Store, int]:
    db = S.open_store(path)
    ann = S.add_profile(db, EVIL, birth_year=1990, now=NOW)
    S.upsert_pen(db, "SP-1", model=EVIL, owner_profile_id=ann.id)
    records = []
    seq = 1
    for i, depth in enumerate([500, 500, 750, 750, 1000]):
        start = T0 + i * 4 * 86400 - (86400 * 2 if i == 2 else 0)
        records += [
            rec(seq, RecordKind.SESSION_START, start, depth),
            rec(seq + 1, RecordKind.SESSION_END, start + 600, depth, a=600_000, b=70_000 + i),
        ]
        seq += 2
    records.append(
        rec(seq, RecordKind.START_REFUSED, T0 + 30 * 86400, 0, code=ErrorCode.INTERVAL_LOCKOUT)
    )
    S.ingest_log_records(db, "SP-1", records, now=NOW)
    S.record_screening(
        db, ann.id, {k: False for k in CONTRAINDICATIONS}, now=NOW - timedelta(days=2)
    )
    ev = S.report_adverse_event(db, ann.id, "oozing", notes=EVIL, at=NOW - timedelta(days=1))
    doc = trusted_clinician(db, "Dr <b>Lee</b>", at=NOW - timedelta(days=3))
    clear_lock(db, doc, adverse_lock_id(ev.id), ann, at=NOW, reason=EVIL)
    S.record_wear(
        db,
        "SP-1",
        {
            "cartridge": 1,
            "cart_id": b"\xaa" * 8,
            "needles": 12,
            "strokes_used": 120_000,
            "strokes_rated": 100_000,
        },
        at=NOW,
    )
    return db, ann.id


def test_report_has_the_plots_and_tables(tmp_path: Path) -> None:
    db, ann = filled_store(tmp_path / "pen.db")
    with db:
        out = write_report(db, tmp_path / "r" / "report.html", profile_id=ann, now=NOW)
    assert out == tmp_path / "r" / "report.html"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for kind in ("depth", "interval", "strokes", "wear"):
        assert f'class="plot plot-{kind}"' in html
    assert html.count('class="mark"') >= 5 + 4 + 5 + 1
    assert "Lockouts" in html and "Adverse events" in html and "Screenings" in html
    assert "INTERVAL_LOCKOUT" in html  # the pen's own refusal
    assert "signed by Dr &lt;b&gt;Lee&lt;/b&gt; (key " in html
    assert "120 %" in html  # the worn-out cartridge, over budget
    assert "#c53030" in html  # the session taken too soon is marked
    assert not re.search(r"<(link|img|iframe)\b|src=|https?://(?!www\.w3\.org/2000/svg)", html)


def test_report_escapes_all_text(tmp_path: Path) -> None:
    db, _ = filled_store(tmp_path / "pen.db")
    with db:
        html = write_report(db, tmp_path / "report.html", now=NOW).read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in html
    assert "<b>Lee</b>" not in html and "Dr &lt;b&gt;Lee&lt;/b&gt;" in html


def test_report_of_an_empty_store(tmp_path: Path) -> None:
    with S.open_store(tmp_path / "pen.db") as db:
        html = write_report(db, tmp_path / "report.html", now=NOW).read_text()
    assert "No data yet." in html and "None recorded." in html


def test_svg_helpers_escape_and_mark() -> None:
    pts = [(NOW, 1.0), (NOW + timedelta(days=1), 2.0)]
    svg = time_series_svg("t", "<T>", pts, y_label="a&b", style="bars", alerts=[False, True])
    assert "&lt;T&gt;" in svg and "a&amp;b" in svg and svg.count('class="mark"') == 2
    bars = budget_bars_svg("w", "W", [("<c>", 50, 100)])
    assert "&lt;c&gt;" in bars and "50 %" in bars
