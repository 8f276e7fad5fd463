"""Clinic mode: laptops with their own SCALPPEN_HOME share one PostgreSQL database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def scalppen(home: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCALPPEN_HOME": str(home), "SCALPPEN_DB": db}
    env.pop("SCALPPEN_PEN", None)
    return subprocess.run([sys.executable, "-m", "scalppen.cli", *args], env=env, text=True,
                          capture_output=True, timeout=60, cwd=home)


def test_two_laptops_see_the_same_patients_and_locks(tmp_path: Path, pg_url: str) -> None:
    room1, room2 = tmp_path / "room1", tmp_path / "room2"
    room1.mkdir()
    room2.mkdir()
    added = scalppen(room1, pg_url, "profile", "add", "Ann", "--birth-year", "1980")
    assert added.returncode == 0, added.stderr
    assert scalppen(room1, pg_url, "adverse", "pus", "--profile", "Ann").returncode == 0
    seen = scalppen(room2, pg_url, "lockouts", "--json")
    assert seen.returncode == 0, seen.stderr
    assert "18:adverse:1" in {h["lock_id"] for h in json.loads(seen.stdout)["locks"]}
    assert scalppen(room2, pg_url, "profile", "add", "Bo").returncode == 0
    listed = scalppen(room1, pg_url, "profile", "list").stdout
    assert "Ann" in listed and "Bo" in listed
    same_name = scalppen(room2, pg_url, "profile", "add", "ann")
    assert same_name.returncode != 0 and "already called 'Ann'" in same_name.stderr
    # nothing was made in the working directories or the homes but the keys folder
    assert not any(p.name.startswith("postgresql") for p in tmp_path.rglob("*"))


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    run = scalppen(tmp_path, "postgresql://nobody@127.0.0.1:1/clinic", "profile", "list")
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the database server" in lines[0], run.stderr
    assert not (tmp_path / "postgresql:").exists()
