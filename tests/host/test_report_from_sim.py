"""The report of a pen used as the README says (issue 14 item 14), against
``scalppen sim`` through the real command line: the cartridge shown after a log sync
alone (no ``scalppen wear``), and after a session the sessions table and the 72 h wait
at the top, the same as ``scalppen lockouts`` says on the sim's clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.e2e.sim_proc import Sim, cli, pair_for
from tests.host import chromium
from tests.host.test_report_in_browser import _Page

pytestmark = pytest.mark.timeout(240)


def _shown(home: Path, port: int, name: str) -> _Page:
    out = home / name
    made = cli(home, port, "report", "--out", str(out))
    assert made.returncode == 0, made.stderr + made.stdout
    page = _Page()
    page.feed(chromium.dump_dom(out))
    return page


def test_the_report_of_a_sim_pen(tmp_path: Path) -> None:
    chromium.find()  # before the sim: fails under CI, skips elsewhere, when there is none
    sim = Sim(tmp_path)
    try:
        pair_for(sim, tmp_path)
        sync = cli(tmp_path, sim.port, "logs", "sync")
        assert sync.returncode == 0, sync.stderr
        first = _shown(tmp_path, sim.port, "synced.html")
        cart = [v for k, v in first.items.items() if k.startswith("cartridge-")]
        assert len(cart) == 1 and "0 of 150,000 strokes" in cart[0], first.items
        assert first.items["next"].startswith("now"), first.items
        assert first.rows["sessions"] == [["None recorded."]]

        run = cli(tmp_path, sim.port, "session", "start", "--depth", "0.5", "--minutes", "1",
                  "--sterilised", timeout=120)
        assert run.returncode == 0, run.stderr + run.stdout
        after = _shown(tmp_path, sim.port, "after.html")
        locks = json.loads(cli(tmp_path, sim.port, "lockouts", "--json").stdout)["locks"]
    finally:
        sim.stop()
    (row,) = after.rows["sessions"]
    assert row[1] == "0.50" and float(row[2]) <= 1.0 and int(row[3].replace(",", "")) > 0
    assert row[4] == "permitted time reached or stopped" and row[5] == "not rated"
    wait = next(x for x in locks if x["rule"] == 6)
    assert after.items["next"].startswith(f"from {wait['lifts']} (rule 6"), after.items
    assert [(r[0], int(r[1].split()[0]), r[3]) for r in after.rows["holds"]] == [
        (x["profile"], x["rule"], x["lifts"]) for x in locks]
    assert len(after.marks["depth"]) == 1 and len(after.marks["strokes"]) == 1
