"""Headless Chromium for tests that look at a page as a person's browser shows it.

Under CI (``CI`` set) a missing browser fails the test: ``make test`` installs it
(``tools/system_packages.sh``). On a
developer's machine without it the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find() -> str:
    """The browser's executable (fails under CI, skips elsewhere, when there is none)."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("no Chromium on this machine: make test installs Debian's chromium "
                    "(tools/system_packages.sh)")
    pytest.skip("no Chromium here (apt-get install chromium); CI always runs this check")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-extensions", *args],
        capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(page: Path, timeout: float = 90, width: int = 1280, height: int = 2000) -> str:
    """The page's DOM after Chromium loaded and laid it out in a ``width`` x ``height``
    window (scripts the page carries have run: a test may append one that measures)."""
    done = _run(["--dump-dom", f"--window-size={width},{height}", page.resolve().as_uri()],
                timeout)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-500:]
    return done.stdout


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400,
               timeout: float = 90) -> Path:
    """A PNG of the page as Chromium draws it."""
    done = _run([f"--screenshot={out}", f"--window-size={width},{height}",
                 "--hide-scrollbars", page.resolve().as_uri()], timeout)
    assert done.returncode == 0 and out.exists(), done.stderr[-500:]
    return out
