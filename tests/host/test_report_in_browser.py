"""The report as a clinician sees it in Chromium (issue 14 item 14): the sessions
table's rows, the active 72 h lockout at the top, link-lost faults, the plots with
their marks, and the cartridge read by a log sync alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from tests.host import chromium

from scalppen import store as S
from scalppen.report import write_report
from scalppen_protocol.codes import ErrorCode, RecordKind

NOW = datetime(2026, 12, 4, 23, 16, tzinfo=UTC)
END = int(NOW.timestamp()) - 3600  # a 0.5 mm session an hour ago: 72 h to wait


class _Page(HTMLParser):
    """What the page shows: table rows by table class, glance items, svg marks."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.items: dict[str, str] = {}
        self.marks: dict[str, int] = {}
        self._table = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._item = ""
        self._svg = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("class") or ""
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = []
        elif tag == "dd":
            self._item = a.get("data-item") or ""
            self.items[self._item] = ""
        elif tag == "svg":
            self._svg = (a.get("class") or "").replace("plot plot-", "")
            self.marks.setdefault(self._svg, 0)
        elif tag in ("circle", "rect") and "mark" in (a.get("class") or ""):
            self.marks[self._svg] = self.marks.get(self._svg, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row:
            self.rows.setdefault(self._table, []).append(self._row)
            self._row = None
        elif tag == "dd":
            self._item = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._item:
            self.items[self._item] += data


def _store(path: Path) -> None:
    db = S.open_store(path)
    ada = S.add_profile(db, "Ada <b>", birth_year=1985, now=NOW)
    S.upsert_pen(db, "SP3-0001", model="=HYPERLINK(1)", owner_profile_id=ada.id,
                 limits={"rate_max_sps": 150, "ceiling_um": 1500})
    recs = []
    for i, (start, depth, strokes) in enumerate(((END - 10 * 86400, 250, 60_000),
                                                 (END - 600, 500, 70_000))):
        recs += [
            {"seq": 2 * i + 1, "time": start, "kind": int(RecordKind.SESSION_START),
             "flags": 0, "code": 0, "depth_um": depth, "a": 900, "b": 0},
            {"seq": 2 * i + 2, "time": start + 600, "kind": int(RecordKind.SESSION_END),
             "flags": 0, "code": 0, "depth_um": depth, "a": 600_000, "b": strokes},
        ]
    recs.append({"seq": 5, "time": END + 60, "kind": int(RecordKind.LINK_LOST), "flags": 0,
                 "code": int(ErrorCode.FAULT_LINK_LOST), "depth_um": 500, "a": 1000, "b": 0})
    S.ingest_log_records(db, "SP3-0001", recs, now=NOW)
    S.set_tolerated(db, S.list_sessions(db)[0].id, True)
    # the wear a log sync stores (no `scalppen wear`): a cartridge near its end
    S.record_wear(db, "SP3-0001", {
        "cartridge": True, "cart_id": bytes.fromhex("2d31323334353637"), "needles": 12,
        "strokes_used": 140_000, "strokes_rated": 150_000, "first_use": END - 700,
        "expiry": END + 300 * 86400, "cart_state": 0, "hp_strokes": 130_000,
        "hp_punctures": 1_560_000, "hp_sessions": 2, "hp_run_s": 1200,
        "hp_first_session": END - 10 * 86400}, at=NOW)
    db.close()


def test_the_report_shows_what_a_clinic_reads_first(tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    _store(db_path)
    with S.open_store(db_path) as db:
        page = write_report(db, tmp_path / "report.html", now=NOW)
    html = page.read_text()
    # one self-contained file: no script, no stylesheet or image fetched from anywhere
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=""", html)
    shown = _Page()
    shown.feed(chromium.dump_dom(page))
    sessions = shown.rows["sessions"]
    assert [r[1] for r in sessions] == ["0.25", "0.50"]
    assert [r[3] for r in sessions] == ["60,000", "70,000"] and sessions[0][5] == "yes"
    assert all(r[4] for r in sessions)  # an end reason each
    nxt = shown.items["next"]
    assert "2026-12-07" in nxt and "rule 6" in nxt, nxt  # 72 h after 22:16
    holds = shown.rows["holds"]
    assert any(r[1].startswith("6 ") for r in holds), holds
    assert any("link" in " ".join(r).lower() for r in shown.rows[""]), shown.rows[""]
    assert "replace it" in shown.items["cartridge-SP3-0001"]
    assert shown.marks["depth"] == 2 and shown.marks["strokes"] == 2
    assert "Ada <b>" in " ".join(" ".join(r) for r in sessions) or "Ada <b>" in html.replace(
        "&lt;", "<").replace("&gt;", ">")
    png = chromium.screenshot(page, tmp_path / "report.png")
    assert png.stat().st_size > 20_000  # a drawn page, not a blank one
