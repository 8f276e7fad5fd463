"""Who is at this laptop: its room and its user, stamped on the rows that matter.

In a clinic several laptops share one database; each row that changes what a
patient may do (a permit, a clearance, an adverse event, a screening, a session's
rating) records the room it was made in and the user who made it. The room is
``SCALPPEN_ROOM``, else what ``scalppen db room NAME`` set for this toolkit home,
else the computer's name; the user is ``SCALPPEN_USER``, else the login name.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import Final

from scalppen import paths

#: The longest room or user name kept.
MAX_NAME: Final = 80


def room_file() -> Path:
    return paths.home() / "room"


def room() -> str:
    """This laptop's room."""
    named = os.environ.get("SCALPPEN_ROOM", "").strip()
    if not named:
        try:
            named = room_file().read_text(encoding="utf-8").strip()
        except OSError:
            named = ""
    return (named or socket.gethostname() or "unknown")[:MAX_NAME]


def set_room(name: str) -> str:
    """Name this laptop's room (kept in the toolkit's home)."""
    clean = " ".join(name.split())[:MAX_NAME]
    if not clean:
        raise ValueError("a room needs a name")
    room_file().write_text(clean + "\n", encoding="utf-8")
    return clean


def user() -> str:
    """Who runs the toolkit."""
    named = os.environ.get("SCALPPEN_USER", "").strip()
    if not named:
        try:
            named = getpass.getuser()
        except (KeyError, OSError):
            named = f"uid {os.getuid()}"
    return named[:MAX_NAME]


def current() -> tuple[str, str]:
    """(room, user) for the store's audit columns."""
    return room(), user()
