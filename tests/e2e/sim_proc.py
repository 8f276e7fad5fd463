"""``scalppen sim`` as a user runs it, and the command line against it, as separate
processes: shared by the tests that drive the virtual pen from the command line."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SCALPPEN = [sys.executable, "-m", "scalppen.cli"]
BOARDS = Path(__file__).resolve().parents[2] / "hardware" / "boards"


class Sim:
    """``scalppen sim`` as a user runs it, its stdin open (button and power commands)."""

    def __init__(self, home: Path, *extra: str, flash: Path | None = None,
                 speed: str = "60") -> None:
        self.started = time.monotonic()
        env = dict(os.environ, SCALPPEN_HOME=str(home), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*SCALPPEN, "sim", "--speed", speed, "--flash", str(flash or home / "flash"),
             *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait_for(r"^ble-hci-tcp: 127\.0\.0\.1:(\d+)$").group(1))
        self.serial = self.wait_for(r"^serial: (/dev/pts/\d+)$").group(1)
        self.control_path = self.wait_for(r"^control: (\S+)$").group(1)

    def control(self, line: str, timeout: float = 60.0) -> str:
        """One command on the sim's control socket; -> its one-line answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control_path)
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.decode().strip()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 30.0, *,
                 fresh: bool = False) -> re.Match[str]:
        """The first line matching ``pattern`` (``fresh``: only lines not seen yet)."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        if not fresh:
            for line in self.seen:
                m = rx.search(line)
                if m:
                    return m
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            m = rx.search(line)
            if m:
                return m
        err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"sim never printed {pattern!r}; got {self.seen[-5:]} {err}")

    def send(self, line: str) -> None:
        """A line on the sim's stdin (``pair``, ``press``, ``power-cut``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cli_argv(home: Path, port: int, *args: str) -> list[str]:
    """The command line of ``scalppen ARGS`` against the sim on ``port``, with the
    database in ``home``."""
    return [*SCALPPEN, "--ble", f"bumble:tcp-client:127.0.0.1:{port}", "--db",
            str(home / "db"), *args]


def cli_env(home: Path) -> dict[str, str]:
    return dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")


def cli(home: Path, port: int, *args: str, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(home, port, *args), input=stdin, capture_output=True,
                          text=True, env=cli_env(home), timeout=timeout)


def cli_started(home: Path, port: int, *args: str) -> subprocess.Popen[str]:
    """``scalppen ARGS`` started and left running (its output piped)."""
    return subprocess.Popen(cli_argv(home, port, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(home))


def pair_for(sim: Sim, home: Path, patient: str = "Ada") -> tuple[str, str]:
    """Scan, pair (the passkey the pen shows typed at the prompt), give the pen to a
    new screened patient; -> (the pen's address, what ``pair`` printed)."""
    scan = cli(home, sim.port, "scan", "--timeout", "2")
    assert scan.returncode == 0, scan.stderr
    found = re.search(r"([0-9A-F]{2}(:[0-9A-F]{2}){5})", scan.stdout)
    assert found is not None, f"scan found no address: {scan.stdout!r} {scan.stderr!r}"
    address = found.group(1)
    env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
    pair = subprocess.Popen(
        [*SCALPPEN, "--ble", f"bumble:tcp-client:127.0.0.1:{sim.port}", "--db",
         str(home / "db"), "pair", address],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    passkey = sim.wait_for(r"^display: PAIR (\d{6})").group(1)
    out, err = pair.communicate(passkey + "\n", timeout=60)
    assert pair.returncode == 0, err
    assert cli(home, sim.port, "profile", "add", patient, "--birth-year", "1985").returncode == 0
    assign = cli(home, sim.port, "profile", "assign-pen", address, patient)
    assert assign.returncode == 0, assign.stderr + assign.stdout
    screen = cli(home, sim.port, "screen", "--profile", patient, "--all-no")
    assert screen.returncode == 0, screen.stderr
    return address, out
