"""``scalppen db``: the database itself (an SQLite file, or a clinic's PostgreSQL).

``info`` says which database and schema this toolkit uses; ``upgrade`` brings it
to this version's schema (any command does so when it opens it; this one says
what it did); ``room`` names the room this laptop stands in, stamped with the user
on every permit, clearance, adverse event, screening and rating it makes;
``backup``/``restore`` write the database to a file and back; ``copy`` merges one
database into another (a home user's into their clinic's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalppen import actor
from scalppen.cli.common import JSON_HELP, UsageError, console, handle_errors, print_json
from scalppen.cli.context import options
from scalppen.cli.storage import LOCK_TIMEOUT_S
from scalppen.store import list_pens, list_profiles, open_store, toolkit_id
from scalppen.store.db import is_url
from scalppen.store.migrations import SCHEMA_VERSION
from scalppen.store.transfer import copy_into, read_backup, restore, snapshot, write_backup

app = typer.Typer(help="The database: which one, backups, copies, keys, this laptop's room.",
                  no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


@app.command("info")
@handle_errors
def info_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False
) -> None:
    """Which database this toolkit uses, its schema, and who writes from here."""
    target = options(ctx).db
    with open_store(target, timeout_s=LOCK_TIMEOUT_S) as db:
        doc = {
            "engine": db.dialect.name,
            "database": str(db.path),
            "schema": db.schema_version,
            "toolkit": toolkit_id(db),
            "profiles": len(list_profiles(db)),
            "pens": len(list_pens(db)),
            "read_only": db.read_only,
            "room": actor.room(),
            "user": actor.user(),
        }
    if as_json:
        print_json(doc)
        return
    for key, value in doc.items():
        _say(f"{key.replace('_', ' ')}: {value}")


@app.command("upgrade")
@handle_errors
def upgrade_cmd(ctx: typer.Context) -> None:
    """Bring the database to this version's schema (done once, for every laptop)."""
    with open_store(options(ctx).db, timeout_s=LOCK_TIMEOUT_S) as db:
        where = db.path
        now = db.schema_version
    kind = "server database" if is_url(options(ctx).db) else "file"
    _say(f"{kind} {where} is at schema {now} (this scalppen's: {SCHEMA_VERSION})")


@app.command("room")
@handle_errors
def room_cmd(
    name: Annotated[str | None, typer.Argument(metavar="[NAME]",
                                               help="the room this laptop stands in")] = None,
) -> None:
    """Show or name this laptop's room (recorded with each permit and clearance)."""
    if name is None:
        _say(f"room: {actor.room()} (user: {actor.user()})")
        return
    try:
        named = actor.set_room(name)
    except ValueError as exc:
        raise UsageError(str(exc), "e.g. scalppen db room 'Room 2'") from None
    _say(f"this laptop is in room {named!r}; user {actor.user()!r}")


@app.command("backup")
@handle_errors
def backup_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(metavar="FILE", help="the backup file to write")],
) -> None:
    """Write the whole database to a file (owner-only; it reads back into either engine)."""
    if out.is_dir():
        raise UsageError(f"{out} is a directory", f"give a file, e.g. {out / 'scalppen.backup'}")
    with open_store(options(ctx).db, timeout_s=LOCK_TIMEOUT_S) as db:
        counts = write_backup(db, out, progress=lambda t, n: _say(f"  {t}: {n} rows"))
    _say(f"backup written to {out}: {sum(counts.values())} rows in {len(counts)} tables")


@app.command("restore")
@handle_errors
def restore_cmd(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(metavar="FILE", help="a backup file")],
) -> None:
    """Read a backup into an empty database (the one --db or SCALPPEN_DB names)."""
    backup = read_backup(src)
    with open_store(options(ctx).db, timeout_s=LOCK_TIMEOUT_S) as db:
        counts = restore(db, backup)
        where = db.path
    _say(f"restored {sum(counts.values())} rows from {src} into {where}")


@app.command("copy")
@handle_errors
def copy_cmd(
    src: Annotated[str, typer.Argument(metavar="SRC", help="the database to copy (file or URL)")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="the database to copy into")],
) -> None:
    """Copy a database into another that may hold other patients (a home file into a
    clinic's): new ids there, nothing written when a profile name is in both."""
    if src == dst:
        raise UsageError("SRC and DST are the same database", "name two databases")
    from scalppen.store.sealing import open_key, seal_key
    from scalppen.vault import VaultError

    lost: list[str] = []
    with open_store(src, timeout_s=LOCK_TIMEOUT_S) as source, \
            open_store(dst, timeout_s=LOCK_TIMEOUT_S) as target:
        with source.transaction():
            backup = snapshot(source)

        def reseal(serial: str, stored: bytes) -> bytes | None:
            try:
                return seal_key(target, serial, open_key(source, serial, stored))
            except VaultError:
                lost.append(serial)
                return None

        target.actor = actor.current()
        summary = copy_into(backup, target, reseal=reseal)
    added = ", ".join(f"{n} {t}" for t, n in summary.added.items()) or "nothing"
    _say(f"copied into {dst}: {added}")
    if summary.already:
        _say("already there: " + ", ".join(f"{n} {t}" for t, n in summary.already.items()))
    if summary.added.get("clearances"):
        _say("clearances were signed for the source's toolkit: there they are history, and "
             "a clinician clears those locks again")
    if lost:
        _say(f"the permit keys of {', '.join(lost)} could not be opened here (their sealing "
             "key is not on this computer): pair those pens again from this toolkit")


@app.command("key")
@handle_errors
def key_cmd(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(metavar="export|import",
                                          help="export this database's sealing key, or "
                                          "import it on another laptop")],
    path: Annotated[Path, typer.Argument(metavar="FILE", help="the key file")],
) -> None:
    """Carry the key that seals the database's permit keys to another laptop of the
    clinic (the file is owner-only: carry it by hand, then delete it)."""
    import os

    from scalppen.store.sealing import export_key, import_key

    if action not in ("export", "import"):
        raise UsageError(f"unknown action {action!r}", "use export or import")
    with open_store(options(ctx).db, timeout_s=LOCK_TIMEOUT_S) as db:
        if action == "export":
            blob = export_key(db)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            _say(f"sealing key of this database written to {path} (owner-only): import it on "
                 "each laptop with scalppen db key import FILE, then delete the file")
            return
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        import_key(db, blob)
    _say("this laptop now holds the database's sealing key: it can issue permits")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="db")
