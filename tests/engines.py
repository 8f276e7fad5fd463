"""The store's two engines for tests: a file, or a fresh database on a throwaway
PostgreSQL server (started once per test run, as an unprivileged user when the
tests run as root; see tools/pgserver.py).

``db_target`` is what ``open_store`` takes: an SQLite path, or a URL of a new
database made for the test. Tests that take it run on both engines.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.pgserver import throwaway_server

ENGINES = ("sqlite", "postgresql")
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a throwaway server's maintenance database."""
    with throwaway_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


def new_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    import psycopg

    name = f"t{next(_numbers)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A new database for one test."""
    return new_database(pg_server)


@pytest.fixture(params=ENGINES)
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file path, or a PostgreSQL database URL: the test runs on both."""
    if request.param == "sqlite":
        return str(tmp_path / "pen.db")
    return str(request.getfixturevalue("pg_url"))
