"""Moving a database: a backup file, a restore, and a copy of one database into another.

A backup is the whole database, table by table, as gzip'd JSON lines (bytes in
base64): it reads back into either engine, whatever the one it came from. A
restore goes into an empty database and keeps every id, so lock ids and
clearances still name what they named. A copy merges a database into another that
may hold other patients (a home user's file into their clinic's): rows get new ids
there, and what refers to them follows (a session's adverse events, a lock id in
a clearance). A profile name the destination already has stops the copy before
anything is written (the same person, or another?); a pen the destination knows
already keeps what the destination knows of it (its key, its owner).

What a copy cannot carry: a clearance is signed for the toolkit it was given on,
so in the destination it is history and lifts nothing (a clinician there clears
the lock again); sealed permit keys are opened with the source's key and sealed
again with the destination's (``store.pens``).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from scalppen.store.db import Store
from scalppen.store.errors import StoreError
from scalppen.store.migrations import SCHEMA_VERSION

FORMAT: Final = "scalppen-backup/1"
#: Every table, parents before children (the order rows are written back in).
TABLES: Final = (
    "toolkit", "profiles", "pens", "sync_state", "log_records", "log_gaps", "sessions",
    "telemetry_summaries", "events", "wear_snapshots", "services", "screenings",
    "adverse_events", "clinician_keys", "clearances", "attestations", "permits",
    "clearance_attempts",
)
#: Tables whose ``id`` the database numbers.
NUMBERED: Final = frozenset({
    "profiles", "sessions", "events", "wear_snapshots", "services", "screenings",
    "adverse_events", "clearances", "attestations", "permits", "clearance_attempts",
})
#: Tables that hold patients' data: a restore needs them all empty.
_CONTENT: Final = tuple(t for t in TABLES if t != "toolkit")


class TransferError(StoreError):
    """A backup or copy that cannot be made or read back; nothing was written."""


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


#: Row order where a table refers to itself (an endorsing key before the endorsed).
_ORDER: Final = {"clinician_keys": "trusted_at, fingerprint"}


def _rows(db: Store, table: str) -> tuple[list[str], list[list[Any]]]:
    order = _ORDER.get(table, "1")
    rows = db.query(f"SELECT * FROM {table} ORDER BY {order}")
    if not rows:
        cols = [r["name"] for r in _columns(db, table)]
        return cols, []
    cols = list(rows[0].keys())
    return cols, [[_encode(r[c]) for c in cols] for r in rows]


def _columns(db: Store, table: str) -> list[dict[str, Any]]:
    if db.dialect.name == "postgresql":
        return [{"name": r[0]} for r in db.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position", (table,))]
    return [{"name": r["name"]} for r in db.query(f'PRAGMA table_info("{table}")')]


def write_backup(db: Store, path: Path, *, progress: Callable[[str, int], None] | None = None
                 ) -> dict[str, int]:
    """Write the whole database to ``path`` (0600; it holds health data), one
    consistent snapshot; the number of rows of each table."""
    counts: dict[str, int] = {}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8") as out, \
                db.transaction():
            head = {"format": FORMAT, "schema": db.schema_version, "engine": db.dialect.name,
                    "made": datetime.now(UTC).isoformat()}
            out.write(json.dumps(head) + "\n")
            for table in TABLES:
                cols, rows = _rows(db, table)
                out.write(json.dumps({"table": table, "columns": cols, "rows": len(rows)}) + "\n")
                for row in rows:
                    out.write(json.dumps(row) + "\n")
                counts[table] = len(rows)
                if progress:
                    progress(table, len(rows))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


def snapshot(db: Store) -> Backup:
    """The whole database, read in memory as a backup would hold it."""
    backup = Backup({"format": FORMAT, "schema": db.schema_version,
                     "engine": db.dialect.name})
    for table in TABLES:
        cols, rows = _rows(db, table)
        backup.tables[table] = (cols, [[_decode(v) for v in r] for r in rows])
    return backup


@dataclass
class Backup:
    """A backup read back: its header and each table's columns and rows."""

    head: dict[str, Any]
    tables: dict[str, tuple[list[str], list[list[Any]]]] = field(default_factory=dict)


