"""The README's "Using a pen" commands, run exactly as written, one after the other, in
a terminal, against ``scalppen sim`` (issue 14: "Done when").

The only things a reader supplies are supplied here too: ``SCALPPEN_BLE`` pointing at
the sim (the README's "The virtual pen" says how), the serial ``pair`` printed in
place of ``SP3-XXXXXX``, and the answers typed at the prompts (the passkey the pen
shows, "no" to each screening question, "yes" it was tolerated).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.sim_proc import Sim

pytestmark = pytest.mark.timeout(300)

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Using a pen", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    return [line for line in lines if line]


def _in_terminal(cmd: list[str], env: dict[str, str], answer, timeout: float = 120) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run ``cmd`` on a pseudo-terminal; ``answer(output_so_far)`` returns what to type
    at a prompt (or None). -> (exit status, everything it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    out = ""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096).decode(errors="replace")
                except OSError:
                    chunk = ""
                if not chunk and proc.poll() is not None:
                    break
                out += chunk
                reply = answer(out[answered:])
                if reply is not None:
                    os.write(master, (reply + "\n").encode())
                    answered = len(out)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{cmd[3:]} did not finish: {out[-500:]}")
        return proc.wait(10), out
    finally:
        os.close(master)


def test_the_readme_runs_as_written_against_the_sim(tmp_path: Path) -> None:
    commands = readme_commands()
    assert commands[0].startswith("scalppen scan") and "scalppen report" in commands[-1]
    # 30x: the pen powers itself off after 10 idle minutes, 20 s here, longer than
    # any step; a step that finds it asleep presses its button first, as the README says
    sim = Sim(tmp_path, speed="30")
    env = dict(os.environ, SCALPPEN_HOME=str(tmp_path), COLUMNS="120", TERM="dumb",
               SCALPPEN_BLE=f"bumble:tcp-client:127.0.0.1:{sim.port}")
    serial = ""
    try:
        for line in commands:
            args = shlex.split(line.replace("SP3-XXXXXX", serial or "SP3-XXXXXX"))
            assert args[0] == "scalppen"
            if sim.control("state").endswith("power=asleep"):  # as the README says
                assert sim.control("press").startswith("ok:")
            def answer(new: str, seen_key: list[str] = []) -> str | None:  # noqa: B006
                if "Passkey shown on the pen" in new:
                    key = sim.wait_for(r"^display: PAIR (\d{6})", fresh=not seen_key).group(1)
                    seen_key.append(key)
                    return key
                if re.search(r"\? \[y/n\]: ?$", new.rstrip(" ")) or new.rstrip().endswith(
                        "[y/n]:"):
                    return "y" if "tolerated" in new else "n"
                if re.search(r"\[Y/n\]: ?$", new.rstrip(" ")):
                    return "y"
                return None

            status, out = _in_terminal([sys.executable, "-m", "scalppen.cli", *args[1:]], env,
                                       answer)
            assert status == 0, f"{line}: exit {status}\n{out[-1500:]}"
            assert "Traceback" not in out and "error:" not in out, f"{line}\n{out[-1500:]}"
            if args[1] == "pair":
                serial = re.search(r"paired with .* (SP\w*-\w+) \(", out).group(1)  # type: ignore[union-attr]
            if args[1:3] == ["session", "start"]:
                assert "session ended" in out, out[-1500:]
        report = list((tmp_path / "reports").glob("report-*.html"))
        assert report and "At a glance" in report[0].read_text()
    finally:
        sim.stop()
