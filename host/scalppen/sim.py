"""Run a virtual pen as a process: its radio reachable over an HCI TCP bridge and its
USB port on a pseudo-terminal.

The pen is the twin: the firmware bundle ``scalppen build`` makes, in a MicroPython
process; its USB port is that process's REPL (mpremote and ``scalppen flash`` work
on it, and a flashed build is what runs after the pen's reset).

Prints, once ready, one per line::

    ble-hci-tcp: 127.0.0.1:<port>
    serial: /dev/pts/<n>
    control: <path of the control socket>

then ``display: <text>`` on every change of the pen's display (lines of the display
joined with `` | ``), and ``power: asleep (press to wake)`` / ``power: on`` when the
pen powers itself off when idle (firmware/pen/idleoff.py) and when a press wakes
it, until interrupted. Command lines on its standard input (or on
the control socket) work the pen's world: its button, battery and charger, cartridge,
skin contact, faults, power and speed (``help`` lists them; scalppen/simctl.py),
each answered on one line (``ok: ...`` or ``error: ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from scalppen.simctl import (
    PAIR_HOLD_MS,
    SHORT_PRESS_MS,
    ControlServer,
    answer,
    asleep,
    hold_button,
    power_cut,
)
from scalppen.simlink import control_path, register
from scalppen.transports.base import ExtraMissing

__all__ = ["PAIR_HOLD_MS", "SHORT_PRESS_MS", "display_line", "hold_button", "power_cut",
           "serve"]


async def _obey(pen: Any, commands: AsyncIterator[str], emit: Callable[[str], None],
                ask: Callable[[str], Any] | None = None) -> None:
    async for line in commands:
        text = await (ask(line) if ask is not None else answer(pen, line))
        if text:
            emit(text)


def display_line(text: str) -> str:
    return "display: " + " | ".join(part.rstrip() for part in text.splitlines())


#: What ``serve`` prints when the pen goes to sleep / wakes.
POWER_ASLEEP = "power: asleep (press to wake)"
POWER_ON = "power: on"
_POWER_POLL_S = 0.1


async def _watch_power(pen: Any, emit: Callable[[str], None]) -> None:
    was = asleep(pen)
    while True:
        await asyncio.sleep(_POWER_POLL_S)
        now = asleep(pen)
        if now != was:
            was = now
            emit(POWER_ASLEEP if now else POWER_ON)


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
    clinic: bool = False,
    bundle: Path | None = None,
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
        clinic: a pen shared by a clinic (rule 6 per patient: ``scalppen build --clinic``).
        bundle: the firmware bundle a blank pen is flashed with at the factory (a
            signed build's carries the release key updates are checked with).
    """
    try:
        from scalppen_hardware import ble_radio
        from scalppen_hardware.hci_bridge import start_hci_bridge
    except ImportError as exc:  # bumble and the unix port are the "sim" extra
        raise ExtraMissing("the virtual pen", "bumble", "sim") from exc
    from scalppen.twin import make_twin

    link = ble_radio.new_link()
    pen = make_twin(flash_dir, link, board=board, clinic=clinic, speed=speed,
                    epoch=time.time(), bundle_dir=bundle)
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
    control = ControlServer(pen, control_path(bridge.port))
    registration: Path | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        await control.start()
        registration = register(bridge.port, control.path, Path(flash_dir))
        emit(f"ble-hci-tcp: 127.0.0.1:{bridge.port}")
        emit(f"serial: {pty}")
        emit(f"control: {control.path}")
        pen.on_display(on_display)
        on_display(pen.display)
        if open_pairing:
            await hold_button(pen, PAIR_HOLD_MS)
            emit("ok: button: held 3 s (pairing window open)")
        watcher = asyncio.create_task(_watch_power(pen, emit), name="sim-power")
        if ready is not None:
            ready.set()
        if commands is not None:
            await _obey(pen, commands, emit, control.answer)
        await asyncio.Event().wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        if registration is not None:
            with contextlib.suppress(OSError):
                registration.unlink()
        with contextlib.suppress(Exception):
            await control.close()
        with contextlib.suppress(Exception):
            await bridge.close()
        await pen.stop()
