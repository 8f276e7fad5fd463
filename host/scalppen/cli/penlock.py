"""One command at a time on a pen: an exclusive lock per pen on this computer.

A second command that wants the pen (another terminal's ``status`` during a
session) would take the link over: the session's command loses its link and the
pen pauses or, worse, runs on until its link-loss timeout. Each command that
connects holds ``<runtime dir>/scalppen-locks-<uid>/<pen>.lock`` (``flock``:
released by the system when the process ends, so a crash never leaves a stale lock);
a second one is told the pen is busy and by whom. The locks live in the user's
runtime directory (``XDG_RUNTIME_DIR``, else the temporary directory), not in
SCALPPEN_HOME: one pen is one pen whichever database a command uses, and a
read-only home still lets commands reach the pen.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from scalppen.cli.common import UsageError
from scalppen.paths import runtime_dir


def lock_dir() -> Path:
    """The per-user directory of the pens' locks (owner-only)."""
    return runtime_dir("locks")


def lock_path(pen: str) -> os.PathLike[str]:
    locks = lock_dir()
    return locks / (re.sub(r"[^A-Za-z0-9_.-]", "_", pen) + ".lock")


@contextlib.contextmanager
def pen_lock(pen: str) -> Iterator[None]:
    """Hold the pen for this process; UsageError if another process holds it."""
    fd = os.open(lock_path(pen), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise UsageError(
                f"pen {pen} is busy: another scalppen command (pid {holder}) is using it",
                "wait for it to finish, or stop that command",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
