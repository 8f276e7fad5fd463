"""The smaller command-line findings of the new-user round (issue 14 item 13) that
need no pen: session list and show, --json on read commands, duplicate profile
names, the age question the profile answers, one exit status for refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalppen import store as S
from scalppen.policy.screening import CONTRAINDICATIONS
from tests.cli.test_clinic_cli import T_END, Invoke, session_records


def _one_session(db_path: Path) -> None:
    with S.open_store(db_path) as db:
        prof = S.add_profile(db, "Ann", birth_year=1990)
        S.upsert_pen(db, "SP-1", model="home", owner_profile_id=prof.id)
        S.ingest_log_records(db, "SP-1", session_records(1, T_END, 500))
        S.set_tolerated(db, S.list_sessions(db)[0].id, True)


def test_session_list_and_show(cli: Invoke, db_path: Path) -> None:
    _one_session(db_path)
    listed = cli("session", "list")
    assert listed.exit_code == 0, listed.output
    for words in ("0.50 mm", "10.0", "70,000", "yes", "2026-03-01"):
        assert words in listed.output, words
    doc: dict[str, Any] = json.loads(cli("session", "list", "--json").stdout)
    [s] = doc["sessions"]
    assert (s["depth_um"], s["minutes"], s["strokes"], s["tolerated"]) == (500, 10.0, 70000, True)
    assert s["end_reason"]
    shown = cli("session", "show", str(s["id"]))
    assert shown.exit_code == 0 and "70,000 strokes" in shown.output, shown.output
    assert json.loads(cli("session", "show", str(s["id"]), "--json").stdout)["id"] == s["id"]
    for only in (("--profile", "ann"), ("--pen", "SP-1")):
        [one] = json.loads(cli("session", "list", *only, "--json").stdout)["sessions"]
        assert one["id"] == s["id"]
    assert cli("profile", "add", "Bea", "--birth-year", "1990").exit_code == 0
    assert json.loads(cli("session", "list", "--profile", "Bea", "--json").stdout) == \
        {"sessions": []}
    missing = cli("session", "show", "99")
    assert missing.exit_code == 1 and "99" in missing.one_line_error()


def test_lockouts_json_is_one_document(cli: Invoke, db_path: Path) -> None:
    _one_session(db_path)
    run = cli("lockouts", "--json", "--now", "2026-03-02T10:00:00")
    doc = json.loads(run.stdout)
    [interval] = [lock for lock in doc["locks"] if lock["rule"] == 6]
    assert interval["profile"] == "Ann" and "2026-03-04" in interval["lifts"]
    assert doc["at"].startswith("2026-03-02")


def test_a_second_profile_of_the_same_name_is_refused(cli: Invoke, db_path: Path) -> None:
    assert cli("profile", "add", "Ada", "--birth-year", "1985").exit_code == 0
    again = cli("profile", "add", "  ada ", "--birth-year", "1990")
    assert again.exit_code == 1
    assert "already called 'Ada'" in again.one_line_error()
    with S.open_store(db_path) as db:
        assert [p.name for p in S.list_profiles(db)] == ["Ada"]


def test_the_profile_answers_the_age_question(cli: Invoke, db_path: Path) -> None:
    assert cli("profile", "add", "Ada", "--birth-year", "1985").exit_code == 0
    # every question but the age one, without a terminal: the birth year answers it
    answers = ",".join(f"{k}=no" for k in CONTRAINDICATIONS if k != "under_22")
    run = cli("screen", "--profile", "Ada", "--answers", answers)
    assert run.exit_code == 0, run.output
    assert "no contraindications" in run.output
    assert cli("profile", "add", "Kid", "--birth-year", "2010").exit_code == 0
    young = cli("screen", "--profile", "Kid", "--answers", answers)
    assert young.exit_code == 0 and "age under 22" in young.output, young.output


def test_help_documents_the_exit_statuses(cli: Invoke) -> None:
    shown = " ".join(cli("--help").stdout.split())
    assert "Exit status: 0 done" in shown
    assert "3 refused by the safety rules of this computer or of the pen" in shown
