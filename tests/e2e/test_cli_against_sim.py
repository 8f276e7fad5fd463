"""The ``scalppen`` command line, as separate processes, against ``scalppen sim``.

The virtual pen runs in its own process; every command reaches it over the HCI TCP
bridge (``--ble bumble:tcp-client:...``), exactly as with a USB BLE dongle.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

SCALPPEN = [sys.executable, "-m", "scalppen.cli"]
BOARDS = Path(__file__).resolve().parents[2] / "hardware" / "boards"


class Sim:
    """``scalppen sim`` as a user runs it, its stdin open (button and power commands)."""

    def __init__(self, home: Path, *extra: str, flash: Path | None = None,
                 speed: str = "60") -> None:
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


@pytest.fixture()
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def cli(home: Path, port: int, *args: str, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [*SCALPPEN, "--ble", f"bumble:tcp-client:127.0.0.1:{port}", "--db", str(home / "db"),
         *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=timeout,
    )


def pair_for(sim: Sim, home: Path, patient: str = "Ada") -> tuple[str, str]:
    """Scan, pair (the passkey the pen shows typed at the prompt), give the pen to a
    new screened patient; -> (the pen's address, what ``pair`` printed)."""
    scan = cli(home, sim.port, "scan", "--timeout", "2")
    assert scan.returncode == 0, scan.stderr
    address = re.search(r"([0-9A-F]{2}(:[0-9A-F]{2}){5})", scan.stdout).group(1)  # type: ignore[union-attr]
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


def test_whole_story_from_the_command_line(sim: Sim, tmp_path: Path) -> None:
    home = tmp_path
    _address, out = pair_for(sim, home)
    assert "paired with" in out and "permit key set" in out

    status = cli(home, sim.port, "status")
    assert status.returncode == 0, status.stderr
    assert "idle" in status.stdout and "inserted" in status.stdout

    run = cli(home, sim.port, "session", "start", "--depth", "0.5", "--minutes", "1",
              "--sterilised", timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "session ended" in run.stdout and "0.50 mm" in run.stdout

    assert "scalppen session rate" in run.stdout  # no terminal: says how to record tolerance
    rate = cli(home, sim.port, "session", "rate", "--tolerated")
    assert rate.returncode == 0, rate.stderr
    assert "0.50 mm): tolerated" in rate.stdout

    sync = cli(home, sim.port, "logs", "sync")
    assert sync.returncode == 0, sync.stderr
    assert "0 new" in sync.stdout  # the session already synced everything: stored once

    wear = cli(home, sim.port, "wear")
    assert wear.returncode == 0, wear.stderr
    assert "of 150,000 rated" in wear.stdout

    again = cli(home, sim.port, "session", "start", "--depth", "0.5", "--minutes", "1",
                "--sterilised")
    assert again.returncode == 3
    assert "rule 6" in again.stdout and "lifts" in again.stdout

    report = cli(home, sim.port, "report", "--out", str(home / "r.html"))
    assert report.returncode == 0, report.stderr
    assert (home / "r.html").read_text().count("<svg") >= 3


def test_a_cartridge_too_worn_for_the_session_is_refused_before_arming(tmp_path: Path) -> None:
    # Issue 14 item 4: a board rating its cartridges 100,000 strokes (the old
    # default). 15 minutes at 116 strokes/s would need 104,400; at the top of the
    # window 135,000. The host refuses before any permit, with the minutes left.
    doc = json.loads((BOARDS / "pen-s3-revb.json").read_text())
    doc["limits"]["cartridge_rated_strokes"] = 100000
    board = tmp_path / "rated-100k.json"
    board.write_text(json.dumps(doc))
    sim = Sim(tmp_path, "--board", str(board))
    try:
        pair_for(sim, tmp_path)
        run = cli(tmp_path, sim.port, "session", "start", "--depth", "0.5", "--sterilised")
        assert run.returncode == 3, run.stderr + run.stdout
        assert "rule 14" in run.stdout and "11 min" in run.stdout, run.stdout
        assert "session ended" not in run.stdout
        status = cli(tmp_path, sim.port, "status")
        assert status.returncode == 0, status.stderr
        assert "idle" in status.stdout  # never armed: no permit was spent on it
        short = cli(tmp_path, sim.port, "session", "start", "--depth", "0.5", "--minutes", "1",
                    "--sterilised", timeout=120)
        assert short.returncode == 0, short.stderr + short.stdout
        assert "session ended (permitted time reached)" in short.stdout
    finally:
        sim.stop()


def test_bad_arguments_fail_before_connecting(tmp_path: Path) -> None:
    # Port 9 is closed: any connection attempt would fail differently (and slowly).
    for args, needle in (
        (("session", "start", "--depth", "0.6", "--sterilised"), "0.25 mm grid"),
        (("session", "start", "--depth", "3", "--sterilised"), "ceiling"),
        (("session", "start", "--depth", "abc", "--sterilised"), "not a number"),
        (("pair", "not-an-address"), "not a Bluetooth address"),
        (("status",), "no paired pen"),
    ):
        res = cli(tmp_path, 9, *args)
        assert res.returncode != 0
        text = res.stdout + res.stderr
        assert needle in text, text
        assert "Traceback" not in text
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_unknown_ble_transport_is_a_usage_error(tmp_path: Path) -> None:
    res = subprocess.run([*SCALPPEN, "--ble", "carrier-pigeon", "status"], capture_output=True,
                         text=True, env=dict(os.environ, SCALPPEN_HOME=str(tmp_path)))
    assert res.returncode == 2
    assert "unknown --ble value" in res.stderr and "Traceback" not in res.stderr
