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


def test_each_row_records_its_room_and_user_and_the_report_filters_by_them(
    tmp_path: Path, pg_url: str
) -> None:
    room1, room2 = tmp_path / "room1", tmp_path / "room2"
    room1.mkdir()
    room2.mkdir()
    assert scalppen(room1, pg_url, "db", "room", "Room 1").returncode == 0
    assert scalppen(room2, pg_url, "db", "room", "Room 2").returncode == 0
    scalppen(room1, pg_url, "profile", "add", "Ann", "--birth-year", "1980")
    os.environ["SCALPPEN_USER"] = "dr.lee"
    try:
        assert scalppen(room1, pg_url, "adverse", "redness", "--profile", "Ann").returncode == 0
    finally:
        del os.environ["SCALPPEN_USER"]
    assert scalppen(room2, pg_url, "screen", "--profile", "Ann", "--all-no").returncode == 0
    from scalppen import store as S

    with S.open_store(pg_url) as db:
        (event,) = S.list_adverse_events(db)
        (screening,) = S.list_screenings(db)
    assert (event.made_on, event.made_by) == ("Room 1", "dr.lee")
    assert screening.made_on == "Room 2"
    out = tmp_path / "r1.html"
    made = scalppen(room2, pg_url, "report", "--room", "room 1", "--out", str(out))
    assert made.returncode == 0, made.stderr
    html = out.read_text()
    assert "(room room 1)" in html and "Room 1, dr.lee" in html
    assert "Room 2" not in html  # the screening made in room 2 is left out
    info = scalppen(room2, pg_url, "db", "info", "--json")
    assert json.loads(info.stdout)["engine"] == "postgresql"


def test_a_home_user_moves_into_the_clinic_and_backs_it_up(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home_db = str(home / "scalppen.db")
    scalppen(home, home_db, "profile", "add", "Ann", "--birth-year", "1980")
    scalppen(home, home_db, "adverse", "pus", "--profile", "Ann")
    copied = scalppen(home, home_db, "db", "copy", home_db, pg_url)
    assert copied.returncode == 0, copied.stderr
    assert "1 profiles" in copied.stdout and "1 adverse_events" in copied.stdout
    again = scalppen(home, home_db, "db", "copy", home_db, pg_url)
    assert again.returncode == 1 and "already has a profile called 'Ann'" in again.stderr
    seen = json.loads(scalppen(home, pg_url, "lockouts", "--json").stdout)
    assert "18:adverse:1" in {h["lock_id"] for h in seen["locks"]}

    backup = tmp_path / "clinic.backup"
    made = scalppen(home, pg_url, "db", "backup", str(backup))
    assert made.returncode == 0 and "backup written" in made.stdout, made.stderr
    restored = str(tmp_path / "restored.db")
    back = scalppen(home, restored, "db", "restore", str(backup))
    assert back.returncode == 0, back.stderr
    assert "Ann" in scalppen(home, restored, "profile", "list").stdout
    twice = scalppen(home, restored, "db", "restore", str(backup))
    assert twice.returncode == 1 and "is not empty" in twice.stderr
