"""One command at a time on a pen, through the real command line (issue 14, item 2).

`scalppen status` from a second terminal used to take the link over from a running
`session start`: the session command died without STOP and the pen needled on.
Now a second command finds the pen busy (one line, non-zero exit) and the session
goes on to its end untouched; afterwards the pen is free again.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli_against_sim import SCALPPEN, Sim, cli, sim  # noqa: F401

pytestmark = pytest.mark.timeout(240)


def _paired(sim: Sim, home: Path) -> str:  # noqa: F811
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
    _out, err = pair.communicate(passkey + "\n", timeout=60)
    assert pair.returncode == 0, err
    assert cli(home, sim.port, "profile", "add", "Ada", "--birth-year", "1985").returncode == 0
    assert cli(home, sim.port, "profile", "assign-pen", address, "Ada").returncode == 0
    assert cli(home, sim.port, "screen", "--profile", "Ada", "--all-no").returncode == 0
    return address


def test_a_second_command_finds_the_pen_busy_and_the_session_goes_on(
    sim: Sim, tmp_path: Path,  # noqa: F811
) -> None:
    home = tmp_path
    _paired(sim, home)
    env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
    session = subprocess.Popen(
        [*SCALPPEN, "--ble", f"bumble:tcp-client:127.0.0.1:{sim.port}", "--db",
         str(home / "db"), "session", "start", "--depth", "0.5", "--minutes", "1",
         "--sterilised"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
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
