"""Rule 22 through the command line, as a clinic and a patient use it, and as a patient
at their own laptop would try to get around it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, Run
from tests.host.clinicians import Clinician

LOCK = "18:adverse:1"


@pytest.fixture
def as_clinician(cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run a command on the clinician's own computer (another SCALPPEN_HOME)."""
    home = tmp_path / "clinician-home"
    home.mkdir(mode=0o700)
    monkeypatch.chdir(home)  # where sign-clearance writes its file by default

    def run(*args: str, input: str | None = None) -> Run:
        patient_home = str(tmp_path)
        monkeypatch.setenv("SCALPPEN_HOME", str(home))
        try:
            return cli(*args, input=input, db=home / "clinic.db")
        finally:
            monkeypatch.setenv("SCALPPEN_HOME", patient_home)

    return run


@pytest.fixture
def pus(cli: Invoke) -> Iterator[None]:
    assert cli("profile", "add", "Ann", "--birth-year", "1980").exit_code == 0
    assert cli("adverse", "pus", "--profile", "Ann").exit_code == 0
    yield


def toolkit_of(cli: Invoke) -> str:
    return str(json.loads(cli("clinician", "keys", "--json").stdout)["toolkit"])


def fingerprint_in(run: Run) -> str:
    return next(line.split()[-1] for line in run.lines() if line.startswith("fingerprint"))


def refused_line(run: Run) -> str:
    assert run.exit_code == 3, run.output
    lines = run.lines()
    assert len(lines) == 1 and lines[0].startswith("refused: "), run.output
    return lines[0]


@pytest.fixture
def clinic(cli: Invoke, as_clinician: Invoke, tmp_path: Path, pus: None) -> Callable[..., Run]:
    """The clinic set the toolkit up: Dr Ada Lee's key is pinned. Returns a signer."""
    made = as_clinician("clinician", "init", "--name", "Dr Ada Lee", "--out",
                        str(tmp_path / "ada.json"))
    assert made.exit_code == 0, made.output
    trusted = cli("clinician", "trust", str(tmp_path / "ada.json"), input="y\n")
    assert trusted.exit_code == 0, trusted.output
    assert fingerprint_in(made) in trusted.output
    toolkit = toolkit_of(cli)

    def sign(lock: str = LOCK, *extra: str) -> Run:
        return as_clinician("clinician", "sign-clearance", lock, "--profile", "Ann", "--toolkit",
                            toolkit, "--reason", "healed, seen in clinic", *extra)

    return sign


def test_a_pus_lockout_is_cleared_by_a_signed_clearance(
    cli: Invoke, clinic: Callable[..., Run], tmp_path: Path
) -> None:
    asked = cli("clear", LOCK)
    assert asked.exit_code == 3
    assert f"--toolkit {toolkit_of(cli)}" in asked.output
    signed = clinic(LOCK, "--out", str(tmp_path / "c.json"))
    assert signed.exit_code == 0, signed.output
    cleared = cli("clear", LOCK, "--clearance", str(tmp_path / "c.json"))
    assert cleared.exit_code == 0, cleared.output
    assert "signed by Dr Ada Lee" in cleared.output
    assert LOCK not in cli("lockouts").output  # screening (rule 17) is still due
    audit = json.loads(cli("clinician", "audit", "--json").stdout)
    assert [(a["lock"], a["accepted"]) for a in audit][-1] == (LOCK, True)
    report = cli("report", "--profile", "Ann", "--out", str(tmp_path / "r.html"))
    assert report.exit_code == 0, report.output
    html = (tmp_path / "r.html").read_text()
    assert "signed by Dr Ada Lee (key " in html and "Clearances presented" in html


def test_the_text_form_clears_as_the_file_does(
    cli: Invoke, clinic: Callable[..., Run], tmp_path: Path
) -> None:
    signed = clinic()
    text = signed.lines()[-1]
    assert text.startswith("SPC1-")
    assert (tmp_path / "clinician-home" / "clearance-18-adverse-1.json").exists()
    assert cli("clear", LOCK, "--clearance", text.lower()).exit_code == 0


