"""The store on either engine, and opening it on SQLite: file mode, WAL, foreign
keys, busy timeout, migrations (PostgreSQL: ``store.postgres``).

The database holds the pens' permit keys and patients' health answers, so the file
is created readable and writable by its owner only (0600) and refused on open if
anyone else may read it.

A database is made new only where no file exists, and never appears half made: it
is created and migrated under a temporary name, then linked into place. An existing
file that is empty, truncated or not SQLite is refused, never replaced: it may be
all that is left of a patient's history (adverse events, screening). A database
that cannot be written (a read-only directory or file) opens read-only: reading
commands work, and a write fails with one line saying so.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from scalppen.store.dialect import SQLITE, Dialect, Row
from scalppen.store.errors import (
    CorruptDatabaseError,
    DatabaseLockedError,
    InsecurePermissionsError,
    NotFoundError,
    ReadOnlyDatabaseError,
    SchemaTooNewError,
    StoreError,
)
from scalppen.store.migrations import MIGRATIONS, SCHEMA_VERSION
from scalppen.store.schema import SCHEMA, SCHEMA_AT

SQLITE_HEADER: Final = b"SQLite format 3\x00"
DEFAULT_TIMEOUT_S: Final = 5.0
FILE_MODE: Final = 0o600

Params = Sequence[Any] | dict[str, Any]


_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    """True for ``scheme://...``: a database URL, never taken for a file name."""
    return bool(_URL.match(text))


def to_ts(moment: datetime) -> int:
    """A timezone-aware time as Unix seconds.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware (use datetime.now(UTC))")
    return int(moment.timestamp())


def from_ts(value: int | float | None) -> datetime | None:
    """Unix seconds (None or 0 = unknown) as a UTC time."""
    if value is None or value == 0:
        return None
    return datetime.fromtimestamp(value, UTC)


def utcnow() -> datetime:
    """The current time in UTC (the store's default when no time is given)."""
    return datetime.now(UTC)


def translate_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """Turn an sqlite3 error into the store's typed error with a one-line message."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return ReadOnlyDatabaseError(
            f"the database {path} is read-only here (the file or its directory cannot be "
            "written): this command changes it; make it writable, or use --db"
        )
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return DatabaseLockedError(
            f"the database {path} is locked by another program (is another scalppen "
            "running?): close it and try again"
        )
    if "profiles_name" in text:  # migration 3's unique index
        return StoreError("a profile of that name was just added: give another name")
    if "not a database" in text or "malformed" in text or "disk image" in text:
        return CorruptDatabaseError(
            f"{path} is not a scalppen database or it is damaged: restore a backup or "
            "choose another file"
        )
    return StoreError(f"database error in {path}: {exc}")


class Store:
    """An open session store: one connection (SQLite or PostgreSQL), used from one
    thread.

    Use as a context manager, or call :meth:`close`. Repository functions in
    ``scalppen.store`` take a ``Store`` as their first argument and write SQL once,
    with ``?`` parameters; the dialect makes it the engine's.
    """

    def __init__(self, conn: Any, path: Path | str, dialect: Dialect = SQLITE) -> None:
        self._conn = conn
        #: the file, or the server's URL without its password (for messages)
        self.path = path
        self.dialect = dialect
        self._depth = 0
        #: opened read-only (the file or its directory cannot be written)
        self.read_only = False
        #: errors of this engine's driver, and how they become the store's
        self._driver_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        self._translate: Any = translate_error
        self._begin = "BEGIN IMMEDIATE"
        #: (room, user) stamped on the rows that matter (clinic audit; ``scalppen.actor``)
        self.actor: tuple[str, str] = ("", "")
        #: where this database's sealing key is kept (``store.sealing``; set on first use)
        self.vault: Any = None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Translate driver errors raised inside into the store's typed errors."""
        try:
            yield
        except self._driver_errors as exc:
            raise self._translate(exc, self.path) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one write transaction (nested blocks join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self.errors():
            self._conn.execute(self._begin)
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            with contextlib.suppress(*self._driver_errors):
                self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        with self.errors():
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement (committed at once outside a transaction); its cursor
        (``rowcount``)."""
        with self.errors():
            return self._conn.execute(self.dialect.sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for many parameter rows."""
        with self.errors():
            self._conn.cursor().executemany(self.dialect.sql(sql), rows)

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        """Insert rows known to be new (the caller holds the lock that makes them so):
        PostgreSQL's COPY, one stream instead of a statement per row; SQLite's
        executemany. ``table`` and ``columns`` are the store's own names."""
        if not rows:
            return
        if self.dialect is SQLITE:
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                             rows)
            return
        with self.errors(), self._conn.cursor().copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def hold(self, table: str, column: str, value: Any) -> None:
        """Inside a transaction: keep other connections from writing for the same row
        until it ends (PostgreSQL: the row's lock; SQLite's write transaction already
        runs alone). ``table`` and ``column`` are the store's own names."""
        if self.dialect is not SQLITE:
            self.query_one(f"SELECT 1 FROM {table} WHERE {column} = ? FOR UPDATE", (value,))

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run an ``INSERT`` into a table with an ``id`` column; the new row's id."""
        with self.errors():
            row = self._conn.execute(self.dialect.sql(sql + " RETURNING id"), params).fetchone()
        return int(row[0])

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """Rows of a query."""
        with self.errors():
            rows: list[Row] = self._conn.execute(self.dialect.sql(sql), params).fetchall()
            return rows

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        with self.errors():
            row: Row | None = self._conn.execute(self.dialect.sql(sql), params).fetchone()
            return row

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        if self.dialect is not SQLITE:
            from scalppen.store.postgres import schema_version

            return schema_version(self)
        row = self.query_one("PRAGMA user_version")
        return int(row[0]) if row else 0

    def set_schema_version(self, number: int) -> None:
        """Stamp the schema version (inside the migration's transaction)."""
        if self.dialect is not SQLITE:
            from scalppen.store.postgres import set_schema_version

            set_schema_version(self, number)
            return
        self.execute(f"PRAGMA user_version = {int(number)}")


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)
    os.chmod(path, FILE_MODE)  # whatever the umask did


