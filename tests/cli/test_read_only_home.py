"""A read-only SCALPPEN_HOME (issue 14 item 12): reading commands work, writing ones
say in one line that the database is read-only, and nothing is changed.

Run as the files' owner without root's override (``unshare --user`` when the tests
run as root, as CI does: the kernel then checks the owner's permission bits)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalppen import store as S
from tests.cli.test_clinic_cli import T_END, session_records

SCALPPEN = [sys.executable, "-m", "scalppen.cli"]


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to drop root's override"
    return [unshare, "--user", *cmd]


def _run(home: Path, *args: str, owner: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCALPPEN_HOME=str(home), COLUMNS="200")
    cmd = [*SCALPPEN, *args]
    return subprocess.run(_as_owner(cmd) if owner else cmd, capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.fixture(params=["directory", "file", "directory only"])
def read_only_home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A home with a profile, a pen, a session and an adverse-event lock, then made
    read-only: the directory 0555 and the database 0400, the database alone, or the
    directory alone."""
    home = tmp_path / "home"
    for args in (("profile", "add", "Ada", "--birth-year", "1985"),
                 ("adverse", "pus", "--profile", "Ada")):
        done = _run(home, *args, owner=False)
        assert done.returncode == 0, done.stderr + done.stdout
    db = home / "scalppen.db"
    with S.open_store(db) as store:
        S.upsert_pen(store, "SP-1", model="home", owner_profile_id=1)
        S.ingest_log_records(store, "SP-1", session_records(1, T_END, 500))
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    if request.param != "directory only":
        db.chmod(0o400)
    if request.param.startswith("directory"):
        home.chmod(0o555)
    try:
        yield home
    finally:
        home.chmod(0o755)
        db.chmod(0o600)
    after = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    if request.param == "file":
        # SQLite's read-only open makes its shared-memory index beside the file when
        # the directory lets it (https://sqlite.org/wal.html#readonly); no data
        assert after.pop("scalppen.db-wal", b"") == b""
        after.pop("scalppen.db-shm", None)
    assert after == before  # nothing changed, nothing added


def test_read_commands_work_on_a_read_only_home(read_only_home: Path, tmp_path: Path) -> None:
    listed = _run(read_only_home, "profile", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Ada" in listed.stdout
    locks = _run(read_only_home, "lockouts")
    assert locks.returncode == 0, locks.stderr
    assert "18" in locks.stdout  # the adverse-event lock is still there
    out = tmp_path / "report.html"
    report = _run(read_only_home, "report", "--out", str(out))
    assert report.returncode == 0, report.stderr
    assert "Ada" in out.read_text()
    sessions = _run(read_only_home, "session", "list", "--json")
    assert sessions.returncode == 0, sessions.stderr
    [session] = json.loads(sessions.stdout)["sessions"]
    assert session["depth_um"] == 500 and session["profile_id"] == 1
    shown = _run(read_only_home, "session", "show", str(session["id"]))
    assert shown.returncode == 0 and "0.50 mm" in shown.stdout, shown.stderr
    log = _run(read_only_home, "logs", "show")
    assert log.returncode == 0 and "session" in log.stdout, log.stderr
    csv_out = tmp_path / "log.csv"
    exported = _run(read_only_home, "logs", "export", "csv", "--dataset", "log", "--out",
                    str(csv_out))
    assert exported.returncode == 0, exported.stderr
    assert "session_end" in csv_out.read_text()


@pytest.mark.parametrize("read_only_home", ["directory"], indirect=True)
def test_the_report_says_where_it_cannot_write(read_only_home: Path) -> None:
    inside = _run(read_only_home, "report")  # its default place is in the read-only home
    assert inside.returncode != 0
    lines = [x for x in inside.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "cannot write the report" in lines[0] and "--out" in lines[0]


def test_a_write_says_the_database_is_read_only(read_only_home: Path) -> None:
    added = _run(read_only_home, "profile", "add", "Bob", "--birth-year", "1990")
    assert added.returncode != 0
    lines = [x for x in added.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "read-only" in lines[0], added.stderr
    assert "Traceback" not in added.stderr


def test_an_older_database_read_only_says_what_to_do(tmp_path: Path) -> None:
    # not migrated on a read-only open: one line, nothing changed
    from tests.host.test_store_profile_names import _old_store

    home = tmp_path / "home"
    home.mkdir()
    db = _old_store(home / "scalppen.db", 2, ["Ada"])
    before = db.read_bytes()
    db.chmod(0o400)
    home.chmod(0o555)
    try:
        listed = _run(home, "profile", "list")
    finally:
        home.chmod(0o755)
    assert listed.returncode == 1
    lines = [x for x in listed.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "older scalppen (schema 2 of" in lines[0], listed.stderr
    assert "writable" in lines[0] and "upgrade" in lines[0]
    assert db.read_bytes() == before


@pytest.mark.parametrize("data", [b"", b"SQLite format 3\x00" + bytes(40)],
                         ids=["empty", "truncated"])
def test_an_empty_or_truncated_database_is_refused_and_kept(tmp_path: Path,
                                                             data: bytes) -> None:
    # A 0-byte file used to be taken as new, and the adverse-event locks it had held
    # vanished: every command now refuses it in one line and leaves it as it is.
    home = tmp_path / "home"
    home.mkdir()
    db = home / "scalppen.db"
    db.write_bytes(data)
    db.chmod(0o600)
    for args in (("lockouts",), ("profile", "add", "Ada", "--birth-year", "1985")):
        run = _run(home, *args, owner=False)
        lines = [x for x in run.stderr.splitlines() if x.strip()]
        assert run.returncode == 1 and len(lines) == 1, run.stderr + run.stdout
        assert str(db) in lines[0] and "backup" in lines[0], lines[0]
        assert db.read_bytes() == data
    assert sorted(p.name for p in home.iterdir()) == ["scalppen.db"]