def read_backup(path: Path) -> Backup:
    """Read a backup file whole, checking it before anything is written anywhere.

    Raises:
        TransferError: not a backup, cut short, or from a newer schema.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8") as src:
            lines = iter(src)
            head = json.loads(next(lines))
            if head.get("format") != FORMAT:
                raise TransferError(f"{path} is not a scalppen backup ({FORMAT})")
            if int(head.get("schema", 0)) > SCHEMA_VERSION:
                raise TransferError(f"{path} comes from a newer scalppen (schema "
                                    f"{head['schema']}): upgrade scalppen first")
            backup = Backup(head)
            for line in lines:
                part = json.loads(line)
                rows = [[_decode(v) for v in json.loads(next(lines))]
                        for _ in range(int(part["rows"]))]
                backup.tables[part["table"]] = (list(part["columns"]), rows)
    except TransferError:
        raise
    except (OSError, EOFError, StopIteration, ValueError, KeyError, TypeError) as exc:
        raise TransferError(f"{path} is not a readable backup (damaged or cut short: "
                            f"{type(exc).__name__})") from None
    missing = [t for t in TABLES if t not in backup.tables and t != "toolkit"]
    if missing:
        raise TransferError(f"{path} is cut short: no {', '.join(missing)}")
    return backup


def _insert(db: Store, table: str, cols: list[str], rows: list[list[Any]]) -> None:
    if rows:
        marks = ", ".join("?" for _ in cols)
        db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)


def restore(db: Store, backup: Backup) -> dict[str, int]:
    """Write a backup into an empty database, ids kept; the rows of each table.

    Raises:
        TransferError: the database holds data already.
    """
    full = [t for t in _CONTENT if db.query_one(f"SELECT 1 FROM {t} LIMIT 1")]
    if full:
        raise TransferError(f"{db.path} is not empty ({', '.join(full[:3])}...): restore into "
                            "a new database, e.g. --db restored.db")
    counts = {}
    with db.transaction():
        if "toolkit" in backup.tables:
            db.execute("DELETE FROM toolkit")
        for table in TABLES:
            cols, rows = backup.tables.get(table, ([], []))
            known = {c["name"] for c in _columns(db, table)}
            keep = [i for i, c in enumerate(cols) if c in known]
            _insert(db, table, [cols[i] for i in keep], [[r[i] for i in keep] for r in rows])
            counts[table] = len(rows)
        _renumber(db)
    return counts


def _renumber(db: Store) -> None:
    """PostgreSQL: move each id sequence past the ids written by hand."""
    if db.dialect.name != "postgresql":
        return
    for table in NUMBERED:
        db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                   f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")


@dataclass
class CopySummary:
    """What a copy wrote: new rows per table, and rows the destination had already."""

    added: dict[str, int] = field(default_factory=dict)
    already: dict[str, int] = field(default_factory=dict)


#: Columns that refer to a numbered table, and which.
_REFERS: Final = {"profile_id": "profiles", "owner_profile_id": "profiles",
                  "session_id": "sessions"}
#: Tables whose rows a natural key identifies: copied once (a second copy adds nothing).
_NATURAL: Final = {
    "pens": ("serial",), "sync_state": ("pen_serial",),
    "log_records": ("pen_serial", "log_epoch", "seq"),
    "log_gaps": ("pen_serial", "log_epoch", "first_seq"),
    "sessions": ("pen_serial", "log_epoch", "start_seq", "end_seq"),
    "telemetry_summaries": ("session_id",), "clinician_keys": ("fingerprint",),
    "permits": ("nonce",), "clearances": ("clearance_id",),
}


def _lock_id(lock_id: str, ids: dict[str, dict[Any, int]]) -> str:
    """A lock id naming a row by its id, renamed to the row's id in the destination."""
    rule, _, rest = lock_id.partition(":")
    kind, _, number = rest.partition(":")
    table = {"screening": "screenings", "adverse": "adverse_events"}.get(kind)
    if table and number.isdigit() and int(number) in ids[table]:
        return f"{rule}:{kind}:{ids[table][int(number)]}"
    return lock_id


def _existing(dst: Store, table: str, key: tuple[str, ...], row: dict[str, Any]) -> Any:
    where = " AND ".join(f"{k} IS ?" if row[k] is None else f"{k} = ?" for k in key)
    if dst.dialect.name == "postgresql":
        where = where.replace(" IS ?", " IS NOT DISTINCT FROM ?")
    params = [row[k] for k in key]
    found = dst.query_one(f"SELECT {'id' if table in NUMBERED else '1'} FROM {table}"
                          f" WHERE {where}", params)
    return None if found is None else found[0]


def _check_copy(src: Backup, dst: Store) -> None:
    cols, rows = src.tables["profiles"]
    name = cols.index("name")
    taken = {str(r["name"]).strip().casefold() for r in dst.query("SELECT name FROM profiles")}
    clash = [r[name] for r in rows if str(r[name]).strip().casefold() in taken]
    if clash:
        raise TransferError(
            f"{dst.path} already has a profile called {', '.join(map(repr, clash[:3]))}: the "
            "same person or another? Rename one (profiles are matched by name) and copy again"
        )


def copy_into(src: Backup, dst: Store,
              reseal: Callable[[str, bytes], bytes | None] | None = None) -> CopySummary:
    """Merge a database (read as a backup) into ``dst``, in one transaction.

    Args:
        src: the source database, read whole.
        dst: the destination (it may hold other patients).
        reseal: turns the source's stored permit key of a pen into the destination's
            (None: keys are not copied; the pen is paired again from the clinic).

    Raises:
        TransferError: a profile name both have; nothing was written.
    """
    _check_copy(src, dst)
    summary = CopySummary()
    ids: dict[str, dict[Any, int]] = {t: {} for t in NUMBERED}
    with dst.transaction():
        for table in TABLES:
            if table == "toolkit" or table not in src.tables:
                continue
            cols, rows = src.tables[table]
            known = {c["name"] for c in _columns(dst, table)}
            for values in rows:
                row = dict(zip(cols, values, strict=True))
                for col, target in _REFERS.items():
                    if row.get(col) is not None and target in ids and col in row:
                        row[col] = ids[target].get(row[col], row[col])
                if table in ("clearances", "clearance_attempts"):
                    row["lock_id"] = _lock_id(row["lock_id"], ids)
                if table == "pens" and row.get("permit_key") is not None:
                    row["permit_key"] = reseal(row["serial"], row["permit_key"]) if reseal \
                        else None
                key = _NATURAL.get(table)
                old_id = row.get("id")
                if key and all(k in row for k in key) and not (
                        table == "clearances" and row.get("clearance_id") is None):
                    found = _existing(dst, table, key, row)
                    if found is not None:
                        if table in NUMBERED:
                            ids[table][old_id] = int(found)
                        summary.already[table] = summary.already.get(table, 0) + 1
                        continue
                names = [c for c in row if c in known and not (c == "id" and table in NUMBERED)]
                params = [row[c] for c in names]
                sql = (f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                       f"({', '.join('?' for _ in names)})")
                if table in NUMBERED:
                    ids[table][old_id] = dst.insert(sql, params)
                else:
                    dst.execute(sql, params)
                summary.added[table] = summary.added.get(table, 0) + 1
    return summary