def test_the_patient_cannot_trust_or_sign_with_a_key_of_their_own(
    cli: Invoke, clinic: Callable[..., Run], tmp_path: Path
) -> None:
    made = cli("clinician", "init", "--name", "Dr Ada Lee", "--out", str(tmp_path / "me.json"))
    assert made.exit_code == 0, made.output
    pinned = cli("clinician", "trust", str(tmp_path / "me.json"), "--fingerprint",
                 fingerprint_in(made))
    assert "needs an endorsement signed by a trusted clinician" in pinned.output
    assert pinned.exit_code == 3
    own = cli("clinician", "sign-clearance", LOCK, "--profile", "Ann", "--toolkit",
              toolkit_of(cli), "--reason", "looks fine to me").lines()[-1]
    line = refused_line(cli("clear", LOCK, "--clearance", own))
    assert "signed by a key this toolkit does not trust" in line
    assert "18:adverse:1" in cli("lockouts").output


def test_altered_forged_expired_and_replayed_clearances_are_refused(
    cli: Invoke, clinic: Callable[..., Run], tmp_path: Path
) -> None:
    assert cli("adverse", "oozing", "--profile", "Ann").exit_code == 0
    clinic(LOCK, "--out", str(tmp_path / "c.json"))
    doc = json.loads((tmp_path / "c.json").read_text())

    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**doc, "lock": "18:adverse:2"}))
    assert "was altered: its lock says" in refused_line(
        cli("clear", "18:adverse:2", "--clearance", str(edited)))

    text = doc["clearance"]
    flipped = text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]
    assert "altered or forged" in refused_line(cli("clear", LOCK, "--clearance", flipped))

    assert "made for lock 18:adverse:1, not 18:adverse:2" in refused_line(
        cli("clear", "18:adverse:2", "--clearance", text))

    assert cli("clear", LOCK, "--clearance", text).exit_code == 0
    assert "already cleared" in cli("clear", LOCK, "--clearance", text).one_line_error()
    audit = json.loads(cli("clinician", "audit", "--json").stdout)
    refusals = [a["detail"] for a in audit if not a["accepted"]]
    assert len(refusals) == 4 and all(refusals)


def test_an_expired_clearance_is_refused(
    cli: Invoke, pus: None, clinician: Callable[..., str]
) -> None:
    week_ago = datetime.now(UTC) - timedelta(days=8)
    old = clinician(LOCK, issued=week_ago, valid_for=timedelta(days=7))
    assert "expired on" in refused_line(cli("clear", LOCK, "--clearance", old))
    assert LOCK in cli("lockouts").output
    fresh = clinician(LOCK, valid_for=timedelta(minutes=10))
    assert cli("clear", LOCK, "--clearance", fresh).exit_code == 0


def test_trusting_with_the_wrong_fingerprint_pins_nothing(
    cli: Invoke, as_clinician: Invoke, tmp_path: Path
) -> None:
    as_clinician("clinician", "init", "--name", "Dr Ada Lee", "--out", str(tmp_path / "a.json"))
    wrong = cli("clinician", "trust", str(tmp_path / "a.json"), "--fingerprint", "0000-1111")
    assert wrong.exit_code == 2 and "does not match" in wrong.output
    declined = cli("clinician", "trust", str(tmp_path / "a.json"), input="n\n")
    assert declined.exit_code == 2
    assert "no clinician key is trusted yet" in cli("clinician", "keys").output


def test_a_damaged_key_file_is_one_line(cli: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "scalppen-clinician-key/1", "name": "X", "public_key": "!!"}')
    assert "not a clinician key file" in cli("clinician", "trust", str(bad)).one_line_error()
    doc = Clinician("Dr Lee")
    data = json.loads(doc.pub.to_json())
    data["name"] = "Dr Lee"
    data["fingerprint"] = "0" * 39
    bad.write_text(json.dumps(data))
    assert "was altered" in cli("clinician", "trust", str(bad)).one_line_error()


def test_signing_without_a_key_says_how_to_make_one(as_clinician: Invoke) -> None:
    run = as_clinician("clinician", "sign-clearance", LOCK, "--profile", "Ann", "--toolkit",
                       "0123456789abcdef", "--reason", "x")
    assert "scalppen clinician init --name NAME" in run.one_line_error()


def test_a_second_init_keeps_the_first_key(as_clinician: Invoke) -> None:
    first = as_clinician("clinician", "init", "--name", "Dr Ada Lee")
    assert first.exit_code == 0
    again = as_clinician("clinician", "init", "--name", "Dr Other")
    assert "already has a clinician key" in again.one_line_error()
    assert fingerprint_in(first) in as_clinician("clinician", "show").output
