"""The store on a PostgreSQL server: a clinic's laptops share one database.

``SCALPPEN_DB=postgresql://user@host/db`` (or ``--db``). The connection runs in
autocommit mode, so each statement outside :meth:`Store.transaction` commits at
once, as SQLite's does; a transaction is ``BEGIN``, and the migrations run under
an advisory lock so that two laptops upgrading at once do not both try. The
schema version lives in a one-row table (SQLite keeps it in ``user_version``).

psycopg is an optional dependency (``pip install 'scalppen[clinic]'``): a home
user's toolkit never needs it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

from scalppen.store.dialect import POSTGRES, pg_row_factory
from scalppen.store.errors import (
    DatabaseLockedError,
    ReadOnlyDatabaseError,
    StoreError,
)

if TYPE_CHECKING:
    from scalppen.store.db import Store

#: URL schemes taken for PostgreSQL (libpq's own two).
SCHEMES: Final = ("postgresql", "postgres")
#: Any number fits: the migrations of one database run one at a time.
MIGRATION_LOCK: Final = 0x5CA1_9E11
_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS scalppen_schema (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    version  INTEGER NOT NULL
)"""


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def translate_pg_error(exc: BaseException, where: str) -> StoreError:
    """A psycopg error as the store's typed error, one line."""
    import psycopg.errors as pe

    diag = getattr(exc, "diag", None)
    primary = (getattr(diag, "message_primary", None) or str(exc)).strip().splitlines()[0]
    constraint = getattr(diag, "constraint_name", None) or ""
    if isinstance(exc, pe.UniqueViolation):
        if constraint == "profiles_name":
            return StoreError("a profile of that name was just added: give another name")
        return StoreError(f"UNIQUE constraint failed: {constraint} ({primary})")
    if isinstance(exc, pe.ReadOnlySqlTransaction | pe.InsufficientPrivilege):
        return ReadOnlyDatabaseError(
            f"the database {where} cannot be written by this user ({primary}): this "
            "command changes it; ask the clinic's administrator for write access"
        )
    if isinstance(exc, pe.LockNotAvailable | pe.QueryCanceled):
        return DatabaseLockedError(
            f"the database {where} is busy ({primary}): try again in a moment"
        )
    if isinstance(exc, pe.OperationalError):
        return StoreError(
            f"cannot reach the database server {where} ({primary}): check SCALPPEN_DB or "
            "--db, and that the server runs"
        )
    return StoreError(f"database error in {where}: {primary}")


def open_postgres(url: str, *, timeout_s: float) -> Store:
    """Connect to the server named by ``url`` and bring its schema up to date.

    Raises:
        StoreError: not a PostgreSQL URL, psycopg missing, or the server unreachable.
    """
    from scalppen.store.db import Store, migrate

    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise StoreError(
            f"unknown database URL scheme {scheme!r} in {shown(url)}: give a file path "
            "(SQLite) or postgresql://user@host/database"
        )
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            f"{shown(url)} needs PostgreSQL support: pip install 'scalppen[clinic]'"
        ) from None
    where = shown(url)
    try:
        # Statements psycopg prepares (its 6th run of one) would otherwise keep the
        # generic plan the server chose then: made while a table was small, a seq
        # scan stays a seq scan as the clinic's log grows (the ingest's MIN/MAX(seq)
        # took 1.3 ms instead of 0.3). Plan each run with the values and today's
        # statistics; the parse stays prepared.
        conn = psycopg.connect(url, autocommit=True, row_factory=pg_row_factory,
                               connect_timeout=max(1, round(timeout_s)),
                               options="-c plan_cache_mode=force_custom_plan")
    except psycopg.Error as exc:
        raise translate_pg_error(exc, where) from None
    store = Store(conn, where, POSTGRES)
    store._driver_errors = (psycopg.Error,)
    store._translate = translate_pg_error
    store._begin = "BEGIN"
    try:
        store.execute(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'")
        store.execute("SET TIME ZONE 'UTC'")
        migrate(store)
    except BaseException:
        store.close()
        raise
    return store


def schema_version(store: Store) -> int:
    """The version stamped in ``scalppen_schema`` (0: a new database)."""
    row = store.query_one(
        "SELECT version FROM scalppen_schema WHERE one = 1"
        if _has_version_table(store) else "SELECT 0"
    )
    return int(row[0]) if row else 0


def _has_version_table(store: Store) -> bool:
    row = store.query_one("SELECT to_regclass('scalppen_schema') IS NOT NULL")
    return bool(row and row[0])


def set_schema_version(store: Store, number: int) -> None:
    store.execute(_VERSION_TABLE)
    store.execute(
        "INSERT INTO scalppen_schema (one, version) VALUES (1, ?)"
        " ON CONFLICT (one) DO UPDATE SET version = excluded.version",
        (int(number),),
    )


def lock_for_migration(store: Store) -> None:
    """Inside the migration's transaction: wait for any other laptop's migration."""
    store.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")


def identifier(name: str) -> str:
    """A database or role name safe to put in SQL (letters, digits, underscore)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise StoreError(f"{name!r} is not a plain database name")
    return name

