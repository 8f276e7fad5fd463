"""An accidental Ctrl-C in the first 30 s of needling (issue 14, item 5), through the
real command line against ``scalppen sim``.

It used to count as a whole session and a 72 h lockout. Now the pen pauses the
session; ``scalppen session resume`` within 10 minutes goes on with it under the
same permit limits, and it is one session. Left alone, it ends by itself 10
minutes after the stop and counts with its real depth and needling time (rule 6).
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.e2e.sim_proc import Sim, cli, cli_started, pair_for

pytestmark = pytest.mark.timeout(300)


def _ctrl_c_right_after_the_start(sim: Sim, home: Path) -> subprocess.CompletedProcess[str]:
    proc = cli_started(home, sim.port, "session", "start", "--depth", "0.5", "--minutes",
                       "1", "--sterilised")
    try:
        sim.wait_for(r"^display: RUN ", timeout=90, fresh=True)
        proc.send_signal(signal.SIGINT)  # the slip of a finger
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _sessions(home: Path) -> list[tuple[float, int, int]]:
    with sqlite3.connect(home / "db") as db:
        return db.execute("SELECT duration_s, depth_um, complete FROM sessions").fetchall()


def test_resumed_within_10_minutes_it_is_one_session(tmp_path: Path) -> None:
    sim = Sim(tmp_path, speed="10")
    try:
        pair_for(sim, tmp_path)
        stopped = _ctrl_c_right_after_the_start(sim, tmp_path)
        assert stopped.returncode == 0, stopped.stderr + stopped.stdout
        assert "session paused" in stopped.stdout and "scalppen session resume" in stopped.stdout
        assert "session ended" not in stopped.stdout
        seconds = float(re.search(r"after ([\d.]+) s of needling", stopped.stdout).group(1))  # type: ignore[union-attr]
        assert seconds < 30
        status = cli(tmp_path, sim.port, "status")
        assert status.returncode == 0 and "paused" in status.stdout.lower(), status.stdout

        again = cli(tmp_path, sim.port, "session", "start", "--depth", "0.5", "--sterilised")
        assert again.returncode != 0 and "session resume" in again.stderr, again.stderr

        resumed = cli(tmp_path, sim.port, "session", "resume", timeout=180)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        assert "session ended (permitted time reached)" in resumed.stdout, resumed.stdout
        assert "1.0 min" in resumed.stdout  # the permit's minute, both parts together
        rows = _sessions(tmp_path)
        assert len(rows) == 1 and rows[0][2] == 1 and 59 <= rows[0][0] <= 62, rows

        nothing = cli(tmp_path, sim.port, "session", "resume")
        assert nothing.returncode != 0 and "no paused session" in nothing.stderr
    finally:
        sim.stop()


def test_left_alone_it_ends_after_10_minutes_and_counts(tmp_path: Path) -> None:
    sim = Sim(tmp_path, speed="60")
    try:
        pair_for(sim, tmp_path)
        stopped = _ctrl_c_right_after_the_start(sim, tmp_path)
        assert "session paused" in stopped.stdout, stopped.stderr + stopped.stdout
        sim.wait_for(r"^display: DONE ", timeout=60, fresh=True)  # 10 virtual min
        sync = cli(tmp_path, sim.port, "logs", "sync")
        assert sync.returncode == 0, sync.stderr
        rows = _sessions(tmp_path)
        assert len(rows) == 1 and rows[0][1] == 500 and rows[0][0] < 30, rows
        late = cli(tmp_path, sim.port, "session", "resume")
        assert late.returncode != 0 and "no paused session" in late.stderr
        locks = cli(tmp_path, sim.port, "session", "start", "--depth", "0.5", "--sterilised")
        assert locks.returncode == 3 and "rule 6" in locks.stdout, locks.stdout + locks.stderr
    finally:
        sim.stop()
