"""`scalppen update IMAGE`: a signed firmware image to the pen over Bluetooth (SMP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from scalppen.cli.common import UsageError, console, handle_errors, is_tty, run
from scalppen.cli.connect import connected_pen, target_for
from scalppen.cli.context import options
from scalppen.cli.storage import open_db

#: Link drops an upload rides out (each time it goes on from the pen's offset).
ATTEMPTS = 4
#: How long the pen may take to come back after a reset (s).
BACK_WITHIN_S = 60.0


def _link_errors() -> tuple[type[BaseException], ...]:
    from smpclient.transport import SMPTransportDisconnected

    from scalppen.client import LinkLost, PenTimeout
    from scalppen.transports.base import ConnectError, TransportError

    return (SMPTransportDisconnected, LinkLost, PenTimeout, ConnectError, TransportError,
            TimeoutError, ConnectionError)


@handle_errors
def update_cmd(
    ctx: typer.Context,
    image_path: Annotated[Path, typer.Argument(
        metavar="IMAGE", help="the signed image (scalppen build --sign KEY writes it)")],
    test: Annotated[bool, typer.Option(
        "--test", help="then boot it once, on trial: it rolls back unless it starts well")
    ] = False,
    confirm: Annotated[bool, typer.Option(
        "--confirm", help="with --test: once it runs, keep it (the pen also keeps a build "
        "that starts well)")] = False,
) -> None:
    """Update the pen's firmware over Bluetooth: upload into its spare slot, test, confirm."""
    from scalppen.cli.common import refused
    from scalppen.workflows.update import UpdateError, UpdateRefused, read_image

    if confirm and not test:
        raise UsageError("--confirm goes with --test", "scalppen update IMAGE --test --confirm")
    opts = options(ctx)
    try:
        image = read_image(image_path)
    except UpdateError as exc:
        raise UsageError(str(exc)) from None
    with open_db(ctx) as db:
        target = target_for(db, opts)
    try:
        run(_update(opts, target, image, test, confirm))
    except UpdateRefused as exc:
        refused([str(exc)])
    except UpdateError as exc:
        raise UsageError(str(exc)) from None


async def _update(opts, target, image, test: bool, confirm: bool) -> None:  # type: ignore[no-untyped-def]
    from scalppen.workflows import update as U

    console.print(f"image {image.version}, {image.size / 1024:.1f} kB")
    bar = Progress(TextColumn("[bold]uploading"), BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=console, transient=True, disable=not is_tty())
    errors = _link_errors()
    done = 0
    with bar:
        task = bar.add_task("upload", total=image.size)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with connected_pen(opts, target) as pen:
                    client = await U.smp_client(pen)

                    def progress(off: int) -> None:
                        nonlocal done
                        done = off
                        bar.update(task, completed=off)

                    await U.upload(client, image, progress)
                    if test:
                        await U.test_and_reset(client, image)
                break
            except errors as exc:
                if test and done == image.size:
                    break  # the reset took the link down with the last answer
                if attempt == ATTEMPTS:
                    raise U.UpdateError(f"the link dropped {ATTEMPTS} times (last at "
                                        f"{done * 100 // image.size} %): {exc}; run the "
                                        "same command again, it goes on") from None
                why = str(exc) or type(exc).__name__
                console.print(f"link lost at {done * 100 // image.size} % ({why}): "
                              f"reconnecting ({attempt}/{ATTEMPTS - 1})")
                await asyncio.sleep(1.0)
    console.print(f"uploaded {image.version} into the pen's spare slot "
                  f"({image.size / 1024:.1f} kB)")
    if not test:
        console.print("next: scalppen update IMAGE --test (boots it once, on trial)")
        return
    console.print("testing: the pen restarts on the new build")
    states = await _back(opts, target)
    running = [s for s in states if s.active]
    if not running or bytes(running[0].hash or b"") != image.manifest_sha256:
        raise U.UpdateError("the pen came back on its previous build: the new one did not "
                            "start, and was rolled back")
    if confirm:
        async with connected_pen(opts, target) as pen:
            await U.confirm(await U.smp_client(pen))
    console.print(f"the pen runs {image.version}"
                  + (", confirmed" if confirm or running[0].confirmed else ", on trial"))


async def _back(opts, target):  # type: ignore[no-untyped-def]
    """The image states once the pen answers again after its reset."""
    from scalppen.workflows import update as U

    errors = _link_errors()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BACK_WITHIN_S
    await asyncio.sleep(2.0)
    while True:
        try:
            async with connected_pen(opts, target) as pen:
                return await U.image_states(await U.smp_client(pen))
        except errors:
            if loop.time() > deadline:
                raise U.UpdateError(f"the pen did not come back within {BACK_WITHIN_S:.0f} s "
                                    "after its reset: press its button, then `scalppen "
                                    "status`") from None
            await asyncio.sleep(1.0)


def register(app: typer.Typer) -> None:
    app.command("update")(update_cmd)
