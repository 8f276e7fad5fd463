"""The SQLite store: file mode, migrations, errors, repositories, exports."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.host.clinicians import clear_lock, trusted_clinician

from scalppen import store as S
from scalppen.policy import (
    CONTRAINDICATIONS,
    ClearanceError,
    SessionRequest,
    adverse_lock_id,
    evaluate,
    issue_permit,
    screening_lock_id,
)
from scalppen.store.migrations import SCHEMA_VERSION
from scalppen.workflows.clearing import present_clearance

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D = timedelta(days=1)


@pytest.fixture
def db(db_target: str) -> Iterator[S.Store]:
    with S.open_store(db_target) as store:
        yield store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_is_owner_only_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "pen.db"
    old = os.umask(0)
    try:
        with S.open_store(path) as db:
            assert db.schema_version == SCHEMA_VERSION
            assert db.query_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
            assert db.query_one("PRAGMA foreign_keys")[0] == 1  # type: ignore[index]
            assert db.query_one("PRAGMA busy_timeout")[0] == 5000  # type: ignore[index]
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_migrations_build_every_table(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with S.open_store(path) as db:
        assert db.schema_version == SCHEMA_VERSION
        tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "pens",
        "profiles",
        "sessions",
        "telemetry_summaries",
        "log_records",
        "events",
        "wear_snapshots",
        "screenings",
        "adverse_events",
        "clearances",
        "permits",
    } <= tables
    with S.open_store(path) as db:  # reopening applies nothing twice
        assert db.schema_version == SCHEMA_VERSION


def test_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(S.NotFoundError):
        S.open_store(tmp_path / "none.db", create=False)


def test_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pen.db"
    S.open_store(path).close()
    path.chmod(0o644)
    with pytest.raises(S.InsecurePermissionsError, match="chmod 600"):
        S.open_store(path)


def test_not_a_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    path.chmod(0o600)
    with pytest.raises(S.CorruptDatabaseError):
        S.open_store(path)


def test_damaged_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "pen.db"
    with S.open_store(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[16:100] = b"\xff" * 84  # page size and header fields
    path.write_bytes(bytes(data))
    with pytest.raises(S.CorruptDatabaseError):
        S.open_store(path)


def test_locked_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "pen.db"
    S.open_store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(S.DatabaseLockedError, match="locked"):
            S.open_store(path, timeout_s=0.05)
        with _open_without_migrating(path) as db, pytest.raises(S.DatabaseLockedError):
            S.add_profile(db, "Ann", now=NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _open_without_migrating(path: Path) -> S.Store:
    conn = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return S.Store(conn, path)


def test_schema_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pen.db"
    with S.open_store(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(S.SchemaTooNewError):
        S.open_store(path)


def test_foreign_keys_are_enforced(db: S.Store) -> None:
    with pytest.raises(S.StoreError):
        db.execute(
            "INSERT INTO screenings (profile_id, at, answers_json, result) VALUES (99, 0, '{}', "
            "'clear')"
        )


def test_pens_and_permit_key(db: S.Store) -> None:
    pen = S.upsert_pen(
        db,
        "SP-1",
        model="ScalpPen S3",
        fw_version="1.0",
        hw_rev="B",
        ble_address="AA:BB",
        limits={"ceiling_um": 1000, "session_cap_s": 900},
        paired_at=NOW,
    )
    assert not pen.has_key and pen.paired_at == NOW
    S.set_permit_key(db, "SP-1", b"k" * 32)
    assert S.get_permit_key(db, "SP-1") == b"k" * 32
    pen = S.upsert_pen(db, "SP-1", model="ScalpPen S3", fw_version="1.1")
    assert pen.has_key and pen.fw_version == "1.1" and pen.paired_at == NOW
    assert S.pen_limits(db, "SP-1").ceiling_um == 1000
    with pytest.raises(S.NotFoundError):
        S.get_pen(db, "nope")
    with pytest.raises(S.StoreError):
        S.set_permit_key(db, "SP-1", b"short")


def test_profiles(db: S.Store) -> None:
    p = S.add_profile(db, "Ann", role="patient", birth_year=1990, now=NOW)
    assert S.get_profile(db, p.id) == p
    with pytest.raises(S.StoreError):
        S.add_profile(db, "X", role="admin")
    with pytest.raises(S.StoreError):
        S.add_profile(db, "  ")


def answers(**yes: bool) -> dict[str, bool]:
    return {**{k: False for k in CONTRAINDICATIONS}, **yes}


def test_policy_from_the_store_end_to_end(db: S.Store) -> None:
    ann = S.add_profile(db, "Ann", birth_year=1990, now=NOW - 10 * D)
    S.upsert_pen(db, "SP-1", paired_at=NOW - 10 * D, owner_profile_id=ann.id)
    S.set_permit_key(db, "SP-1", bytes(32))
    history = S.load_history(db, ann.id, pen_serial="SP-1")
    assert {r.rule for r in evaluate(history, now=NOW).refusals} == {17, 19}

    screening = S.record_screening(db, ann.id, answers(anticoagulants=True), now=NOW - D)
    assert screening.result == "contraindicated"
    S.record_attestation(db, ann.id, pen_serial="SP-1", at=NOW)
    d = evaluate(S.load_history(db, ann.id, pen_serial="SP-1"), now=NOW)
    assert [r.lock_id for r in d.refusals] == [screening_lock_id(screening.id)]

    doc = trusted_clinician(db, at=NOW - D)
    lock = screening_lock_id(screening.id)
    for_bo = doc.sign(lock, profile="Bo", toolkit=S.toolkit_id(db), issued=NOW)
    with pytest.raises(ClearanceError, match="made for profile 'Bo'"):
        present_clearance(db, for_bo.text(), lock_id=lock, profile=ann, now=NOW)
    assert not S.load_history(db, ann.id).clearances
    clear_lock(db, doc, screening_lock_id(screening.id), ann, at=NOW,
               reason="aspirin 75 mg only")
    d = evaluate(S.load_history(db, ann.id, pen_serial="SP-1"), SessionRequest(500), now=NOW)
    assert d.allowed, d.refusals
    permit = issue_permit(d, bytes(32), NOW)
    issued = S.record_permit(db, "SP-1", permit, profile_id=ann.id)
    assert issued.nonce == permit.nonce
    with pytest.raises(S.StoreError, match="nonce"):
        S.record_permit(db, "SP-1", permit, profile_id=ann.id)

    # the permit's session is not synced yet: it counts for rule 6 as if it ran
    d = evaluate(S.load_history(db, ann.id, pen_serial="SP-1"), SessionRequest(500), now=NOW)
    assert [r.rule for r in d.refusals] == [6]
    assert "was permitted" in d.refusals[0].reason and "SP-1" in d.refusals[0].reason

    ev = S.report_adverse_event(db, ann.id, "pus", severity="moderate", at=NOW)
    d = evaluate(S.load_history(db, ann.id, pen_serial="SP-1"), now=NOW)
    assert [r.lock_id for r in d.refusals] == [None, adverse_lock_id(ev.id)]
    S.report_adverse_event(db, ann.id, "redness", at=NOW)
    with pytest.raises(S.StoreError):
        S.report_adverse_event(db, ann.id, "itchy")
    assert [a.kind for a in S.list_adverse_events(db, ann.id)] == ["pus", "redness"]


def test_service_record_feeds_rule_16(db: S.Store) -> None:
    S.upsert_pen(db, "SP-1")
    S.record_wear(db, "SP-1", {"hp_first_session": int((NOW - 100 * D).timestamp())}, at=NOW)
    assert S.handpiece_record(db, "SP-1").first_session_at == NOW - 100 * D
    S.record_service(db, "SP-1", by_name="Service Co", at=NOW - D)
    assert S.handpiece_record(db, "SP-1").serviced_at == NOW - D


def wear(used: int, cart: bytes = b"\x01" * 8) -> dict[str, object]:
    return {
        "cartridge": 1,
        "cart_id": cart,
        "needles": 12,
        "strokes_used": used,
        "strokes_rated": 100_000,
        "first_use": int(NOW.timestamp()),
        "expiry": int((NOW + 700 * D).timestamp()),
        "cart_state": 1,
        "hp_strokes": used,
        "hp_punctures": used * 12,
        "hp_sessions": 1,
        "hp_run_s": 600,
        "hp_first_session": int(NOW.timestamp()),
    }


def fill(db: S.Store) -> None:
    ann = S.add_profile(db, "Ann", now=NOW)
    S.upsert_pen(db, "SP-1", owner_profile_id=ann.id)
    t = int(NOW.timestamp())
    S.ingest_log_records(
        db,
        "SP-1",
        [
            {
                "seq": 1,
                "time": t,
                "kind": 5,
                "flags": 0,
                "code": 0,
                "depth_um": 500,
                "a": 0,
                "b": 0,
            },
            {
                "seq": 2,
                "time": t + 600,
                "kind": 6,
                "flags": 0,
                "code": 0,
                "depth_um": 500,
                "a": 600_000,
                "b": 70_000,
            },
        ],
        now=NOW,
    )
    S.record_event(
        db,
        "fault",
        code=0x60,
        message='stall, "quoted", a,b',
        pen_serial="SP-1",
        data={"x": 1},
        at=NOW,
    )
    S.record_wear(db, "SP-1", wear(50_000), at=NOW)
    S.record_wear(db, "SP-1", wear(70_000), at=NOW + D)


@pytest.mark.parametrize("dataset", ["sessions", "log", "events", "wear"])
def test_json_export_round_trips(db: S.Store, dataset: str, tmp_path: Path) -> None:
    fill(db)
    out = tmp_path / f"{dataset}.json"
    n = S.export(db, dataset, "json", out)
    assert n > 0
    assert json.loads(out.read_text()) == S.dataset_rows(db, dataset)
    assert mode(out) == 0o600


@pytest.mark.parametrize("dataset", ["sessions", "log", "events", "wear"])
def test_csv_export_round_trips(db: S.Store, dataset: str) -> None:
    fill(db)
    buf = io.StringIO()
    S.export(db, dataset, "csv", buf)
    back = list(csv.DictReader(io.StringIO(buf.getvalue())))
    expected = [
        {k: "" if v is None else str(v) for k, v in row.items()}
        for row in S.dataset_rows(db, dataset)
    ]
    assert back == expected


def test_unknown_export_format_or_dataset(db: S.Store) -> None:
    with pytest.raises(S.ExportFormatError):
        S.export(db, "sessions", "xlsx", io.StringIO())
    with pytest.raises(S.ExportFormatError):
        S.export(db, "patients", "csv", io.StringIO())


def test_export_never_contains_the_permit_key(db: S.Store) -> None:
    fill(db)
    S.set_permit_key(db, "SP-1", b"\xab" * 32)
    for dataset in S.DATASETS:
        buf = io.StringIO()
        S.export(db, dataset, "json", buf)
        assert "abab" not in buf.getvalue()


def test_cartridge_wear_keeps_the_latest_reading(db: S.Store) -> None:
    fill(db)
    S.record_wear(db, "SP-1", wear(10, cart=b"\x02" * 8), at=NOW + 2 * D)
    carts = S.cartridge_wear(db, "SP-1")
    assert [(c.cart_id, c.strokes_used) for c in carts] == [("01" * 8, 70_000), ("02" * 8, 10)]
    assert carts[0].punctures_used == 70_000 * 12


def test_telemetry_summary(db: S.Store) -> None:
    fill(db)
    session = S.list_sessions(db)[0]
    samples = [
        {"rate_x10": 1200, "temp_c10": 300, "motor_ma": 400, "battery_pct": 90, "contact": 1},
        {"rate_x10": 1180, "temp_c10": 320, "motor_ma": 450, "battery_pct": 88, "contact": 0},
    ]
    summary = S.summarise_telemetry(samples)
    S.record_telemetry_summary(db, session.id, summary)
    assert S.get_telemetry_summary(db, session.id) == summary
    assert summary.contact_pct == 50 and summary.rate_mean_x10 == 1190
