"""``scalppen sim``: a virtual pen as its own process, until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import typer

from scalppen.cli.common import handle_errors


@handle_errors
def sim_cmd(
    flash: Path = typer.Option(None, "--flash", help="the pen's flash directory (kept)"),
    speed: float = typer.Option(1.0, "--speed", min=0.1, max=10000,
                                help="virtual seconds per real second"),
    board: str = typer.Option("pen-s3-revb", "--board", help="board definition"),
    cartridge: str = typer.Option(
        "new", "--cartridge",
        help="cartridge in the slot at power-up: new, used, expired, worn, none"),
    contact: bool = typer.Option(True, "--contact/--no-contact",
                                 help="the pen rests on skin"),
    open_pairing: bool = typer.Option(
        False, "--open-pairing",
        help="hold the pen's button at power-up: opens its pairing window"),
    clinic: bool = typer.Option(
        False, "--clinic",
        help="a pen shared by a clinic: rule 6 per patient (as `scalppen build --clinic`)"),
    bundle: Path = typer.Option(
        None, "--bundle", help="flash a blank pen with this built bundle (scalppen build; "
        "with --sign it trusts that release key for updates)"),
) -> None:
    """Run a virtual pen: its BLE over an HCI TCP bridge and its USB port on a pty.

    Lines typed on stdin (or sent to the control socket it prints) work the pen's
    world, one answer line each: "help" lists them; "pair" holds the button 3 s
    (the pairing window), "press", "battery 15", "charge on", "cartridge used",
    "cartridge remove", "contact off", "fault stall", "power-cut", "speed 600",
    "state", "clock". Commands that talk to this pen use its virtual clock. Each
    --flash directory is its own pen (its own serial and address).
    """
    from scalppen.cli.common import UsageError
    from scalppen.sim import serve

    if bundle is not None and not (bundle / "manifest.json").is_file():
        raise UsageError(f"no firmware bundle at {bundle}", "make one with `scalppen build`")
    kinds = ("new", "used", "expired", "worn", "none")
    if cartridge not in kinds:
        raise UsageError(f"unknown cartridge kind {cartridge!r}", "use one of " + ", ".join(kinds))

    def emit(line: str) -> None:
        print(line, flush=True)

    async def stdin_lines() -> AsyncIterator[str]:
        # A daemon thread reads stdin, so an interrupted sim never waits for a line.
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the sim ended
                for line in sys.stdin:
                    loop.call_soon_threadsafe(lines.put_nowait, line)
                loop.call_soon_threadsafe(lines.put_nowait, "")

        threading.Thread(target=read, name="sim-stdin", daemon=True).start()
        while line := await lines.get():
            yield line  # end of input: the pen runs on

    async def go(directory: Path) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await serve(directory, speed=speed, board=board, emit=emit,
                        cartridge=None if cartridge == "none" else cartridge, contact=contact,
                        open_pairing=open_pairing, commands=stdin_lines(), clinic=clinic,
                        bundle=bundle)

    if flash is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(go(flash))
        return
    with tempfile.TemporaryDirectory(prefix="scalppen-pen-") as tmp, \
            contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go(Path(tmp)))


def register(app: typer.Typer) -> None:
    app.command("sim")(sim_cmd)
