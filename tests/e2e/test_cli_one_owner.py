"""One command at a time on a pen, through the real command line (issue 14, item 2).

`scalppen status` from a second terminal used to take the link over from a running
`session start`: the session command died without STOP and the pen needled on.
Now a second command finds the pen busy (one line, non-zero exit) and the session
goes on to its end untouched; afterwards the pen is free again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.sim_proc import Sim, cli, cli_started, pair_for

pytestmark = pytest.mark.timeout(240)


def test_a_second_command_finds_the_pen_busy_and_the_session_goes_on(
    sim: Sim, tmp_path: Path,
) -> None:
    home = tmp_path
    pair_for(sim, home)
    session = cli_started(home, sim.port, "session", "start", "--depth", "0.5", "--minutes",
                          "1", "--sterilised")
    try:
        sim.wait_for(r"^display: RUN ", timeout=90)  # needles moving
        status = cli(home, sim.port, "status")
        assert status.returncode != 0
        lines = [x for x in status.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "busy" in lines[0] and "another scalppen command" in lines[0]
        out, err = session.communicate(timeout=150)
    finally:
        if session.poll() is None:
            session.kill()
    assert session.returncode == 0, err + out
    assert "session ended" in out and "permitted time reached" in out
    after = cli(home, sim.port, "status")  # the pen is free again
    assert after.returncode == 0, after.stderr


def test_commands_at_once_and_a_killed_one_leave_the_sim_working(
    sim: Sim, tmp_path: Path,
) -> None:
    # Three commands at once used to wedge the sim for good (tracebacks, then
    # `scan` found nothing). Now each is its own adapter on the pen's link.
    home = tmp_path
    pair_for(sim, home)
    procs = [cli_started(home, sim.port, *args)
             for args in (("scan", "--timeout", "2"), ("scan", "--timeout", "2"), ("status",))]
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert "Traceback" not in err, err
        assert p.returncode == 0 or len([x for x in err.splitlines() if x.strip()]) == 1, err
    # a command killed while it holds the pen's link
    status = cli_started(home, sim.port, "wear")
    time.sleep(2.0)  # connected by now, or about to: either way the sim must cope
    status.kill()
    status.communicate(timeout=10)
    again = cli(home, sim.port, "status")
    assert again.returncode == 0, again.stderr
    scan = cli(home, sim.port, "scan", "--timeout", "2")
    assert scan.returncode == 0 and "ScalpPen" in scan.stdout, scan.stdout + scan.stderr
