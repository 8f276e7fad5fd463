"""The report as a clinician sees it in Chromium (issue 14 item 14).

A store with three sessions, the last one an hour ago at 0.5 mm (a 72 h wait, rule 6),
a link lost after it, the cartridge as the log sync read it (no ``scalppen wear``),
and hostile text from the pen and the user. The report is written by the real command
line, Chromium loads and lays it out, and the tests read what the page shows: the
glance at the top, the sessions table's rows, the holds as ``scalppen lockouts``
lists them, the pen's link-lost fault, the plots' marks on one time axis, and the
strings shown as text, never run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.host import chromium

from scalppen import store as S
from scalppen.policy import CONTRAINDICATIONS
from scalppen.refusals import describe
from scalppen_protocol.codes import ErrorCode, RecordKind

NOW = datetime(2026, 12, 4, 23, 16, tzinfo=UTC)
END = int(NOW.timestamp()) - 3600  # the last session ended an hour ago, at 0.5 mm
NAME = '<script>alert("name")</script>'
MODEL = '=HYPERLINK("http://evil","click")'
SERIAL = "SP<img src=x onerror=alert(1)>"
NOTES = '</td><script>alert("notes")</script>=cmd|'
#: (start, depth um, strokes, end code, tolerated) of the sessions.
SESSIONS = (
    (END - 20 * 86400 - 600, 250, 60_000, 0, True),
    (END - 10 * 86400 - 600, 500, 70_000, int(ErrorCode.CARTRIDGE_WORN), True),
    (END - 600, 500, 70_000, 0, None),
)


class _Page(HTMLParser):
    """What the page shows: table rows and headers by table class, glance items, the
    x of every plot mark, and every element's tag."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.headers: list[str] = []
        self.items: dict[str, str] = {}
        self.marks: dict[str, list[float]] = {}
        self.tags: list[str] = []
        self.attrs: set[str] = set()
        self.body: dict[str, str] = {}
        self._table = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._item = ""
        self._svg = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.attrs.update(a)
        if tag == "body":
            self.body = a
        elif tag == "table":
            self._table = a.get("class", "")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "dd":
            self._item = a.get("data-item", "")
            self.items[self._item] = ""
        elif tag == "svg":
            self._svg = a.get("class", "").replace("plot plot-", "")
            self.marks.setdefault(self._svg, [])
        elif tag == "circle" and "mark" in a.get("class", ""):
            self.marks[self._svg].append(float(a["cx"]))
        elif tag == "rect" and "mark" in a.get("class", ""):
            self.marks[self._svg].append(float(a["x"]) + float(a["width"]) / 2)

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self._cell is not None:
            self.headers.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "td" and self._row is not None and self._cell is not None:
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


