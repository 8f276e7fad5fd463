"""Export sessions, log records, events and wear readings as CSV or JSON.

Times are ISO 8601 in UTC (empty / null when unknown). Permit keys are never
exported.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from scalppen.store.db import Store
from scalppen.store.errors import ExportFormatError
from scalppen.store.logsync import list_log_records
from scalppen.store.rows import Event, Session, StoredLogRecord, WearSnapshot
from scalppen.store.sessions import list_events, list_sessions
from scalppen.store.wear import list_wear
from scalppen_protocol.codes import RecordKind

FORMATS: Final = ("csv", "json")
DATASETS: Final = ("sessions", "log", "events", "wear")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def dataset_rows(
    db: Store, dataset: str, *, pen_serial: str | None = None, profile_id: int | None = None
) -> list[dict[str, Any]]:
    """The rows of a data set as plain dicts (JSON types; times as ISO strings).

    Raises:
        ExportFormatError: unknown data set.
    """
    loaders: dict[str, Callable[[], list[Any]]] = {
        "sessions": lambda: list_sessions(db, profile_id=profile_id, pen_serial=pen_serial),
        "log": lambda: list_log_records(db, pen_serial),
        "events": lambda: list_events(db, pen_serial=pen_serial, profile_id=profile_id),
        "wear": lambda: list_wear(db, pen_serial),
    }
    if dataset not in loaders:
        raise ExportFormatError(
            f"unknown data set {dataset!r}: choose one of {', '.join(DATASETS)}"
        )
    rows = []
    for row in loaders[dataset]():
        plain = _plain(asdict(row))
        if dataset == "events":
            plain["data"] = json.dumps(plain["data"], sort_keys=True)
        if dataset == "log":
            plain["kind"] = kind_name(plain["kind"])
        rows.append(plain)
    return rows


def kind_name(kind: int) -> str:
    """A log record kind by name (``session_end``); an unknown one by its number."""
    try:
        return RecordKind(kind).name.lower()
    except ValueError:
        return str(kind)


#: What a spreadsheet takes as the start of a formula (OWASP "CSV injection").
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: strings that start like a formula get a
    leading apostrophe (a serial ``=HYPERLINK(...)`` from a rewritten pen stays inert)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


_ROW_TYPES: Final[dict[str, type]] = {
    "sessions": Session,
    "log": StoredLogRecord,
    "events": Event,
    "wear": WearSnapshot,
}


def _columns(dataset: str) -> list[str]:
    return [f.name for f in fields(_ROW_TYPES[dataset])]


def render(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> str:
    """Render rows as CSV or JSON text.

    Raises:
        ExportFormatError: unknown format.
    """
    if fmt == "json":
        return json.dumps(rows, indent=2, sort_keys=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else neutralise(row.get(k))
                             for k in columns})
        return out.getvalue()
    raise ExportFormatError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")


def export(
    db: Store,
    dataset: str,
    fmt: str,
    dest: str | os.PathLike[str] | TextIO,
    *,
    pen_serial: str | None = None,
    profile_id: int | None = None,
) -> int:
    """Write a data set to a file (created 0600) or an open text stream.

    Args:
        db: the store.
        dataset: ``sessions``, ``log``, ``events`` or ``wear``.
        fmt: ``csv`` or ``json``.
        dest: a path or a writable text stream.
        pen_serial: only this pen.
        profile_id: only this profile (sessions, events).

    Returns:
        The number of rows written.

    Raises:
        ExportFormatError: unknown format or data set.
    """
    if fmt not in FORMATS:
        raise ExportFormatError(
            f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}"
        )
    rows = dataset_rows(db, dataset, pen_serial=pen_serial, profile_id=profile_id)
    text = render(rows, fmt, _columns(dataset))
    if isinstance(dest, str | os.PathLike):
        path = Path(dest)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        dest.write(text)
    return len(rows)
