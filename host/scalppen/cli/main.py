"""Entry point of the ``scalppen`` command line: global options and command groups."""

from __future__ import annotations

import os

import typer

from scalppen.cli import (
    clinic,
    clinician,
    db,
    demo,
    doctor,
    flash,
    logs,
    logs_sync,
    pen,
    release,
    session,
    sim,
    update,
)
from scalppen.cli.common import handle_errors
from scalppen.cli.context import BLE_HELP, Options, validate_ble

app = typer.Typer(
    no_args_is_help=True,
    help="Scalp microneedling pen toolkit: pair, run safe sessions, read usage and wear.",
    epilog="Exit status: 0 done; 1 an error (one line on stderr: what went wrong, what to "
    "do); 2 bad input, nothing touched; 3 refused by the safety rules of this computer or "
    "of the pen (lines starting 'refused:'); 130 interrupted.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    """``--version``: the toolkit, the firmware it builds and the protocol it speaks."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from scalppen.flash.build import read_version
    from scalppen.twin import firmware_dir
    from scalppen_protocol.codes import PROTOCOL_VERSION

    try:
        host = version("scalppen")
    except PackageNotFoundError:
        host = "unknown"
    try:
        fw = read_version(firmware_dir())
    except Exception:
        fw = "not found"
    typer.echo(f"scalppen {host} (firmware {fw}, protocol {PROTOCOL_VERSION})")
    raise typer.Exit()


@app.callback()
@handle_errors
def _root(
    ctx: typer.Context,
    _show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True,
        help="print the toolkit's, the firmware's and the protocol's versions",
    ),
    db: str = typer.Option(
        None, "--db", envvar="SCALPPEN_DB", metavar="FILE|URL",
        help="session database: an SQLite file (default in SCALPPEN_HOME) or a clinic's "
        "postgresql://user@host/database",
    ),
    ble: str = typer.Option("os", "--ble", envvar="SCALPPEN_BLE", help=BLE_HELP),
    pen_name: str = typer.Option(
        None, "--pen", envvar="SCALPPEN_PEN", help="which known pen (serial or address)"
    ),
    serial: str = typer.Option(
        None, "--serial", envvar="SCALPPEN_SERIAL",
        help="reach the pen through its bench UART (a serial port) instead of BLE: "
        "reading and STOP only",
    ),
) -> None:
    from scalppen import paths

    ctx.obj = Options(db=db or paths.default_db(), ble=validate_ble(ble), pen=pen_name,
                      serial=serial)


pen.register(app)
session.register(app)
logs.register(app)
logs_sync.register(logs.logs_app)
clinic.register(app)
clinician.register(app)
db.register(app)
flash.register(app)
sim.register(app)
demo.register(app)
doctor.register(app)
release.register(app)
update.register(app)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # keys and health data: every file the toolkit (or bumble, for its bonds) writes
    # is created owner-only
    from scalppen.private_files import UMASK

    os.umask(UMASK)
    # Libraries' log lines (bumble's "pairing failure (...)", say) are not the user's
    # output: errors reach the user as one line each. SCALPPEN_DEBUG=1 shows them.
    import logging

    if os.environ.get("SCALPPEN_DEBUG"):
        logging.basicConfig(level=logging.INFO)
    else:
        logging.getLogger().addHandler(logging.NullHandler())
    app()