def build_store(path: Path) -> None:
    """The clinic's database: what `logs sync` stored, the ratings, a screening."""
    db = S.open_store(path)
    ada = S.add_profile(db, NAME, birth_year=1985, now=NOW - timedelta(days=40))
    S.record_screening(db, ada.id, dict.fromkeys(CONTRAINDICATIONS, False),
                       now=NOW - timedelta(days=30))
    S.upsert_pen(db, SERIAL, model=MODEL, owner_profile_id=ada.id,
                 limits={"rate_max_sps": 150, "ceiling_um": 1500})
    recs = []
    for i, (start, depth, strokes, code, _) in enumerate(SESSIONS):
        recs += [
            {"seq": 2 * i + 1, "time": start, "kind": int(RecordKind.SESSION_START),
             "flags": 0, "code": 0, "depth_um": depth, "a": 900, "b": 0},
            {"seq": 2 * i + 2, "time": start + 600, "kind": int(RecordKind.SESSION_END),
             "flags": 0, "code": code, "depth_um": depth, "a": 600_000, "b": strokes},
        ]
    recs.append({"seq": 7, "time": END + 60, "kind": int(RecordKind.LINK_LOST), "flags": 0,
                 "code": int(ErrorCode.FAULT_LINK_LOST), "depth_um": 500, "a": 1000, "b": 0})
    S.ingest_log_records(db, SERIAL, recs, now=NOW)
    for session, (*_, tolerated) in zip(S.list_sessions(db), SESSIONS, strict=True):
        if tolerated is not None:
            S.set_tolerated(db, session.id, tolerated)
    S.report_adverse_event(db, ada.id, "redness", notes=NOTES, at=NOW - timedelta(days=9),
                           session_id=S.list_sessions(db)[1].id)
    # the WEAR reading `logs sync` stores with the log (no `scalppen wear`): 10,000
    # strokes left, 66 s at the pen's top rate, less than a session
    S.record_wear(db, SERIAL, {
        "cartridge": True, "cart_id": bytes.fromhex("a1b2c3d4e5f60718"), "needles": 12,
        "strokes_used": 140_000, "strokes_rated": 150_000, "first_use": END - 10 * 86400,
        "expiry": END + 300 * 86400, "cart_state": 0, "hp_strokes": 200_000,
        "hp_punctures": 2_400_000, "hp_sessions": 3, "hp_run_s": 1800,
        "hp_first_session": SESSIONS[0][0]}, at=NOW - timedelta(minutes=30))
    db.close()


