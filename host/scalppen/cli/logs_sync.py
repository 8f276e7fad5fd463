"""``logs sync``: copy the pen's log into the database, with a progress bar."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from scalppen import store as S
from scalppen.cli.common import console, handle_errors, run
from scalppen.cli.connect import connected_pen, pen_serial, target_for
from scalppen.cli.context import options
from scalppen.cli.storage import open_db
from scalppen.results import SyncProgress
from scalppen.workflows.logsync import sync_log


@handle_errors
def sync_cmd(ctx: typer.Context) -> None:
    """Read new log records from the pen (resumable; each record is stored once).

    Fails (non-zero, one line) when records the pen holds could not be stored."""
    opts = options(ctx)

    async def go() -> None:
        with open_db(ctx) as db:
            target = target_for(db, opts)
            async with connected_pen(opts, target) as pen:
                with Progress(TextColumn("syncing log"), BarColumn(), MofNCompleteColumn(),
                              console=console, transient=True) as bar:
                    task = bar.add_task("sync", total=None)

                    def progress(p: SyncProgress) -> None:
                        bar.update(task, completed=p.fetched, total=p.fetched + p.remaining)

                    summary = await sync_log(pen, db, pen_serial(target, pen),
                                             now=opts.now(), progress=progress)
                # the wear with the log: the report shows the cartridge without a
                # separate `scalppen wear`
                S.record_wear(db, pen_serial(target, pen), asdict(await pen.wear()),
                              at=opts.now())
        if summary.restarted:
            console.print(f"the pen's log restarted ({summary.restarted}): stored from its "
                          f"start as log {summary.log_epoch}, beside the earlier one",
                          markup=False)
        console.print(
            f"log synced up to record {summary.last_seq}: {summary.new} new, "
            f"{summary.duplicates} already stored, {summary.sessions} sessions"
        )
        for first, last in summary.gaps:
            console.print(f"gap: records {first}-{last} are missing on the pen (rotated out)")
        for finding in summary.clock_findings:
            console.print(f"[yellow]clock:[/] {finding.text}")

    run(go())


def register(logs_app: typer.Typer) -> None:
    logs_app.command("sync")(sync_cmd)
