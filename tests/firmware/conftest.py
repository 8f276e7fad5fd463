"""Firmware core tests under CPython: tests/firmware holds the shared rig, plant and
fs stand-ins (MicroPython-compatible, also used inside the VM)."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT / "firmware"), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import rig  # noqa: E402

rig.board_doc(str(ROOT / "hardware" / "boards" / "pen-s3-revb.json"))


@pytest.fixture
def r():
    from memfs import MemFs

    return rig.Rig(MemFs())