def scalppen(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process, on ``home``'s database."""
    env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
    for name in ("SCALPPEN_DB", "SCALPPEN_PEN", "SCALPPEN_BLE"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "scalppen.cli", "--db", str(home / "db"),
                           *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """(the report the command line wrote, what `lockouts --json` said at the same time)."""
    home = tmp_path_factory.mktemp("clinic")
    build_store(home / "db")
    at = NOW.isoformat()
    made = scalppen(home, "report", "--now", at, "--out", str(home / "report.html"))
    assert made.returncode == 0, made.stderr + made.stdout
    locks = scalppen(home, "lockouts", "--now", at, "--json")
    assert locks.returncode == 0, locks.stderr
    return home / "report.html", json.loads(locks.stdout)


@pytest.fixture(scope="module")
def shown(report: tuple[Path, dict[str, object]]) -> _Page:
    page = _Page()
    page.feed(chromium.dump_dom(report[0]))
    return page


def test_the_sessions_table_shows_each_session(shown: _Page) -> None:
    when = [datetime.fromtimestamp(s[0], UTC).strftime("%Y-%m-%d %H:%M UTC") for s in SESSIONS]
    assert shown.rows["sessions"] == [
        [when[0], "0.25", "10.0", "60,000", "permitted time reached or stopped", "yes"],
        [when[1], "0.50", "10.0", "70,000", describe(ErrorCode.CARTRIDGE_WORN), "yes"],
        [when[2], "0.50", "10.0", "70,000", "permitted time reached or stopped", "not rated"],
    ]


def test_the_top_says_when_the_next_session_is_allowed_as_lockouts_does(
    report: tuple[Path, dict[str, object]], shown: _Page
) -> None:
    listed = report[1]["locks"]
    assert isinstance(listed, list)
    wait = next(x for x in listed if x["rule"] == 6)
    assert wait["lifts"] == "2026-12-07 22:16 UTC"  # 72 h after the 0.5 mm session's end
    assert shown.items["next"].startswith(f"from {wait['lifts']} (rule 6"), shown.items["next"]
    assert "rule 6" in shown.items["locks"] and wait["lifts"] in shown.items["locks"]
    # the Lockouts table holds what `scalppen lockouts` lists, row for row
    holds = [(r[0], int(r[1].split()[0]), r[3]) for r in shown.rows["holds"]]
    assert holds == [(x["profile"], x["rule"], x["lifts"]) for x in listed]
    assert "None recorded" not in " ".join(" ".join(r) for r in shown.rows["holds"])


def test_the_top_shows_this_month_and_the_pen_read_by_the_sync(shown: _Page) -> None:
    month = shown.items["month"]
    assert month.startswith("1 in December 2026") and "72 h" in month, month
    cart = shown.items[f"cartridge-{SERIAL}"]
    assert "140,000 of 150,000 strokes" in cart and "replace it" in cart, cart
    assert "rule 14" in cart and "1 min" in cart, cart
    hand = shown.items[f"handpiece-{SERIAL}"]
    due = datetime.fromtimestamp(SESSIONS[0][0], UTC) + timedelta(days=90)
    assert "3 sessions, 200,000 strokes" in hand and f"{due:%Y-%m-%d}" in hand, hand


def test_the_pen_log_table_has_the_lost_link_and_no_empty_column(shown: _Page) -> None:
    rows = shown.rows["pen-log"]
    assert [r[3] for r in rows] == ["LINK_LOST"], rows
    assert "link" in rows[0][5].lower()
    # no column that nothing fills (the severity column was one)
    assert "severity" not in [h.lower() for h in shown.headers]
    for table in ("sessions", "pen-log", "adverse"):
        body = [r for r in shown.rows[table] if len(r) > 1]
        assert body and all(any(r[c] for r in body) for c in range(len(body[0]))), body


def test_the_plots_mark_every_session_on_one_time_axis(shown: _Page) -> None:
    depth, strokes, interval = shown.marks["depth"], shown.marks["strokes"], shown.marks[
        "interval"]
    assert len(depth) == 3 and len(strokes) == 3 and len(interval) == 2
    assert len(shown.marks["wear"]) == 1
    assert depth == pytest.approx(strokes, abs=0.2)  # a session sits at one x in each plot
    assert interval == pytest.approx(depth[1:], abs=0.2)


def test_hostile_text_is_shown_as_text_and_never_runs(
    report: tuple[Path, dict[str, object]], shown: _Page
) -> None:
    assert "script" not in shown.tags and "img" not in shown.tags
    assert "link" not in shown.tags and "iframe" not in shown.tags
    assert [r[0] for r in shown.rows["holds"]] == [NAME]
    assert shown.rows["pens"][0][:2] == [SERIAL, MODEL] and shown.rows["pens"][0][4] == NAME
    assert [r[-1] for r in shown.rows["adverse"]] == [NOTES]
    assert shown.rows["adverse"][0][4] == shown.rows["sessions"][1][0]  # the session it followed
    assert not [a for a in shown.attrs if a in ("src", "href") or a.startswith("on")]
    # one self-contained file: nothing fetched from anywhere
    assert not re.search(r"url\(|@import", report[0].read_text())


def test_the_page_fits_1280_px_and_draws(report: tuple[Path, dict[str, object]],
                                         tmp_path: Path) -> None:
    # a copy with a measuring script (the shipped report has none)
    measure = (
        "<script>const d = document.documentElement;"
        "document.body.dataset.overflow = String(d.scrollWidth - d.clientWidth);"
        "document.body.dataset.plots = Array.from(document.querySelectorAll('svg.plot'))"
        ".map(s => Math.round(s.getBoundingClientRect().width)).join(',');</script>")
    probe = tmp_path / "measured.html"
    probe.write_text(report[0].read_text().replace("</body>", measure + "</body>"))
    page = _Page()
    page.feed(chromium.dump_dom(probe, width=1280))
    assert page.body["data-overflow"] == "0"
    widths = [int(w) for w in page.body["data-plots"].split(",")]
    assert len(widths) == 4 and min(widths) > 600, widths
    narrow = _Page()
    narrow.feed(chromium.dump_dom(probe, width=800))
    assert narrow.body["data-overflow"] == "0"
    png = chromium.screenshot(report[0], tmp_path / "report.png", width=1280, height=2000)
    assert png.stat().st_size > 20_000  # a drawn page, not a blank one
