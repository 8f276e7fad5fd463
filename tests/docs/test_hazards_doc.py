"""docs/hazards.md names its evidence by test function: every name must exist.

A reference is written `` `tests/<path>.py::<name>` `` (or ``::<Class>::<method>``).
The page must cover every safety rule (1-22 of SAFETY_RULES.md) and every fault
the reliability work injects, each row with at least one test that exists.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "hazards.md"
REF = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")
RULES = range(1, 23)
#: Faults and attacks the hazard table must name (issue: reliability and security).
FAULTS = ["stall", "charger", "contact lost", "cartridge pulled", "power loss",
          "link lost", "clock jump", "malformed frame", "oversized frame",
          "request flood", "unpaired central", "wrong passkey", "replayed permit",
          "forged HMAC", "expired permit", "permit above the hard limits",
          "write point", "message boundary", "bonded central", "refusal flood",
          "rewritten", "cloned", "undated", "Just Works", "bench UART",
          "refused START", "auto power-off", "deep sleep"]


@cache
def _names(path: str) -> frozenset[str]:
    """Top-level functions and classes of a test file, and Class::method pairs."""
    tree = ast.parse((ROOT / path).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{item.name}")
        if isinstance(node, ast.Assign):  # e.g. TestMachine = Machine.TestCase
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


def _rows() -> list[str]:
    return [line for line in PAGE.read_text().splitlines() if line.startswith("| ")]


def test_every_named_test_exists() -> None:
    refs = REF.findall(PAGE.read_text())
    assert len(refs) >= 60, "the hazard table names too few tests"
    missing = [f"{p}::{n}" for p, n in refs
               if not (ROOT / p).is_file() or n not in _names(p)]
    assert not missing, f"docs/hazards.md names tests that do not exist: {missing}"


def test_every_named_test_is_collected_by_pytest() -> None:
    # A helper that is not a test (no test_ prefix, no Test class) proves nothing.
    refs = REF.findall(PAGE.read_text())
    odd = [f"{p}::{n}" for p, n in refs
           if not (n.startswith("test_") or n.startswith("Test"))]
    assert not odd, f"not pytest tests: {odd}"
    assert all(Path(p).name.startswith("test_") for p, _ in refs)


def test_every_safety_rule_has_a_row_with_tests() -> None:
    rows = _rows()
    for rule in RULES:
        mine = [r for r in rows if r.startswith(f"| R{rule} ")]
        assert mine, f"rule {rule} has no row in docs/hazards.md"
        assert any(REF.search(r) for r in mine), f"rule {rule}'s row names no test"


def test_every_fault_is_covered_by_a_row_with_tests() -> None:
    rows = [r for r in _rows() if REF.search(r)]
    for fault in FAULTS:
        assert any(fault.lower() in r.lower() for r in rows), \
            f"no hazard row with tests mentions {fault!r}"


def test_write_point_table_is_the_one_the_firmware_test_keeps() -> None:
    # The page holds a copy of `python tests/firmware/writepoints_table.py`; the
    # firmware test keeps that table equal to what the firmware writes.
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "firmware"))
    from test_write_points import write_point_rows
    from writepoints_table import markdown

    assert markdown(write_point_rows()) in PAGE.read_text(), (
        "docs/hazards.md: paste the output of python tests/firmware/writepoints_table.py")
