"""Backups, restores and copies between databases, across the two engines."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path
from typing import Any

import pytest
from tests.host.test_report import NOW, filled_store

from scalppen import store as S
from scalppen.policy import adverse_lock_id, find_locks
from scalppen.store.migrations import SCHEMA_VERSION
from scalppen.store.transfer import (
    TABLES,
    TransferError,
    copy_into,
    read_backup,
    restore,
    snapshot,
    write_backup,
)


def tables(db: S.Store) -> dict[str, Any]:
    snap = snapshot(db)
    return {t: sorted(map(repr, rows)) for t, (cols, rows) in snap.tables.items()}


@pytest.mark.parametrize("direction", ["sqlite-to-postgresql", "postgresql-to-sqlite"])
def test_a_backup_restores_whole_into_the_other_engine(tmp_path: Path, pg_url: str,
                                                       direction: str) -> None:
    files = str(tmp_path / "a.db")
    src, dst = (files, pg_url) if direction.startswith("sqlite") else (pg_url, files)
    db, ann = filled_store(src)  # type: ignore[arg-type]
    before = tables(db)
    locks_before = find_locks(S.load_history(db, ann), NOW)
    out = tmp_path / "x.backup"
    counts = write_backup(db, out)
    db.close()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert counts["sessions"] == 5 and counts["clearances"] == 1
    with S.open_store(dst) as target:
        restore(target, read_backup(out))
        assert tables(target) == before
        # the clearance was signed for this toolkit: its id came along, it still lifts
        locks = find_locks(S.load_history(target, ann), NOW)
        assert [(k.lock_id, k.cleared) for k in locks] == [
            (k.lock_id, k.cleared) for k in locks_before]
        assert any(k.cleared for k in locks)
        # new rows after a restore get new ids (PostgreSQL's sequences moved past)
        assert S.add_profile(target, "Zed").id == ann + 1


def test_restore_refuses_a_database_with_data(tmp_path: Path) -> None:
    db, _ = filled_store(tmp_path / "a.db")
    write_backup(db, tmp_path / "x.backup")
    with pytest.raises(TransferError, match="is not empty"):
        restore(db, read_backup(tmp_path / "x.backup"))
    db.close()


@pytest.mark.parametrize("damage", ["cut", "garbage", "newer"])
def test_a_damaged_backup_is_refused_before_anything_is_written(tmp_path: Path,
                                                               damage: str) -> None:
    db, _ = filled_store(tmp_path / "a.db")
    out = tmp_path / "x.backup"
    write_backup(db, out)
    db.close()
    raw = gzip.decompress(out.read_bytes())
    if damage == "cut":
        out.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif damage == "garbage":
        out.write_bytes(b"not a backup")
    else:
        now = f'"schema": {SCHEMA_VERSION}'.encode()
        assert now in raw
        out.write_bytes(gzip.compress(raw.replace(now, b'"schema": 99', 1)))
    with pytest.raises(TransferError) as err:
        read_backup(out)
    assert len(str(err.value).splitlines()) == 1


def test_a_home_database_copies_into_a_clinics(tmp_path: Path, pg_url: str) -> None:
    home, ann = filled_store(tmp_path / "home.db")
    src = snapshot(home)
    home_sessions = len(S.list_sessions(home))
    home.close()
    with S.open_store(pg_url) as clinic:
        bo = S.add_profile(clinic, "Bo")
        other = S.report_adverse_event(clinic, bo.id, "redness")
        summary = copy_into(src, clinic)
        assert summary.added["profiles"] == 1 and summary.added["sessions"] == home_sessions
        ann_here = next(p for p in S.list_profiles(clinic) if p.id != bo.id)
        events = S.list_adverse_events(clinic, ann_here.id)
        assert [e.id for e in events] != [other.id] and events
        # the clearance names the adverse event by its id here, and lifts nothing here
        (clearance,) = S.list_clearances(clinic, ann_here.id)
        assert clearance.lock_id == adverse_lock_id(events[0].id)
        assert S.load_history(clinic, ann_here.id).clearances == ()
        assert len(S.list_sessions(clinic, profile_id=ann_here.id)) == home_sessions
        assert S.get_permit_key(clinic, "SP-1") is None
        with pytest.raises(TransferError, match="already has a profile called"):
            copy_into(src, clinic)
        assert len(S.list_profiles(clinic)) == 2


def test_every_table_is_in_the_backup() -> None:
    from scalppen.store.schema import SCHEMA

    made = {line.split()[2] for line in SCHEMA.splitlines() if line.startswith("CREATE TABLE")}
    assert made == set(TABLES)
