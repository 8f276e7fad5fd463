"""Profile names are unique in the store, whatever their case or spaces (issue 14
item 13): the command line picks profiles by name, so two alike would be ambiguous.
A database from before keeps every twin it holds, the later ones renamed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.store.db import _split
from scalppen.store.errors import StoreError
from scalppen.store.migrations import MIGRATIONS, SCHEMA_VERSION


def _old_store(path: Path, version: int, names: list[str]) -> Path:
    """A database written by the code of schema ``version`` with these profiles."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        for statement in _split(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.executemany("INSERT INTO profiles (name, role, created_at) VALUES (?, 'patient', 1)",
                     [(n,) for n in names])
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("again", ["Ada", "ada", "  ADA ", "Ada\t"])
def test_a_second_profile_of_the_same_name_is_refused(tmp_path: Path, again: str) -> None:
    with S.open_store(tmp_path / "x.db") as db:
        first = S.add_profile(db, "Ada", birth_year=1985)
        with pytest.raises(StoreError, match=f"profile {first.id} is already called 'Ada'"):
            S.add_profile(db, again)
        assert [p.name for p in S.list_profiles(db)] == ["Ada"]


def test_unicode_case_is_folded_as_the_command_line_folds_it(tmp_path: Path) -> None:
    with S.open_store(tmp_path / "x.db") as db:
        S.add_profile(db, "Ärzte Straße")
        with pytest.raises(StoreError, match="already called"):
            S.add_profile(db, "ÄRZTE STRASSE")


def test_the_schema_refuses_a_twin_written_past_the_check(tmp_path: Path) -> None:
    # another program (or an older scalppen) inserting directly
    with S.open_store(tmp_path / "x.db") as db:
        S.add_profile(db, "Ada")
        with pytest.raises(StoreError, match="profile of that name"):
            db.execute("INSERT INTO profiles (name, role, created_at) VALUES (' ADA', "
                       "'patient', 1)")
        assert len(S.list_profiles(db)) == 1


def test_twins_in_an_older_database_are_kept_and_told_apart(tmp_path: Path) -> None:
    path = _old_store(tmp_path / "v2.db", 2, ["Ada", "ada ", "Bob", "ADA"])
    with S.open_store(path) as db:
        assert db.schema_version == SCHEMA_VERSION
        names = {p.id: p.name for p in S.list_profiles(db)}
    assert names == {1: "Ada", 2: "ada (2)", 3: "Bob", 4: "ADA (4)"}
