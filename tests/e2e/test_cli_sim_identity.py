"""Issue 14 items 1 and 3 through the real command line against ``scalppen sim``.

Item 1: every sim was the same pen (one serial, one address): a second sim's
session went unrecorded and its rating landed on the first pen's patient. Each
``--flash`` directory is now its own pen. Item 3: a power cut mid-session made two
sessions; it is one, with its strokes and times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.sim_proc import SCALPPEN, Sim, cli, pair_for

pytestmark = pytest.mark.timeout(300)


def sessions(home: Path, port: int) -> list[dict]:
    out = cli(home, port, "logs", "export", "json", "--dataset", "sessions")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def rated_id(run: subprocess.CompletedProcess[str]) -> int:
    m = re.search(r"scalppen session rate (\d+) --tolerated", run.stdout)
    assert m, run.stdout
    return int(m.group(1))


def test_each_sim_is_its_own_pen_and_ratings_land_on_its_session(tmp_path: Path) -> None:
    home = tmp_path
    first = Sim(home, flash=home / "flash-1")
    try:
        ada_pen, _ = pair_for(first, home, "Ada")
        run = cli(home, first.port, "session", "start", "--depth", "0.5", "--minutes", "1",
                  "--sterilised", timeout=120)
        assert run.returncode == 0, run.stderr + run.stdout
        ada_session = rated_id(run)
    finally:
        first.stop()

    second = Sim(home, flash=home / "flash-2")  # the sim restarted: another pen
    try:
        bob_pen, _ = pair_for(second, home, "Bob")
        assert bob_pen != ada_pen
        run = cli(home, second.port, "--pen", bob_pen, "session", "start", "--depth", "0.5",
                  "--minutes", "1", "--sterilised", timeout=120)
        assert run.returncode == 0, run.stderr + run.stdout
        bob_session = rated_id(run)
        assert bob_session != ada_session
        rate = cli(home, second.port, "session", "rate", str(bob_session), "--tolerated")
        assert rate.returncode == 0 and "0.50 mm): tolerated" in rate.stdout, rate.stdout
        sync = cli(home, second.port, "--pen", bob_pen, "logs", "sync")
        assert sync.returncode == 0, sync.stderr + sync.stdout
        locks = cli(home, second.port, "lockouts", "--profile", "Bob")
        assert locks.returncode == 0, locks.stderr
        assert "no locks or waits" not in locks.stdout, locks.stdout  # Bob's session counts
    finally:
        second.stop()

    stored = {s["id"]: s for s in sessions(home, 9)}
    ada, bob = stored[ada_session], stored[bob_session]
    assert ada["pen_serial"] != bob["pen_serial"] and ada["profile_id"] != bob["profile_id"]
    assert ada["tolerated"] is None  # not rated by Bob's answer
    assert bob["tolerated"] is True and bob["strokes"] > 0


def test_power_cut_mid_session_is_one_session(tmp_path: Path) -> None:
    home = tmp_path
    sim = Sim(home, speed="5")
    try:
        pair_for(sim, home, "Ada")
        env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
        run = subprocess.Popen(
            [*SCALPPEN, "--ble", f"bumble:tcp-client:127.0.0.1:{sim.port}", "--db",
             str(home / "db"), "session", "start", "--depth", "0.5", "--minutes", "1",
             "--sterilised"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        # past the pen's first 30 s checkpoint of strokes and time (core.CHECKPOINT_MS)
        sim.wait_for(r"^display: RUN .*\| 00:3[3-9]", 90, fresh=True)
        sim.send("power-cut")
        sim.wait_for(r"^ok: power: cut, back on$", 60)
        run.communicate(timeout=60)  # the link went with the power: however it ended
        sync = cli(home, sim.port, "logs", "sync")
        assert sync.returncode == 0, sync.stderr + sync.stdout
        (one,) = sessions(home, sim.port)
        assert one["start_seq"] is not None and one["end_seq"] is not None
        assert one["strokes"] > 0 and 30.0 <= one["duration_s"] < 60.0, one
        started = datetime.fromisoformat(one["started_at"])
        ended = datetime.fromisoformat(one["ended_at"])
        assert abs((ended - started).total_seconds() - one["duration_s"]) <= 2.0
    finally:
        sim.stop()
