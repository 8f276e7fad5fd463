"""``scalppen logs``: the pen's usage log as stored on this computer, and data exports.

``logs show`` lists stored log records in plain words, with the sequence numbers that
are missing; ``logs export`` writes sessions, log records, events or wear readings as
CSV or JSON. ``logs sync`` (reading the log from the pen) is added by
``scalppen.cli.logs_sync``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.table import Table
from rich.text import Text

from scalppen.cli.common import (
    JSON_HELP,
    UsageError,
    console,
    err_console,
    handle_errors,
    print_json,
)
from scalppen.cli.storage import open_db, pen_spec, resolve_pen, resolve_profile
from scalppen.refusals import describe
from scalppen.results import version_text
from scalppen.store import DATASETS, FORMATS, StoredLogRecord, export, list_gaps, list_log_records
from scalppen.store.export import kind_name
from scalppen.workflows.pairing import bond_address
from scalppen_protocol.codes import ErrorCode, RecordKind, UpdateOutcome

logs_app = typer.Typer(
    help="The pen's usage log stored on this computer: show it, export data.",
    no_args_is_help=True,
)

#: Record kind -> what it means, in plain words.
KIND_TEXT: Final[dict[RecordKind, str]] = {
    RecordKind.BOOT: "pen started",
    RecordKind.TIME_SET: "clock set",
    RecordKind.ARMED: "armed",
    RecordKind.PERMIT_REFUSED: "permit refused",
    RecordKind.SESSION_START: "session started",
    RecordKind.SESSION_END: "session ended",
    RecordKind.FAULT: "fault",
    RecordKind.CARTRIDGE_IN: "cartridge inserted",
    RecordKind.CARTRIDGE_OUT: "cartridge removed",
    RecordKind.START_REFUSED: "start refused",
    RecordKind.SESSION_WARN: "session time warning",
    RecordKind.KEY_SET: "permit key set",
    RecordKind.LINK_LOST: "link lost",
    RecordKind.LOG_RECOVERED: "log recovered",
    RecordKind.REFUSALS_REPEATED: "refusals repeated",
    RecordKind.DISARMED: "disarmed",
    RecordKind.PAIRED: "computer paired",
    RecordKind.BONDS_REVOKED: "pairing revoked",
    RecordKind.SESSION_STOPPED: "session stopped",
    RecordKind.UPDATE: "firmware update",
}
#: SESSION_END flag: the session was closed at boot after a reset.
FLAG_INTERRUPTED: Final = 1
#: ARMED flag: armed by the pen's standalone mode, not by a host permit.
FLAG_STANDALONE: Final = 1
DEFAULT_LAST: Final = 50


def _kind_key(kind: RecordKind) -> str:
    return kind.name.lower().replace("_", "-")


def parse_kinds(text: str) -> list[RecordKind]:
    """Record kinds from ``--kind``: names (``fault``, ``session-end``) or numbers, comma-separated.

    Raises:
        UsageError: an unknown kind.
    """
    kinds: list[RecordKind] = []
    for item in text.split(","):
        word = item.strip().upper().replace("-", "_").replace(" ", "_")
        if not word:
            continue
        try:
            kind = RecordKind(int(word)) if word.isdigit() else RecordKind[word]
        except (KeyError, ValueError):
            names = ", ".join(_kind_key(k) for k in RecordKind)
            raise UsageError(f"unknown record kind {item.strip()!r}", f"one of {names}") from None
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise UsageError("--kind is empty", "e.g. --kind fault,session-end")
    return kinds


def kind_text(kind: int) -> str:
    """A record kind in plain words (unknown kinds by number)."""
    try:
        return KIND_TEXT[RecordKind(kind)]
    except (ValueError, KeyError):
        return f"kind {kind}"


def _unix(value: int) -> str:
    if not value:
        return "unset"
    return datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def record_text(rec: StoredLogRecord) -> str:
    """What a log record says, in plain words (the codes through ``scalppen.refusals``)."""
    why = describe(rec.code) if rec.code else ""
    try:
        kind = RecordKind(rec.kind)
    except ValueError:
        return f"code {rec.code}, a={rec.a}, b={rec.b}"
    if kind == RecordKind.BOOT:
        return f"reset cause: {why}" if why else ""
    if kind == RecordKind.TIME_SET:
        return f"set to {_unix(rec.a)} (was {_unix(rec.b)})"
    if kind == RecordKind.ARMED:
        text = f"up to {_minutes(rec.a)}"
        return text + (" (standalone mode)" if rec.flags & FLAG_STANDALONE else "")
    if kind in (RecordKind.PERMIT_REFUSED, RecordKind.START_REFUSED):
        return describe(rec.code, rec.a) if rec.code else "refused"
    if kind == RecordKind.SESSION_START:
        return f"up to {_minutes(rec.a)} left"
    if kind == RecordKind.SESSION_END:
        text = f"{_minutes(rec.a / 1000)} of needling, {rec.b} strokes"
        if rec.flags & FLAG_INTERRUPTED:
            text += ", closed after a reset"
        return f"{text}: {why}" if why else text
    if kind == RecordKind.UPDATE:
        tried, running = version_text(rec.a), version_text(rec.b)
        if rec.code == UpdateOutcome.KEPT:
            return f"{tried} started well and stays"
        return f"{tried} never started well: rolled back to {running}"
    if kind == RecordKind.SESSION_STOPPED:
        return (f"after {rec.a / 1000:.1f} s of needling, {rec.b} strokes: paused, resumable "
                "for 10 min")
    if kind == RecordKind.SESSION_WARN:
        return f"after {_minutes(rec.a / 1000)}, {rec.b} strokes"
    if kind == RecordKind.LOG_RECOVERED:
        return f"{why}: {rec.b} damaged records dropped" if why else ""
    if kind == RecordKind.REFUSALS_REPEATED:
        if rec.b == 0 and rec.code == ErrorCode.LOG_UNSYNCED:
            return f"{rec.a} records not written: the log was full of unsynced records"
        return f"{rec.a} more times: {why}" if why else f"{rec.a} more refusals"
    if kind == RecordKind.DISARMED:
        return "the link that armed the permit changed: permit dropped"
    if kind == RecordKind.PAIRED:
        return f"bonded with {bond_address(rec.a, rec.b)} ({rec.code} computers bonded)"
    if kind == RecordKind.BONDS_REVOKED:
        return f"bond with {bond_address(rec.a, rec.b)} dropped for a new permit key"
    return why


def _depth(rec: StoredLogRecord) -> str:
    return f"{rec.depth_um / 1000:.2f} mm" if rec.depth_um else ""


def _when(rec: StoredLogRecord) -> str:
    if rec.time is None:
        return "clock unset"
    return rec.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # two lines in 80 columns


def _gap_row(first: int, last: int, with_pen: bool, serial: str) -> list[Text]:
    count = last - first + 1
    seqs = f"{first}" if first == last else f"{first}-{last}"
    what = f"{count} record{'s' if count > 1 else ''} missing (not read from the pen)"
    cells = [Text(seqs, style="bold red"), Text(""), Text("gap", style="bold red")]
    cells += [Text(""), Text(what, style="red")]
    return ([Text(serial)] if with_pen else []) + cells


@logs_app.command("show")
@handle_errors
def show_cmd(
    ctx: typer.Context,
    pen: Annotated[str | None, typer.Option("--pen", help="only this pen (serial)")] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="only these kinds, e.g. fault,session-end (names or numbers)"),
    ] = None,
    last: Annotated[
        int, typer.Option("--last", min=0, help="show the last N records (0: all)")
    ] = DEFAULT_LAST,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show the pen log records stored on this computer, in plain words, gaps included."""
    kinds = parse_kinds(kind) if kind is not None else None
    spec = pen_spec(ctx, pen)
    with open_db(ctx) as db:
        serial = resolve_pen(db, spec).serial if spec else None
        records = list_log_records(db, serial, kinds=[int(k) for k in kinds] if kinds else None)
        shown = records[-last:] if last else records
        serials = sorted({r.pen_serial for r in records} | ({serial} if serial else set()))
        gaps = {s: list_gaps(db, s) for s in serials}
    if as_json:
        print_json({
            "records": [{"pen": r.pen_serial, "seq": r.seq,
                         "time": r.time.isoformat() if r.time else None,
                         "kind": kind_name(r.kind), "depth_um": r.depth_um, "code": r.code,
                         "a": r.a, "b": r.b, "flags": r.flags, "text": record_text(r)}
                        for r in shown],
            "total": len(records),
            "gaps": {s: [list(g) for g in found] for s, found in gaps.items()},
        })
        return
    if not records:
        where = f" for pen {serial}" if serial else ""
        _say(f"no log records stored{where}: read them from the pen with scalppen logs sync")
        _say_gaps(gaps)
        return
    with_pen = len({r.pen_serial for r in shown}) > 1
    table = Table(title="Pen log", expand=False)
    if with_pen:
        table.add_column("pen", no_wrap=True)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", overflow="fold", max_width=11)
    table.add_column("kind", overflow="fold", max_width=14)
    table.add_column("depth", justify="right", no_wrap=True)
    table.add_column("what", overflow="fold", ratio=2)
    for row in _with_gaps(shown, records, gaps):
        if isinstance(row, tuple):
            table.add_row(*_gap_row(row[1], row[2], with_pen, row[0]))
            continue
        cells = [str(row.seq), _when(row), kind_text(row.kind), _depth(row), record_text(row)]
        table.add_row(*([row.pen_serial] if with_pen else []), *(Text(c) for c in cells))
    console.print(table)
    if len(shown) < len(records):
        _say(f"showing the last {len(shown)} of {len(records)} records (--last 0 shows all)")
    _say_gaps(gaps)


