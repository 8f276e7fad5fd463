"""One schema for both engines: a file made by the first version and migrated is the
same as one made new from SCHEMA, and PostgreSQL gets the same tables, columns and
constraints. A database URL is never taken for a file name."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from scalppen import store as S
from scalppen.store.migrations import MIGRATIONS, SCHEMA_VERSION


def sqlite_shape(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    shape: dict[str, Any] = {}
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for t in tables:
        shape[t] = {
            "columns": [tuple(r[1:]) for r in conn.execute(f'PRAGMA table_info("{t}")')],
            "fks": sorted(tuple(r[2:]) for r in conn.execute(f'PRAGMA foreign_key_list("{t}")')),
            "indexes": sorted(
                (r[1], r[2], tuple(c[2] for c in conn.execute(f'PRAGMA index_info("{r[1]}")')))
                for r in conn.execute(f'PRAGMA index_list("{t}")')
            ),
        }
    shape["version"] = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return shape


def test_a_migrated_file_is_the_same_as_a_new_one(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    old.chmod(0o600)
    S.open_store(old).close()
    S.open_store(tmp_path / "new.db").close()
    migrated, made = sqlite_shape(old), sqlite_shape(tmp_path / "new.db")
    assert migrated["version"] == made["version"] == SCHEMA_VERSION
    assert migrated.keys() == made.keys()
    for table in made:
        assert migrated[table] == made[table], table


def test_postgresql_gets_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    S.open_store(tmp_path / "new.db").close()
    lite = sqlite_shape(tmp_path / "new.db")
    import psycopg

    with S.open_store(pg_url) as db:
        assert db.schema_version == SCHEMA_VERSION
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name != 'scalppen_schema'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    pg: dict[str, list[tuple[str, bool]]] = {}
    for table, column, nullable in rows:
        pg.setdefault(table, []).append((column, nullable == "YES"))
    lite_cols = {
        t: [(c[0], not c[2] and not c[4]) for c in v["columns"]]
        for t, v in lite.items() if t != "version"
    }
    assert pg == lite_cols


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root@localhost/clinic", "unknown database URL scheme 'mysql'"),
        ("postgresql://nobody@127.0.0.1:1/clinic", "cannot reach the database server"),
    ],
)
def test_a_url_is_never_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
                               words: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(S.StoreError, match=words) as err:
        S.open_store(url, timeout_s=1)
    assert len(str(err.value).splitlines()) == 1
    assert os.listdir(tmp_path) == []  # no folder named "postgresql:" or "mysql:"


def test_the_password_never_shows_in_a_message() -> None:
    with pytest.raises(S.StoreError) as err:
        S.open_store("postgresql://clinic:s3cret@127.0.0.1:1/clinic", timeout_s=1)
    assert "s3cret" not in str(err.value) and "clinic:***@" in str(err.value)
