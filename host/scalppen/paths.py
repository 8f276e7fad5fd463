"""Where the toolkit keeps its files on this computer.

``SCALPPEN_HOME`` (default ``~/.local/share/scalppen``) holds the database, the
BLE bonds of the bumble stack and the reports. The repository's firmware and board
files are found next to the installed sources.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
BOARDS_DIR = REPO_ROOT / "hardware" / "boards"


def home() -> Path:
    """The toolkit's data directory (created 0700 on first use)."""
    base = os.environ.get("SCALPPEN_HOME")
    path = Path(base) if base else Path.home() / ".local" / "share" / "scalppen"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def runtime_dir(name: str) -> Path:
    """A per-user directory for what lives only while processes run (locks, the
    registry of running sims): ``$XDG_RUNTIME_DIR`` or the temporary directory, then
    ``scalppen-<name>-<uid>``, owner-only."""
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"scalppen-{name}-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def default_db() -> str:
    """``SCALPPEN_DB`` (a file or a ``postgresql://`` URL, never taken for a path), else
    the SQLite file in the toolkit's home."""
    return os.environ.get("SCALPPEN_DB") or str(home() / "scalppen.db")


def keystore() -> Path:
    """JSON file of BLE bonds for the bumble stack (the OS stack keeps its own)."""
    return home() / "bumble-bonds.json"


def reports_dir() -> Path:
    path = home() / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path
