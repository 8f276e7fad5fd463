"""``scalppen sim``: a virtual pen as its own process, until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
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
) -> None:
    """Run a virtual pen: its BLE over an HCI TCP bridge and its USB port on a pty."""
    from scalppen.cli.common import UsageError
    from scalppen.sim import serve

    kinds = ("new", "used", "expired", "worn", "none")
    if cartridge not in kinds:
        raise UsageError(f"unknown cartridge kind {cartridge!r}", "use one of " + ", ".join(kinds))

    def emit(line: str) -> None:
        print(line, flush=True)

    async def go(directory: Path) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await serve(directory, speed=speed, board=board, emit=emit,
                        cartridge=None if cartridge == "none" else cartridge, contact=contact)

    if flash is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(go(flash))
        return
    with tempfile.TemporaryDirectory(prefix="scalppen-pen-") as tmp, \
            contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go(Path(tmp)))


def register(app: typer.Typer) -> None:
    app.command("sim")(sim_cmd)