def check_file(path: Path) -> None:
    """Check an existing database file: owner-only mode and an SQLite header.

    Raises:
        InsecurePermissionsError: group or others may access the file.
        CorruptDatabaseError: the file is not an SQLite database.
    """
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise CorruptDatabaseError(f"{path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise InsecurePermissionsError(
            f"{path} can be read by other users (mode {stat.S_IMODE(st.st_mode):o}): "
            f"run 'chmod 600 {path}' and try again"
        )
    if st.st_size == 0:
        raise CorruptDatabaseError(
            f"{path} is empty (0 bytes): it holds no data, and scalppen will not start a "
            "new database over it; restore it from a backup, or move it away to start anew"
        )
    with path.open("rb") as fh:
        header = fh.read(HEADER_SIZE)
    if header[: len(SQLITE_HEADER)] != SQLITE_HEADER:
        raise CorruptDatabaseError(
            f"{path} is not a scalppen database (not SQLite): choose another file"
        )
    page = int.from_bytes(header[16:18], "big") if len(header) >= 18 else 0
    page = 65536 if page == 1 else page
    if len(header) >= HEADER_SIZE and (page < 512 or page & (page - 1)):
        raise CorruptDatabaseError(
            f"{path} is damaged (its header gives a page size of {page}): restore it from "
            "a backup; it was not changed"
        )
    short = _truncated(header, st.st_size)
    if short:
        raise CorruptDatabaseError(
            f"{path} is truncated ({short}): restore it from a backup; it was not changed"
        )


#: The SQLite file header (https://sqlite.org/fileformat.html, section 1.3).
HEADER_SIZE: Final = 100


