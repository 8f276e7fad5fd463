"""Fixtures of the flashing tests: a small firmware tree, bundles, a blank pen (the
twin: a MicroPython process whose USB serial is its REPL; see twinboard.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalppen.flash.build import Manifest, build_bundle
from tests.flash.twinboard import TwinBoard

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
BOARD = ROOT / "hardware" / "boards" / "pen-s3-revb.json"

APP = '''# test app: says which slot it runs from, then reports a good start
from pen import bootok, version
def run():
    print("APP", bootok.active_slot(), version.VERSION, {tag!r})
    bootok.mark_good()
'''


def make_tree(dest: Path, tag: str = "v1", extra: dict[str, str] | None = None,
              broken: bool = False) -> Path:
    """A firmware tree: the real boot.py, main.py and pen/bootok.py, plus a tiny app."""
    (dest / "pen").mkdir(parents=True, exist_ok=True)
    for name in ("boot.py", "main.py"):
        shutil.copy(FIRMWARE / name, dest / name)
    shutil.copy(FIRMWARE / "pen" / "bootok.py", dest / "pen" / "bootok.py")
    (dest / "pen" / "__init__.py").write_text("")
    (dest / "pen" / "version.py").write_text('VERSION = "1.0.0"\n')
    app = APP.format(tag=tag)
    if broken:  # says which start this is (main.py counted it), then fails
        app = ("print('TRY', open('/bootcount').read())\n"
               "raise ImportError('broken build ' + " + repr(tag) + ")\n" + app)
    (dest / "pen" / "app.py").write_text(app)
    # some bulk, so transfers take several chunks
    (dest / "pen" / "table.py").write_text(
        "T = " + repr([i * 7919 % 10007 for i in range(3000)]) + "\n")
    for rel, text in (extra or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest


def make_bundle(tmp: Path, name: str, **kw: object) -> tuple[Path, Manifest]:
    tree = make_tree(tmp / f"src-{name}", **kw)  # type: ignore[arg-type]
    out = tmp / f"bundle-{name}"
    return out, build_bundle(tree, out, BOARD)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[TwinBoard]:
    """A blank pen (only board.json on its flash) in its REPL, on a serial port."""
    b = TwinBoard(tmp_path / "flash")
    yield b
    b.stop()
