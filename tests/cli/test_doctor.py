"""``scalppen doctor`` and owner-only key files (issue 13 item 2, in part): the set-up
is reported; a bond-key file others can read is a problem doctor names and a BLE
command refuses to use, in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCALPPEN = [sys.executable, "-m", "scalppen.cli"]


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
    return subprocess.run([*SCALPPEN, *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_doctor_reports_the_set_up_and_names_what_to_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "profile", "add", "Ada", "--birth-year", "1985").returncode == 0
    ok = _run(home, "doctor", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = {c["what"]: c for c in json.loads(ok.stdout)["checks"]}
    assert "(600)" in doc["database (health data, sealed permit keys)"]["state"]
    assert "owner-only" in doc["key storage"]["state"]
    bonds = home / "bumble-bonds.json"
    bonds.write_text("{}")
    bonds.chmod(0o644)
    bad = _run(home, "doctor")
    assert bad.returncode == 1
    assert f"problem: {bonds} can be read by other users: chmod 600 {bonds}" in bad.stdout
    bonds.chmod(0o600)  # plain bonds of an older version: named, sealed at the next use
    plain = _run(home, "doctor")
    assert plain.returncode == 1 and "holds bond keys plain" in plain.stdout
    bonds.chmod(0o644)
    used = _run(home, "--ble", "bumble:tcp-client:127.0.0.1:9", "scan")
    lines = [x for x in used.stderr.splitlines() if x.strip()]
    assert used.returncode == 1 and len(lines) == 1, used.stderr
    assert "Bluetooth bond keys" in lines[0] and "chmod 600" in lines[0]
    assert bonds.stat().st_mode & 0o777 == 0o644  # refused, not changed behind the user


def test_files_the_toolkit_writes_are_the_owners_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "profile", "add", "Ada", "--birth-year", "1985").returncode == 0
    out = tmp_path / "r.html"
    assert _run(home, "report", "--out", str(out)).returncode == 0
    for path in (home / "scalppen.db", out):
        assert path.stat().st_mode & 0o077 == 0, path
