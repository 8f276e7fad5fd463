"""Finding a running ``scalppen sim`` and talking to its control socket.

Each sim, once ready, registers itself in a per-user directory (owner-only), under
the TCP port of its HCI bridge: ``<port>.json`` (its pid, flash directory and
control socket) and ``<port>.sock`` (the socket). A command that reaches a pen with
``--ble bumble:tcp-client:127.0.0.1:<port>`` finds there whether that pen is a sim
on this computer, and then asks it for its virtual clock, so that the host's policy
and the pen judge by one clock whatever the sim's speed.

The control protocol is one command per line, one answer line per command:
``ok: ...`` or ``error: <what went wrong>; <what to do>`` (``help`` lists them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scalppen.paths import runtime_dir

#: How long a command waits for the sim's answer (s).
ANSWER_TIMEOUT_S = 5.0
#: The longest line either side sends.
MAX_LINE = 1024

_TCP_CLIENT = re.compile(r"^bumble:tcp-client:(127\.0\.0\.1|localhost):(\d+)$")


class SimGone(Exception):
    """The sim stopped answering on its control socket."""

    hint = "is `scalppen sim` still running? start it again"


def registry_dir() -> Path:
    """The per-user directory where running sims register (made owner-only)."""
    return runtime_dir("sims")


@dataclass(frozen=True)
class SimLink:
    """A running sim's control socket."""

    hci_port: int
    control: Path
    pid: int
    flash: str = ""

    def command(self, line: str, timeout: float = ANSWER_TIMEOUT_S) -> str:
        """Send one command line; -> the sim's one-line answer.

        Raises:
            SimGone: the socket is gone or the sim did not answer in time.
        """
        if "\n" in line or len(line) >= MAX_LINE:
            raise ValueError("one command line, shorter than 1024 characters")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.control))
                sock.sendall(line.encode() + b"\n")
                data = b""
                while not data.endswith(b"\n") and len(data) < MAX_LINE * 4:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            raise SimGone(f"the sim on port {self.hci_port} does not answer ({exc})") from None
        if not data:
            raise SimGone(f"the sim on port {self.hci_port} closed the control socket")
        return data.decode(errors="replace").strip()

    def now(self) -> datetime:
        """The sim's virtual clock (aware, UTC): what its pen's world reads."""
        answer = self.command("clock")
        m = re.match(r"^ok: \S+ (\d+(?:\.\d+)?)$", answer)
        if not m:
            raise SimGone(f"the sim answered {answer!r} to clock")
        return datetime.fromtimestamp(float(m.group(1)), UTC)


def register(hci_port: int, control: Path, flash: Path) -> Path:
    """Write this process's registration; -> its path (remove it on exit)."""
    path = registry_dir() / f"{hci_port}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "control": str(control), "hci_port": hci_port,
                   "flash": str(flash)}, f)
    os.replace(tmp, path)
    return path


def control_path(hci_port: int) -> Path:
    """Where the sim serving ``hci_port`` puts its control socket."""
    return registry_dir() / f"{hci_port}.sock"


def find_sim(ble_spec: str) -> SimLink | None:
    """The sim behind ``--ble bumble:tcp-client:127.0.0.1:PORT``, or None when that is
    not a sim running on this computer (another transport, a stale registration)."""
    m = _TCP_CLIENT.match(ble_spec)
    if not m:
        return None
    port = int(m.group(2))
    path = registry_dir() / f"{port}.json"
    try:
        doc = json.loads(path.read_text())
        link = SimLink(hci_port=int(doc["hci_port"]), control=Path(doc["control"]),
                       pid=int(doc["pid"]), flash=str(doc.get("flash", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if link.hci_port != port or not _alive(link.pid) or not link.control.exists():
        with contextlib.suppress(OSError):
            path.unlink()  # a sim that died without cleaning up
        return None
    return link


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
