"""Run a virtual pen as a process: its radio reachable over an HCI TCP bridge and its
USB port on a pseudo-terminal.

The pen is the twin: the firmware bundle ``scalppen build`` makes, in a MicroPython
process; its USB port is that process's REPL (mpremote and ``scalppen flash`` work
on it, and a flashed build is what runs after the pen's reset).

Prints, once ready, one per line::

    ble-hci-tcp: 127.0.0.1:<port>
    serial: /dev/pts/<n>

then ``display: <text>`` on every change of the pen's display (lines of the display
joined with `` | ``), until interrupted.

The pen's button, from the command lines (one per line) it reads:

    pair     hold the button 3 s: opens the pen's pairing window (a pen that
             has a bond pairs a new computer only inside it)
    press    a short press

and its power:

    power-cut    the power goes (mid-session, say) and comes back: the pen boots
                 again over the same flash
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from scalppen.transports.base import ExtraMissing

#: How long ``pair`` holds the button: the pen's PAIR_HOLD_MS (3 s, firmware/pen/core.py)
#: and a few control ticks more.
PAIR_HOLD_MS = 3200
SHORT_PRESS_MS = 100


async def hold_button(pen: Any, ms: int) -> None:
    """Hold the pen's button for ``ms`` of the pen's time, then let go."""
    pen.hw.set_button(True)
    try:
        await pen.run_for(ms)
    finally:
        pen.hw.set_button(False)


#: How long (wall s) a power cut may take to come back before the sim says so.
POWER_BACK_S = 30.0


async def power_cut(pen: Any) -> bool:
    """Cut the pen's power; True once it booted again."""
    boots = pen.boots
    pen.hw.inject("power_loss")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POWER_BACK_S
    while loop.time() < deadline:
        if pen.boots > boots and pen.bridge is not None:
            return True
        await asyncio.sleep(0.05)
    return False


async def _obey(pen: Any, commands: AsyncIterator[str], emit: Callable[[str], None]) -> None:
    async for line in commands:
        word = line.strip().lower()
        if word == "power-cut":
            back = await power_cut(pen)
            emit("power: cut, back on" if back else "power: cut, the pen did not boot again")
        elif word == "pair":
            await hold_button(pen, PAIR_HOLD_MS)
            emit("button: held 3 s (pairing window open)")
        elif word == "press":
            await hold_button(pen, SHORT_PRESS_MS)
            emit("button: pressed")
        elif word:
            emit(f"unknown command {word!r} (pair, press, power-cut)")


def display_line(text: str) -> str:
    return "display: " + " | ".join(part.rstrip() for part in text.splitlines())


async def serve(
    flash_dir: Path,
    *,
    speed: float | None = 1.0,
    board: str = "pen-s3-revb",
    port: int = 0,
    cartridge: str | None = "new",
    contact: bool = True,
    emit: Callable[[str], None] = print,
    ready: asyncio.Event | None = None,
    open_pairing: bool = False,
    commands: AsyncIterator[str] | None = None,
) -> None:
    """Run the virtual pen until cancelled.

    Args:
        flash_dir: the pen's flash (kept between runs: logs, counters, bonds).
        speed: virtual seconds per real second.
        board: board definition name.
        port: TCP port of the HCI bridge (0: any free port).
        cartridge: kind of cartridge in the slot at power-up (None: empty slot).
        contact: whether the pen rests on skin (the contact sensor reads contact).
        emit: where the lines go.
        ready: set once the lines above were emitted.
        open_pairing: hold the button at power-up, opening the pairing window.
        commands: lines such as ``pair`` (see above), e.g. read from stdin.
    """
    try:
        from scalppen_hardware import ble_radio
        from scalppen_hardware.hci_bridge import start_hci_bridge
    except ImportError as exc:  # bumble and the unix port are the "sim" extra
        raise ExtraMissing("the virtual pen", "bumble", "sim") from exc
    from scalppen.twin import make_twin

    link = ble_radio.new_link()
    pen = make_twin(flash_dir, link, board=board, speed=speed, epoch=time.time())
    if cartridge:
        pen.hw.insert_cartridge(cartridge)
    pen.hw.set_contact(contact)
    last: list[str] = [""]

    def on_display(text: str) -> None:
        line = display_line(text)
        if text.strip() and line != last[0]:
            last[0] = line
            emit(line)

    await pen.start()
    bridge = await start_hci_bridge(link, port=port)
    pty = pen.open_serial()
    try:
        emit(f"ble-hci-tcp: 127.0.0.1:{bridge.port}")
        emit(f"serial: {pty}")
        pen.on_display(on_display)
        on_display(pen.display)
        if open_pairing:
            await hold_button(pen, PAIR_HOLD_MS)
            emit("button: held 3 s (pairing window open)")
        if ready is not None:
            ready.set()
        if commands is not None:
            await _obey(pen, commands, emit)
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await bridge.close()
        await pen.stop()
