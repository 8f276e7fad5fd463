"""docs/threat-model.md names the tests that show each control: every name must
exist, and every asset, actor and STRIDE category must appear in a row."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.test_hazards_doc import REF, _names

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "threat-model.md"
ASSETS = ("permit keys", "bonds", "the log", "the hard limits", "patient records")
ACTORS = ("the patient", "a phone the patient owns", "a stranger in radio range",
          "someone with the USB cable", "a counterfeit cartridge", "clinic staff",
          "a compromised laptop")


def _threat_rows() -> list[list[str]]:
    rows = []
    for line in PAGE.read_text().splitlines():
        if re.match(r"\| T\d+ \|", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_every_named_test_exists() -> None:
    refs = REF.findall(PAGE.read_text())
    assert len(refs) >= 30
    missing = [f"{p}::{n}" for p, n in refs if not (ROOT / p).exists() or n not in _names(p)]
    assert not missing, missing


def test_every_threat_row_names_tests_and_its_actor() -> None:
    rows = _threat_rows()
    assert len(rows) >= 12
    for cells in rows:
        assert len(cells) == 9, cells[0]
        assert REF.search(cells[8]), f"{cells[0]} names no test"
        assert cells[1] in ACTORS, f"{cells[0]}: unknown actor {cells[1]!r}"


def test_every_actor_asset_and_stride_category_appears() -> None:
    text = PAGE.read_text()
    rows = _threat_rows()
    for actor in ACTORS:
        assert any(r[1] == actor for r in rows), actor
    for asset in ASSETS:
        assert f"| {asset} |" in text, asset
    letters = {x.strip() for r in rows for x in r[3].split(",")}
    assert letters >= set("STRIDE"), letters
