"""``scalppen db``: the database itself (an SQLite file, or a clinic's PostgreSQL).

``info`` says which database and schema this toolkit uses; ``upgrade`` brings it
to this version's schema (any command does so when it opens it; this one says
what it did); ``room`` names the room this laptop stands in, stamped with the user
on every permit, clearance, adverse event, screening and rating it makes.
"""

from __future__ import annotations

from typing import Annotated

import typer

from scalppen import actor
from scalppen.cli.common import JSON_HELP, UsageError, console, handle_errors, print_json
from scalppen.cli.context import options
from scalppen.cli.storage import LOCK_TIMEOUT_S
from scalppen.store import list_pens, list_profiles, open_store, toolkit_id
from scalppen.store.db import is_url
from scalppen.store.migrations import SCHEMA_VERSION

app = typer.Typer(help="The database: which one, its schema, this laptop's room.",
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


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="db")
