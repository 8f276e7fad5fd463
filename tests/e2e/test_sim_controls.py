"""``scalppen sim`` as a playground (issue 14, items 8 and 9), through the real
command line: commands on its standard input and on its control socket change the
pen's world, one answer line each; bad input and abuse change nothing and wedge
nothing; and the toolkit judges by the sim's clock when it talks to a sim.
"""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scalppen.simctl import COMMANDS
from tests.e2e.sim_proc import Sim, cli, pair_for

pytestmark = pytest.mark.timeout(300)


def _state(sim: Sim) -> dict[str, str]:
    answer = sim.control("state")
    assert answer.startswith("ok: "), answer
    return dict(kv.split("=", 1) for kv in answer[4:].split())


def _abuse(path: str) -> None:
    """Garbage, an endless line, clients that vanish mid-line, many at once."""
    socks = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        socks.append(s)
    socks[0].sendall(b"\x00\xff garbage \x1b[2J\n")
    socks[1].sendall(b"battery 1" * 1000)  # no newline, far past the line limit
    socks[2].sendall(b"battery 5")  # half a line, then gone
    for s in socks:
        s.close()


def test_the_sim_obeys_its_commands_and_nothing_wedges_it(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    try:
        helped = sim.control("help")
        assert all(c.usage in helped for c in COMMANDS.values())
        before = _state(sim)
        for bad in ("battery 140", "battery x", "battery", "cartridge gold", "fault nonsense",
                    "speed 0", "jump", "contact maybe", "hold 99"):
            answer = sim.control(bad)
            assert answer.startswith("error: ") and ";" in answer, (bad, answer)
        after = _state(sim)
        for key in ("cartridge", "contact", "speed", "charging", "faults"):
            assert after[key] == before[key], key
        _abuse(sim.control_path)
        assert sim.control("clock").startswith("ok: ")  # still answering
        sim.send("contact off")  # the same commands on stdin
        sim.wait_for(r"^ok: off skin$", fresh=True)
        assert _state(sim)["contact"] == "off"
        sim.send("contact on")
        sim.wait_for(r"^ok: on skin$", fresh=True)

        home = tmp_path
        pair_for(sim, home)
        assert sim.control("battery 15") == "ok: battery at 15 %"
        status = cli(home, sim.port, "status")
        assert status.returncode == 0 and re.search(r"battery\s+1[45] %", status.stdout), \
            status.stdout
        low = cli(home, sim.port, "session", "start", "--depth", "0.5", "--minutes", "1",
                  "--sterilised")
        # a refusal by the pen: the same status and prefix as the host policy's, on a
        # line of its own after the live view's
        assert low.returncode == 3, low
        assert low.stdout.splitlines()[0] == "arming...", low.stdout
        [why] = [line for line in low.stdout.splitlines() if line.startswith("refused: ")]
        assert "battery" in why.lower(), low.stdout
        idle = cli(home, sim.port, "session", "stop")
        assert idle.returncode == 0 and "no session is running" in idle.stdout, idle
        st = json.loads(cli(home, sim.port, "status", "--json").stdout)
        assert st["status"]["state"] == "idle" and st["pen"]["profile"] == "development"
        wear = json.loads(cli(home, sim.port, "wear", "--json").stdout)
        assert wear["cartridge"] and wear["strokes_rated"] == 150000
        found = json.loads(cli(home, sim.port, "scan", "--json", "--timeout", "2").stdout)
        assert [p["name"] for p in found["pens"]] == ["ScalpPen"]
        assert cli(home, sim.port, "logs", "sync").returncode == 0
        log = json.loads(cli(home, sim.port, "logs", "show", "--json").stdout)
        [refusal] = [r for r in log["records"] if r["kind"] == "start_refused"]
        assert "battery" in refusal["text"] and refusal["pen"] == st["pen"]["serial"]
        sim.control("battery 60")
        assert sim.control("cartridge remove") == "ok: cartridge removed"
        status = cli(home, sim.port, "status")
        assert re.search(r"cartridge\s+none", status.stdout), status.stdout
        assert sim.control("cartridge new") == "ok: new cartridge inserted"
        assert sim.control("fault gauge_off_bus") == "ok: fault gauge_off_bus on"
        assert "active: gauge_off_bus" in sim.control("fault list")
        assert sim.control("fault gauge_off_bus off") == "ok: fault gauge_off_bus off"

        level = float(_state(sim)["battery"])
        assert sim.control("charge on") == "ok: charger plugged in"
        time.sleep(6)  # six virtual minutes at 400 mA
        charged = _state(sim)
        assert charged["charging"] == "on" and float(charged["battery"]) > level + 1.0
        sim.control("charge off")

        # One clock: the toolkit's policy time is the sim's, well ahead of this
        # computer's once the sim ran fast for a while.
        time.sleep(max(0.0, 25 - (time.monotonic() - sim.started)))
        sim_now = float(sim.control("clock").split()[-1])
        ahead = sim_now - datetime.now(UTC).timestamp()
        assert ahead > 15 * 60, ahead  # 25 s and more at 60x
        locks = cli(home, sim.port, "lockouts")
        assert locks.returncode == 0, locks.stderr
        m = re.search(r"at (\d{4}-\d\d-\d\d \d\d:\d\d)", locks.stdout)
        assert m, locks.stdout
        shown = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M").astimezone().timestamp()
        assert abs(shown - sim_now) < 3 * 60, (m.group(1), sim_now)
    finally:
        sim.stop()
