"""Files that hold keys or health data are the owner's alone.

The toolkit runs with a umask of 077 (``scalppen.cli.main``), so every file it or
its libraries write (the database, bumble's bond file, exports, reports) is created
owner-only. One found readable by others (copied in, or made by an older version:
bumble's bond file used to be 0644) is refused with one line saying how to fix it,
as the database already is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Every file the toolkit creates is owner-only.
UMASK = 0o077


class NotPrivate(Exception):
    """A file holding keys or health data can be read by other users."""

    def __init__(self, path: Path, what: str, mode: int) -> None:
        super().__init__(f"{path} ({what}) can be read by other users (mode {mode:o})")
        self.hint = f"run 'chmod 600 {path}' and try again"


def mode_of(path: Path) -> int | None:
    """The permission bits of ``path`` (None if it does not exist)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def check_private(path: Path, what: str) -> None:
    """Raise NotPrivate when ``path`` exists and group or others may access it."""
    mode = mode_of(path)
    if mode is not None and os.name == "posix" and mode & 0o077:
        raise NotPrivate(path, what, mode)
