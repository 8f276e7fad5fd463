"""The database-only commands: profile, screen, adverse, clear, lockouts, report."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scalppen import store as S
from scalppen.cli import clinic, storage
from scalppen_protocol.codes import RecordKind

Invoke = Callable[..., Any]  # the ``cli`` fixture of conftest.py

ALL_KEYS = (
    "active_acne",
    "scalp_infection",
    "psoriasis_eczema",
    "keloids_poor_healing",
    "alopecia_areata",
    "anticoagulants",
    "isotretinoin",
    "pregnancy",
    "under_22",
)


@pytest.fixture
def ann(cli: Invoke) -> Iterator[None]:
    assert cli("profile", "add", "Ann", "--birth-year", "1990").exit_code == 0
    yield


def test_profile_add_and_list(cli: Invoke) -> None:
    added = cli("profile", "add", "Ann Smith", "--birth-year", "1990")
    assert added.exit_code == 0, added.output
    assert "added profile 1: Ann Smith (patient, born 1990)" in added.output
    assert cli("profile", "add", "Dr Lee", "--role", "clinician").exit_code == 0
    listed = cli("profile", "list")
    assert listed.exit_code == 0, listed.output
    assert "Ann Smith" in listed.output and "Dr Lee" in listed.output
    assert "clinician" in listed.output and "none yet" in listed.output


def test_profile_add_bad_role_is_refused_before_the_database(cli: Invoke, db_path: Path) -> None:
    run = cli("profile", "add", "Bo", "--role", "admin")
    assert run.exit_code == 2
    assert "patient, clinician" in run.one_line_error()
    assert not db_path.exists()


def test_profile_assign_pen_gives_it_the_earlier_sessions(
    cli: Invoke, db_path: Path, ann: None
) -> None:
    with S.open_store(db_path) as db:
        S.ingest_log_records(db, "SP-1", session_records(1, T_END, 500))
        assert S.list_sessions(db)[0].profile_id is None
    run = cli("profile", "assign-pen", "SP-1", "Ann")
    assert run.exit_code == 0, run.output
    assert "pen SP-1 belongs to profile 1 Ann; 1 earlier session" in run.output
    with S.open_store(db_path) as db:
        assert S.get_pen(db, "SP-1").owner_profile_id == 1
        assert S.list_sessions(db)[0].profile_id == 1
    unknown = cli("profile", "assign-pen", "SP-9", "Ann")
    assert unknown.exit_code == 1
    assert "no pen 'SP-9'" in unknown.one_line_error()


def test_screening_all_no_passes(cli: Invoke, ann: None) -> None:
    run = cli("screen", "--all-no")
    assert run.exit_code == 0, run.output
    assert "no contraindications" in run.output
    assert "locked" not in run.output
    lock = cli("lockouts")
    assert lock.exit_code == 0, lock.output
    assert "no locks or waits for Ann" in lock.output


def test_screening_yes_locks_until_a_clinician_clears_it(
    cli: Invoke, ann: None, clinician: Callable[..., str]
) -> None:
    run = cli("screen", "--all-no", "--answers", "anticoagulants=yes")
    assert run.exit_code == 0, run.output
    assert "contraindicated (anticoagulants)" in run.output
    assert "locked until a clinician clears it: lock 17:screening:1" in run.output

    shown = cli("lockouts")
    assert shown.exit_code == 0, shown.output
    assert "17:screening:1" in shown.output and "anticoagulants" in shown.output

    unsigned = cli("clear", "17:screening:1")
    assert unsigned.exit_code == 3
    assert "needs a clearance signed by a clinician" in unsigned.output
    assert "scalppen clinician sign-clearance 17:screening:1 --profile Ann --toolkit" in (
        unsigned.output)
    typed = cli("clear", "17:screening:1", "--clinician", "Dr Lee", "--reason", "ok")
    assert typed.exit_code == 2
    assert "a typed name no longer clears a lock" in typed.one_line_error()
    assert "17:screening:1" in cli("lockouts").output

    text = clinician("17:screening:1", reason="stable dose, reviewed with GP")
    cleared = cli("clear", "17:screening:1", "--clearance", text)
    assert cleared.exit_code == 0, cleared.output
    assert "cleared lock 17:screening:1" in cleared.output
    assert "signed by Dr Lee" in cleared.output and "stable dose" in cleared.output
    after = cli("lockouts")
    assert "17:screening:1" not in after.output
    assert "no locks or waits" in after.output
    again = cli("clear", "17:screening:1", "--clearance", text)
    assert again.exit_code == 2
    assert "already cleared" in again.one_line_error()


@pytest.mark.parametrize(
    ("lock_id", "words"),
    [
        ("6:interval", "firmware limit"),
        ("14:wear", "firmware limit"),
        ("not-a-lock", "not a lock id"),
        ("17:screening:9", "no screening 9"),
    ],
)
def test_clear_refuses_firmware_rules_and_unknown_locks(
    cli: Invoke, ann: None, lock_id: str, words: str
) -> None:
    run = cli("clear", lock_id)
    assert run.exit_code != 0
    assert words in run.one_line_error()


def test_screening_without_terminal_or_answers_is_one_line(cli: Invoke, db_path: Path) -> None:
    run = cli("screen")
    assert run.exit_code == 2
    assert "--answers" in run.one_line_error()
    assert not db_path.exists()
    partial = cli("screen", "--answers", "pregnancy=no")
    assert partial.exit_code == 2
    assert "missing: active_acne" in partial.one_line_error()
    bad = cli("screen", "--answers", "pregnancy=maybe")
    assert bad.exit_code == 2
    assert "yes or no" in bad.one_line_error()
    unknown = cli("screen", "--answers", "flu=no")
    assert unknown.exit_code == 2
    assert "unknown screening question 'flu'" in unknown.one_line_error()
    assert not db_path.exists()


def test_screening_asks_each_question_on_a_terminal(
    cli: Invoke, ann: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clinic, "_interactive", lambda: True)
    answers = "".join("y\n" if key == "isotretinoin" else "n\n" for key in ALL_KEYS)
    run = cli("screen", input=answers)
    assert run.exit_code == 0, run.output
    assert "Do you take isotretinoin" in run.output
    assert "contraindicated (isotretinoin)" in run.output


def test_young_birth_year_counts_as_a_yes(cli: Invoke) -> None:
    year = datetime.now(UTC).year - 18
    cli("profile", "add", "Kid", "--birth-year", str(year))
    run = cli("screen", "--all-no")
    assert "contraindicated (age under 22)" in run.output


def test_adverse_oozing_locks_and_redness_is_only_logged(cli: Invoke, ann: None) -> None:
    cli("screen", "--all-no")
    red = cli("adverse", "redness", "--notes", "mild, gone by evening")
    assert red.exit_code == 0, red.output
    assert "logged redness" in red.output and "does not lock" in red.output
    assert "no locks or waits" in cli("lockouts").output

    ooze = cli("adverse", "oozing", "--profile", "Ann")
    assert ooze.exit_code == 0, ooze.output
    assert "seek medical attention" in ooze.output
    assert "lock 18:adverse:2" in ooze.output
    shown = cli("lockouts", "--profile", "1")
    assert "18:adverse:2" in shown.output and "Oozing" in shown.output

    heat = cli("adverse", "extreme-heat")
    assert heat.exit_code == 0 and "lock 18:adverse:3" in heat.output


def test_unknown_adverse_kind_is_one_line_before_the_database(cli: Invoke, db_path: Path) -> None:
    run = cli("adverse", "itching")
    assert run.exit_code == 2
    line = run.one_line_error()
    assert "unknown adverse event 'itching'" in line
    assert "oozing, extreme-heat, pus, redness, bruising, other" in line
    assert not db_path.exists()


def test_adverse_with_unknown_profile_is_one_line(cli: Invoke, ann: None) -> None:
    run = cli("adverse", "pus", "--profile", "Zed")
    assert run.exit_code == 1
    assert "no profile named 'Zed'" in run.one_line_error()


# A session at 0.75 mm on pen SP-1 that ended at T_END.
T_END = int(datetime(2026, 3, 1, 10, 0, tzinfo=UTC).timestamp())


def session_records(first_seq: int, end: int, depth: int) -> list[dict[str, int]]:
    def rec(seq: int, kind: RecordKind, t: int, a: int = 0, b: int = 0) -> dict[str, int]:
        return {
            "seq": seq,
            "time": t,
            "kind": int(kind),
            "flags": 0,
            "code": 0,
            "depth_um": depth,
            "a": a,
            "b": b,
        }

    return [
        rec(first_seq, RecordKind.SESSION_START, end - 600, a=900),
        rec(first_seq + 1, RecordKind.SESSION_END, end, a=600_000, b=70_000),
    ]


def test_lockouts_show_the_interval_and_the_topical_hold(cli: Invoke, db_path: Path) -> None:
    with S.open_store(db_path) as db:
        prof = S.add_profile(db, "Ann", birth_year=1990)
        S.record_screening(
            db,
            prof.id,
            dict.fromkeys(ALL_KEYS, False),
            now=datetime.fromtimestamp(T_END - 86400, UTC),
        )
        S.upsert_pen(db, "SP-1", model="home", owner_profile_id=prof.id)
        S.ingest_log_records(db, "SP-1", session_records(1, T_END, 750))
    now = datetime.fromtimestamp(T_END, UTC) + timedelta(hours=1)
    run = cli("lockouts", "--now", now.isoformat())
    assert run.exit_code == 0, run.output
    assert "needs 72 h of healing" in run.output
    assert "2026-03-04 10:00 UTC" in run.output  # 72 h after the 0.75 mm session
    assert "No minoxidil until" in run.output
    assert "2026-03-02 10:00 UTC" in run.output  # 24 h topical hold
    later = cli("lockouts", "--pen", "SP-1", "--now", "2026-03-05T10:00:00+00:00")
    assert "no locks or waits for Ann" in later.output


def test_lockouts_service_life_lock_of_the_pen(
    cli: Invoke, db_path: Path, clinician: Callable[..., str]
) -> None:
    # The clearance is stamped with the real clock, so the pen's first session is set
    # 100 days before it: the 90-day service lock holds now.
    first_end = int(time.time()) - 100 * 86400
    with S.open_store(db_path) as db:
        prof = S.add_profile(db, "Ann", birth_year=1990)
        S.upsert_pen(db, "SP-1", model="home", owner_profile_id=prof.id)
        S.ingest_log_records(db, "SP-1", session_records(1, first_end, 500))
    run = cli("lockouts", "--pen", "SP-1")
    assert run.exit_code == 0, run.output
    lock_id = f"16:service:SP-1:{first_end - 600}"
    assert lock_id in run.output
    text = clinician(lock_id, profile="", reason="serviced on site")
    cleared = cli("clear", lock_id, "--clearance", text)
    assert cleared.exit_code == 0, cleared.output
    assert "cleared lock 16:service:SP-1" in cleared.output
    assert lock_id not in cli("lockouts", "--pen", "SP-1").output


def test_lockouts_bad_now_is_one_line(cli: Invoke, db_path: Path) -> None:
    run = cli("lockouts", "--now", "yesterday")
    assert run.exit_code == 2
    assert "ISO 8601" in run.one_line_error()
    assert not db_path.exists()


def test_report_writes_a_file_and_prints_its_path(cli: Invoke, tmp_path: Path, ann: None) -> None:
    cli("screen", "--all-no")
    default = cli("report")
    assert default.exit_code == 0, default.output
    path = Path(default.output.strip().removeprefix("report written to "))
    assert path.parent == tmp_path / "reports" and path.suffix == ".html"
    assert "<html" in path.read_text(encoding="utf-8")
    chosen = tmp_path / "out" / "ann.html"
    run = cli("report", "--profile", "Ann", "--out", str(chosen))
    assert run.exit_code == 0, run.output
    assert str(chosen) in run.output
    assert chosen.is_file() and "Ann" in chosen.read_text(encoding="utf-8")
    assert cli("report", "--out", str(tmp_path)).exit_code == 2


def corrupt_file(path: Path, with_header: bool) -> None:
    data = os.urandom(8192)
    if with_header:
        data = b"SQLite format 3\x00" + data[16:]
    path.write_bytes(data)
    path.chmod(0o600)


@pytest.mark.parametrize("with_header", [False, True])
@pytest.mark.parametrize(
    "args",
    [
        ("profile", "list"),
        ("profile", "add", "Ann"),
        ("screen", "--all-no"),
        ("adverse", "oozing"),
        ("lockouts",),
        ("report",),
    ],
)
def test_corrupt_database_is_one_line(
    cli: Invoke, db_path: Path, args: tuple[str, ...], with_header: bool
) -> None:
    corrupt_file(db_path, with_header)
    run = cli(*args)
    assert run.exit_code == 1
    line = run.one_line_error()
    assert str(db_path) in line
    assert "not a scalppen database" in line or "damaged" in line


def test_locked_database_is_one_line(
    cli: Invoke, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    S.open_store(db_path).close()
    monkeypatch.setattr(storage, "LOCK_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        for args in (("profile", "list"), ("screen", "--all-no"), ("lockouts",)):
            run = cli(*args)
            assert run.exit_code == 1
            assert "is locked by another program" in run.one_line_error()
    finally:
        holder.close()
    assert cli("profile", "list").exit_code == 0
