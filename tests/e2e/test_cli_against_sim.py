"""The ``scalppen`` command line, as separate processes, against ``scalppen sim``.

The virtual pen runs in its own process; every command reaches it over the HCI TCP
bridge (``--ble bumble:tcp-client:...``), exactly as with a USB BLE dongle.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.sim_proc import BOARDS, SCALPPEN, Sim, cli, pair_for

pytestmark = pytest.mark.timeout(240)


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
