"""Which clinician keys a toolkit trusts, and what a stored clearance is worth later:
pinned once at set-up, later keys only by endorsement, revocation, hand-written rows,
replay, and clearances recorded before they were signed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.host.clinicians import Clinician, clear_lock, trusted_clinician

from scalppen import store as S
from scalppen.policy import adverse_lock_id, evaluate
from scalppen.policy.errors import ClearanceError
from scalppen.store.migrations import MIGRATIONS
from scalppen.workflows.clearing import pin_key, present_clearance

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D = timedelta(days=1)


@pytest.fixture
def db(db_target: str) -> S.Store:
    return S.open_store(db_target)


def pus(db: S.Store) -> tuple[S.Profile, str]:
    ann = S.add_profile(db, "Ann", birth_year=1980, now=NOW - 10 * D)
    ev = S.report_adverse_event(db, ann.id, "pus", at=NOW - D)
    return ann, adverse_lock_id(ev.id)


def locked(db: S.Store, prof: S.Profile) -> bool:
    return 18 in {r.rule for r in evaluate(S.load_history(db, prof.id), now=NOW).refusals}


def test_the_first_key_is_pinned_later_ones_need_an_endorsement(db: S.Store) -> None:
    clinic = trusted_clinician(db, "Dr Lee", at=NOW - 5 * D)
    patient = Clinician("Dr Me")
    with pytest.raises(ClearanceError, match="needs an endorsement"):
        pin_key(db, patient.pub, endorsement=None, now=NOW)
    # endorsed by their own key: not a trusted one
    self_made = patient.endorse(patient, toolkit=S.toolkit_id(db), issued=NOW).text()
    with pytest.raises(ClearanceError, match="does not trust"):
        pin_key(db, patient.pub, endorsement=self_made, now=NOW)
    assert [k.name for k in S.list_clinician_keys(db)] == ["Dr Lee"]

    colleague = Clinician("Dr Ngo")
    endorsement = clinic.endorse(colleague, toolkit=S.toolkit_id(db), issued=NOW).text()
    with pytest.raises(ClearanceError, match="made for key"):  # another key than endorsed
        pin_key(db, patient.pub, endorsement=endorsement, now=NOW)
    key = pin_key(db, colleague.pub, endorsement=endorsement, now=NOW)
    assert key.endorsed_by == clinic.pub.fingerprint
    attempts = S.list_attempts(db)
    assert [a.accepted for a in attempts] == [True, False, False, False, True]
    assert all(a.detail for a in attempts)


def test_a_pus_lock_holds_until_a_trusted_clinician_signs(db: S.Store) -> None:
    ann, lock = pus(db)
    doc = trusted_clinician(db, at=NOW - 5 * D)
    stranger = Clinician("Dr Lee")
    forged = stranger.sign(lock, profile="Ann", toolkit=S.toolkit_id(db), issued=NOW)
    with pytest.raises(ClearanceError, match="does not trust"):
        present_clearance(db, forged.text(), lock_id=lock, profile=ann, now=NOW)
    assert locked(db, ann)
    accepted = clear_lock(db, doc, lock, ann, at=NOW, reason="healed")
    assert accepted.key.fingerprint == doc.pub.fingerprint
    assert not locked(db, ann)
    record = S.load_history(db, ann.id).clearances[0]
    assert (record.clinician_name, record.signed_by, record.reason) == (
        "Dr Lee", doc.pub.fingerprint, "healed")
    assert [a.accepted for a in S.list_attempts(db)] == [True, False, True]


def test_a_clearance_works_once_even_if_its_record_is_deleted(db: S.Store) -> None:
    ann, lock = pus(db)
    doc = trusted_clinician(db, at=NOW - 5 * D)
    text = doc.sign(lock, profile="Ann", toolkit=S.toolkit_id(db), issued=NOW).text()
    present_clearance(db, text, lock_id=lock, profile=ann, now=NOW)
    db.execute("DELETE FROM clearances")  # the patient edits the database
    assert locked(db, ann)
    with pytest.raises(ClearanceError, match="already used"):
        present_clearance(db, text, lock_id=lock, profile=ann, now=NOW + timedelta(hours=1))
    assert locked(db, ann)


def test_a_row_written_by_hand_lifts_nothing(db: S.Store) -> None:
    ann, lock = pus(db)
    doc = trusted_clinician(db, at=NOW - 5 * D)
    other = S.report_adverse_event(db, ann.id, "oozing", at=NOW - D)
    good = doc.sign(adverse_lock_id(other.id), profile="Ann", toolkit=S.toolkit_id(db),
                    issued=NOW)
    # a real signed statement, copied into a row for another lock
    db.execute(
        "INSERT INTO clearances (lock_id, rule, profile_id, clinician_name, role, reason, at,"
        " clearance_id, key_fingerprint, statement) VALUES (?, 18, ?, 'Dr Lee', 'clinician',"
        " 'x', ?, 'feed', ?, ?)",
        (lock, ann.id, int(NOW.timestamp()), doc.pub.fingerprint, good.blob),
    )
    # and an unsigned one, as clearances were recorded before they were signed
    db.execute(
        "INSERT INTO clearances (lock_id, rule, profile_id, clinician_name, role, reason, at)"
        " VALUES (?, 18, ?, 'Dr Nobody', 'clinician', 'looks fine to me', ?)",
        (lock, ann.id, int(NOW.timestamp())),
    )
    assert S.load_history(db, ann.id).clearances == ()
    assert locked(db, ann)


def test_revoking_a_key_brings_back_the_locks_it_cleared(db: S.Store) -> None:
    ann, lock = pus(db)
    doc = trusted_clinician(db, at=NOW - 5 * D)
    clear_lock(db, doc, lock, ann, at=NOW)
    assert not locked(db, ann)
    S.revoke_key(db, doc.pub.fingerprint, at=NOW)
    assert locked(db, ann)
    again = doc.sign(lock, profile="Ann", toolkit=S.toolkit_id(db), issued=NOW)
    with pytest.raises(ClearanceError, match="revoked"):
        present_clearance(db, again.text(), lock_id=lock, profile=ann, now=NOW)
    # and with every key revoked, no new key can be pinned without an endorsement
    with pytest.raises(ClearanceError, match="needs an endorsement"):
        pin_key(db, Clinician("Dr Me").pub, endorsement=None, now=NOW)


def test_each_toolkit_has_its_own_id(tmp_path: Path) -> None:
    ids = {S.toolkit_id(S.open_store(tmp_path / f"{n}.db")) for n in range(5)}
    assert len(ids) == 5 and all(len(i) == 16 for i in ids)


def test_a_clearance_for_another_toolkit_is_refused(tmp_path: Path) -> None:
    home, other = S.open_store(tmp_path / "a.db"), S.open_store(tmp_path / "b.db")
    ann, lock = pus(home)
    pus(other)
    doc = trusted_clinician(home, at=NOW - D)
    pin_key(other, doc.pub, endorsement=None, now=NOW - D)
    for_other = doc.sign(lock, profile="Ann", toolkit=S.toolkit_id(other), issued=NOW)
    with pytest.raises(ClearanceError, match="made for another toolkit"):
        present_clearance(home, for_other.text(), lock_id=lock, profile=ann, now=NOW)


def test_clearances_recorded_before_signatures_stay_as_history(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO profiles (id, name, role, created_at) VALUES (1, 'Ann', 'patient',"
                 " ?)", (int((NOW - 9 * D).timestamp()),))
    conn.execute("INSERT INTO adverse_events (id, profile_id, at, kind) VALUES (1, 1, ?, 'pus')",
                 (int((NOW - D).timestamp()),))
    conn.execute("INSERT INTO clearances (lock_id, rule, profile_id, clinician_name, role,"
                 " reason, at) VALUES ('18:adverse:1', 18, 1, 'Dr Nobody', 'clinician',"
                 " 'looks fine to me', ?)", (int(NOW.timestamp()),))
    conn.commit()
    conn.close()
    path.chmod(0o600)
    db = S.open_store(path)
    assert db.schema_version == len(MIGRATIONS)
    assert [c.clinician_name for c in S.list_clearances(db)] == ["Dr Nobody"]
    assert locked(db, S.get_profile(db, 1))