def _with_gaps(
    shown: list[StoredLogRecord],
    records: list[StoredLogRecord],
    gaps: dict[str, list[tuple[int, int]]],
) -> list[StoredLogRecord | tuple[str, int, int]]:
    """The shown records with a row for each known gap among them, in seq order.

    A gap before a pen's first shown record is shown only if no stored record of that
    pen comes before it in the listing.
    """
    firsts: dict[str, int] = {}
    for rec in records:
        firsts.setdefault(rec.pen_serial, rec.seq)
    out: list[StoredLogRecord | tuple[str, int, int]] = []
    prev: StoredLogRecord | None = None
    for rec in shown:
        if prev is not None and prev.pen_serial == rec.pen_serial:
            low = prev.seq
        elif firsts[rec.pen_serial] == rec.seq:
            low = -1
        else:
            low = rec.seq
        out += [
            (rec.pen_serial, a, b)
            for a, b in gaps.get(rec.pen_serial, [])
            if low < a <= b < rec.seq
        ]
        out.append(rec)
        prev = rec
    return out


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _say_gaps(gaps: dict[str, list[tuple[int, int]]]) -> None:
    for serial, found in gaps.items():
        if found:
            missing = sum(b - a + 1 for a, b in found)
            ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in found)
            _say(
                f"pen {serial}: {missing} log records are missing (seq {ranges}); they were "
                "lost on the pen or not read yet"
            )


