"""The database file is never replaced and never half made (issue 14 item 12).

A 0-byte database used to be taken as new: migrated over, and the adverse-event
locks it had held silently vanished. Now an existing file that is empty, truncated
or not SQLite is refused with one line and left as it is; only a path where no
file exists gets a new database, made under a temporary name and linked in whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.store.errors import CorruptDatabaseError
from scalppen.store.migrations import SCHEMA_VERSION


def _private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _filled(path: Path) -> Path:
    with S.open_store(path) as db:
        S.add_profile(db, "Ada", birth_year=1985)
    return path


def test_an_empty_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = _private(tmp_path / "scalppen.db", b"")
    with pytest.raises(CorruptDatabaseError, match=r"empty .0 bytes.*backup"):
        S.open_store(path)
    assert path.read_bytes() == b""  # not initialised over


@pytest.mark.parametrize("keep", [50, 4096 + 100, -4096])
def test_a_truncated_database_is_refused_and_left_as_it_is(tmp_path: Path, keep: int) -> None:
    path = _filled(tmp_path / "scalppen.db")
    data = path.read_bytes()
    assert len(data) >= 3 * 4096
    cut = data[:keep]
    _private(path, cut)
    with pytest.raises(CorruptDatabaseError, match="truncated"):
        S.open_store(path)
    assert path.read_bytes() == cut


def test_a_new_database_appears_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "home" / "scalppen.db"
    with S.open_store(path) as db:
        assert db.schema_version == SCHEMA_VERSION and not db.read_only
    names = sorted(p.name for p in path.parent.iterdir())
    assert [n for n in names if n.startswith(".")] == []  # no temporary left
    assert os.stat(path).st_mode & 0o777 == 0o600