def _truncated(header: bytes, size: int) -> str:
    """Why a file with this header and size is cut short ("" if it is not)."""
    if len(header) < HEADER_SIZE:
        return f"{size} bytes, less than SQLite's 100-byte header"
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if size % page:
        return f"{size} bytes is not a whole number of {page}-byte pages"
    pages = int.from_bytes(header[28:32], "big")
    valid = header[92:96] == header[24:28]  # the in-header size is current
    if valid and pages and size < pages * page:
        return f"{size} bytes, the header says {pages * page}"
    return ""


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def apply_migrations(store: Store, current: int) -> None:
    """From version ``current`` to this program's: a new database (version 0) is made
    from ``SCHEMA``; an older one runs the migrations it lacks. Inside the caller's
    transaction."""
    if current == 0:
        for statement in _split(store.dialect.ddl(SCHEMA)):
            store.execute(statement)
        store.execute("INSERT INTO toolkit (one, toolkit_id) VALUES (1, ?)",
                      (os.urandom(8).hex(),))
        current = SCHEMA_AT
        store.set_schema_version(current)
    for number in range(current + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[number - 1]
        for statement in _split(store.dialect.ddl(script) if number > SCHEMA_AT else script):
            store.execute(statement)
        store.set_schema_version(number)


def migrate(store: Store) -> int:
    """Bring the schema up to date, atomically.

    Returns:
        The number of migrations applied.

    Raises:
        SchemaTooNewError: the database is newer than this program.
    """
    postgres = store.dialect is not SQLITE
    # A migration that rebuilds a table drops the old one: with foreign keys on, that
    # would cascade to the rows referring to it. They are off while it runs (SQLite's
    # procedure for schema changes, https://sqlite.org/lang_altertable.html) and the
    # result is checked before it commits. PostgreSQL checks them as it goes.
    if not postgres:
        store.execute("PRAGMA foreign_keys = OFF")
    try:
        with store.transaction():
            if postgres:
                from scalppen.store.postgres import lock_for_migration

                lock_for_migration(store)
            current = store.schema_version
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{store.path} was written by a newer scalppen (schema {current}, this "
                    f"one knows {SCHEMA_VERSION}): upgrade scalppen"
                )
            apply_migrations(store, current)
            broken = None if postgres else store.query_one("PRAGMA foreign_key_check")
            if broken is not None:
                dangling = [broken[i] for i in range(4)]
                raise StoreError(
                    f"{store.path}: the migration left a dangling reference {dangling}"
                )
    finally:
        if not postgres:
            store.execute("PRAGMA foreign_keys = ON")
    return SCHEMA_VERSION - current


def open_store(
    path: str | os.PathLike[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, create: bool = True
) -> Store:
    """Open (or create) the store and migrate it: an SQLite file, read-only when it
    cannot be written, or a PostgreSQL database named by a ``postgresql://`` URL.

    Args:
        path: the database file, or the server's URL.
        timeout_s: how long to wait for another program's write lock (or the server).
        create: create the file (mode 0600) if it does not exist.

    Returns:
        The open store (``store.read_only`` tells whether writes will fail).

    Raises:
        NotFoundError: the file does not exist and ``create`` is False.
        InsecurePermissionsError: the file is readable by others.
        CorruptDatabaseError: the file is empty, truncated, not SQLite or damaged.
        DatabaseLockedError: another program holds the lock past ``timeout_s``.
        SchemaTooNewError: the file comes from a newer version.
        ReadOnlyDatabaseError: read-only, and written by an older version (not migrated).
        StoreError: a URL of another kind, or a server that cannot be reached.
    """
    text = os.fspath(path)
    if is_url(text):
        from scalppen.store.postgres import open_postgres

        return open_postgres(text, timeout_s=timeout_s)
    db_path = Path(path)
    if not db_path.exists():
        if not create:
            raise NotFoundError(f"no database at {db_path}: run a command that creates it first")
        _create_new(db_path, timeout_s)
    check_file(db_path)
    if not os.access(db_path, os.W_OK):
        # opened read-write, SQLite would leave -wal and -shm files beside it
        return _open(db_path, timeout_s, read_only=True)
    try:
        return _open(db_path, timeout_s, read_only=False)
    except ReadOnlyDatabaseError:
        return _open(db_path, timeout_s, read_only=True)


def _create_new(db_path: Path, timeout_s: float) -> None:
    """A new, migrated database at ``db_path``, which appears whole or not at all."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(f".{db_path.name}.new-{os.getpid()}")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    try:
        _create_private_file(tmp)
        _open(tmp, timeout_s, read_only=False).close()
        # never over a file that appeared meanwhile (another process made it: use it)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, db_path)
    except PermissionError as exc:
        raise ReadOnlyDatabaseError(
            f"cannot create the database {db_path} ({exc.strerror}): choose a writable "
            "SCALPPEN_HOME or --db"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _open(db_path: Path, timeout_s: float, *, read_only: bool) -> Store:
    try:
        if read_only:
            uri = f"{db_path.resolve().as_uri()}?mode=ro"
            if not os.access(db_path.parent, os.W_OK) and not _has_wal(db_path):
                uri += "&immutable=1"  # nothing can change it, and no -shm can be made
            conn = sqlite3.connect(uri, timeout=timeout_s, isolation_level=None, uri=True)
        else:
            conn = sqlite3.connect(db_path, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate_error(exc, db_path) from exc
    conn.row_factory = sqlite3.Row
    store = Store(conn, db_path)
    store.read_only = read_only
    try:
        store.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        store.execute("PRAGMA foreign_keys = ON")
        store.query_one("PRAGMA schema_version")  # reads page 1: fails on a damaged file
        if read_only:
            _check_schema_read_only(store)
            return store
        mode = store.query_one("PRAGMA journal_mode = WAL")
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"{db_path}: cannot switch to WAL journal mode")
        store.execute("PRAGMA synchronous = NORMAL")
        migrate(store)
    except BaseException:
        store.close()
        raise
    return store


def _has_wal(db_path: Path) -> bool:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def _check_schema_read_only(store: Store) -> None:
    current = store.schema_version
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{store.path} was written by a newer scalppen (schema {current}, this one "
            f"knows {SCHEMA_VERSION}): upgrade scalppen"
        )
    if current < SCHEMA_VERSION:
        raise ReadOnlyDatabaseError(
            f"{store.path} is read-only and was written by an older scalppen (schema "
            f"{current} of {SCHEMA_VERSION}), and is not upgraded read-only: make it and "
            "its directory writable, then run any scalppen command once to upgrade it"
        )