@logs_app.command("export")
@handle_errors
def export_cmd(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="csv or json")],
    dataset: Annotated[
        str, typer.Option("--dataset", help="sessions, log, events or wear")
    ] = "sessions",
    out: Annotated[
        Path | None, typer.Option("--out", help="the file to write (default: standard output)")
    ] = None,
    pen: Annotated[str | None, typer.Option("--pen", help="only this pen (serial)")] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="only this profile (sessions, events)")
    ] = None,
) -> None:
    """Export a data set as CSV or JSON (times in UTC, ISO 8601; permit keys never)."""
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", f"choose one of {', '.join(FORMATS)}")
    dataset = dataset.strip().lower()
    if dataset not in DATASETS:
        raise UsageError(f"unknown data set {dataset!r}", f"choose one of {', '.join(DATASETS)}")
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a directory", f"give a file, e.g. {out / 'export.csv'}")
    spec = pen_spec(ctx, pen)
    with open_db(ctx) as db:
        serial = resolve_pen(db, spec).serial if spec else None
        profile_id = resolve_profile(db, profile).id if profile is not None else None
        dest = out if out is not None else sys.stdout
        count = export(db, dataset, fmt, dest, pen_serial=serial, profile_id=profile_id)
    if out is not None:
        _say(f"wrote {count} {dataset} rows to {out} ({fmt})")
    else:
        err_console.print(f"{count} {dataset} rows", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``logs`` group (``show``, ``export``; ``sync`` is added elsewhere)."""
    app.add_typer(logs_app, name="logs")
