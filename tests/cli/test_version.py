"""``scalppen --version`` (issue 14, item 13): the toolkit, firmware and protocol versions,
each from its one source (pyproject, firmware/pen/version.py, the protocol's codes)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from scalppen_protocol.codes import PROTOCOL_VERSION

FIRMWARE_VERSION = Path(__file__).resolve().parents[2] / "firmware" / "pen" / "version.py"


def test_version_names_the_toolkit_the_firmware_and_the_protocol() -> None:
    run = subprocess.run([sys.executable, "-m", "scalppen.cli", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    fw = re.search(r'VERSION = "([^"]+)"', FIRMWARE_VERSION.read_text())
    assert fw is not None
    assert run.stdout.strip() == (f"scalppen {version('scalppen')} (firmware {fw.group(1)}, "
                                  f"protocol {PROTOCOL_VERSION})")
