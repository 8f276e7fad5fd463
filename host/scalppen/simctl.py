"""The commands ``scalppen sim`` takes: on its standard input, and the same on its
control socket (one command per line, one answer line each).

Answers are ``ok: <what happened or the value>`` or ``error: <what went wrong>;
<what to do>``; bad input changes nothing. ``help`` lists every command from the
table below, so the list and what is served never differ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalppen.simlink import MAX_LINE

#: How long ``pair`` holds the button: the pen's PAIR_HOLD_MS (3 s, firmware/pen/core.py)
#: and a few control ticks more.
PAIR_HOLD_MS = 3200
SHORT_PRESS_MS = 100
#: The longest ``hold`` (s): longer holds are a test's business, not a user's.
MAX_HOLD_S = 30.0
MIN_SPEED, MAX_SPEED = 0.1, 10000.0
#: How long (wall s) a power cut may take to come back before the sim says so.
POWER_BACK_S = 30.0
#: Cartridges the sim can insert (models/cartridge.py KINDS a user would try).
CARTRIDGES = ("new", "used", "expired", "worn", "undated", "corrupt", "blank")
#: Faults ``fault`` injects: the hardware model's, less the power loss (``power-cut``).
NOT_A_FAULT = ("power_loss",)


class CommandError(Exception):
    """A command that could not be done: ``error: <message>``."""


@dataclass(frozen=True)
class Command:
    usage: str
    run: Callable[[Any, list[str]], Awaitable[str]]


#: How long (wall s) a sleeping pen may take to boot after a press.
WAKE_WITHIN_S = 30.0


def asleep(pen: Any) -> bool:
    """The pen is in deep sleep (it powered itself off when idle: firmware/pen/idleoff.py)."""
    return bool(getattr(pen, "asleep", False))


async def hold_button(pen: Any, ms: int) -> None:
    """Hold the pen's button for ``ms`` of the pen's time, then let go."""
    pen.hw.set_button(True)
    try:
        await pen.run_for(ms)
    finally:
        pen.hw.set_button(False)


async def wake(pen: Any) -> bool:
    """Press the button of a sleeping pen and wait until it runs again; True if it does."""
    boots = pen.boots
    await hold_button(pen, SHORT_PRESS_MS)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAKE_WITHIN_S
    while loop.time() < deadline:
        if not asleep(pen) and pen.boots > boots and getattr(pen, "bridge", True) is not None:
            return True
        await asyncio.sleep(0.05)
    return False


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


def _on_off(args: list[str], what: str) -> bool:
    if len(args) != 1 or args[0] not in ("on", "off"):
        raise CommandError(f"{what} takes on or off; e.g. `{what} on`")
    return args[0] == "on"


def _number(args: list[str], what: str, lo: float, hi: float) -> float:
    try:
        if len(args) != 1:
            raise ValueError
        value = float(args[0])
    except ValueError:
        raise CommandError(f"{what} takes one number from {lo:g} to {hi:g}; e.g. "
                           f"`{what} {hi / 2:g}`") from None
    if not lo <= value <= hi or value != value:
        raise CommandError(f"{what} {args[0]} is out of range; give {lo:g} to {hi:g}")
    return value


def _faults(pen: Any) -> tuple[str, ...]:
    from scalppen_hardware.virtual_pen_hw import FAULTS

    return tuple(f for f in FAULTS if f not in NOT_A_FAULT)


def _clock(pen: Any) -> str:
    unix = pen.clock.epoch()
    iso = datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{iso} {unix:.3f}"


async def _help(pen: Any, args: list[str]) -> str:
    return "commands: " + "; ".join(c.usage for c in COMMANDS.values())


async def _state(pen: Any, args: list[str]) -> str:
    body = pen.hw.body
    cart = body.cartridge
    faults = sorted(f for f in body.faults if f != "charger")
    return (f"battery={body.battery.soc:.1f} charging={'on' if body.battery.plugged else 'off'}"
            f" cartridge={'in' if cart is not None else 'none'}"
            f" contact={'on' if body.contact else 'off'} speed={pen.speed or 'max'}"
            f" faults={','.join(faults) or 'none'} clock={_clock(pen).split()[1]}"
            f" power={'asleep' if asleep(pen) else 'on'}")


async def _clock_cmd(pen: Any, args: list[str]) -> str:
    return _clock(pen)


async def _battery(pen: Any, args: list[str]) -> str:
    pct = _number(args, "battery", 0, 100)
    pen.hw.set_battery(pct)
    return f"battery at {pct:g} %"


async def _charge(pen: Any, args: list[str]) -> str:
    on = _on_off(args, "charge")
    pen.hw.plug_charger(on)
    return "charger plugged in" if on else "charger unplugged"


async def _cartridge(pen: Any, args: list[str]) -> str:
    kinds = (*CARTRIDGES, "remove")
    if len(args) != 1 or args[0] not in kinds:
        raise CommandError(f"cartridge takes one of {', '.join(kinds)}; e.g. `cartridge new`")
    if args[0] == "remove":
        gone = pen.hw.remove_cartridge()
        return "cartridge removed" if gone is not None else "the slot was already empty"
    pen.hw.remove_cartridge()
    pen.hw.insert_cartridge(args[0])
    return f"{args[0]} cartridge inserted"


async def _contact(pen: Any, args: list[str]) -> str:
    on = _on_off(args, "contact")
    pen.hw.set_contact(on)
    return "on skin" if on else "off skin"


async def _press(pen: Any, args: list[str]) -> str:
    if args:
        raise CommandError("press takes nothing; use `hold SECONDS` for a long press")
    if asleep(pen):
        if await wake(pen):
            return "button: pressed (the pen woke from sleep)"
        raise CommandError("button: pressed, the pen did not wake; `state` shows the pen")
    await hold_button(pen, SHORT_PRESS_MS)
    return "button: pressed"


async def _hold(pen: Any, args: list[str]) -> str:
    seconds = _number(args, "hold", 0.05, MAX_HOLD_S)
    await hold_button(pen, int(seconds * 1000))
    return f"button: held {seconds:g} s"


async def _pair(pen: Any, args: list[str]) -> str:
    if asleep(pen) and not await wake(pen):  # the press that wakes it only wakes it
        raise CommandError("button: pressed, the pen did not wake; `state` shows the pen")
    await hold_button(pen, PAIR_HOLD_MS)
    return "button: held 3 s (pairing window open)"


async def _fault(pen: Any, args: list[str]) -> str:
    names = _faults(pen)
    if args == ["list"]:
        active = sorted(set(names) & set(pen.hw.body.faults))
        return f"faults: {', '.join(names)}; active: {', '.join(active) or 'none'}"
    if not args or args[0] not in names or len(args) > 2 or (
            len(args) == 2 and args[1] not in ("on", "off")):
        raise CommandError(f"fault takes NAME [on|off] with NAME one of {', '.join(names)}"
                           "; `fault list` shows them")
    if len(args) == 1 or args[1] == "on":
        pen.hw.inject(args[0])
        return f"fault {args[0]} on"
    pen.hw.clear(args[0])
    return f"fault {args[0]} off"


async def _power_cut(pen: Any, args: list[str]) -> str:
    if await power_cut(pen):
        return "power: cut, back on"
    raise CommandError("power: cut, the pen did not boot again; restart the sim")


async def _speed(pen: Any, args: list[str]) -> str:
    speed = _number(args, "speed", MIN_SPEED, MAX_SPEED)
    pen.speed = speed
    return f"speed {speed:g}: virtual seconds per real second"


COMMANDS: dict[str, Command] = {
    "help": Command("help", _help),
    "state": Command("state", _state),
    "clock": Command("clock", _clock_cmd),
    "battery": Command("battery PCT", _battery),
    "charge": Command("charge on|off", _charge),
    "cartridge": Command("cartridge " + "|".join((*CARTRIDGES, "remove")), _cartridge),
    "contact": Command("contact on|off", _contact),
    "press": Command("press", _press),
    "hold": Command("hold SECONDS", _hold),
    "pair": Command("pair (hold 3 s: the pairing window)", _pair),
    "fault": Command("fault list | fault NAME [on|off]", _fault),
    "power-cut": Command("power-cut", _power_cut),
    "speed": Command("speed X", _speed),
}


async def answer(pen: Any, line: str) -> str:
    """The one-line answer to one command line (never raises for bad input)."""
    words = line.strip().split()
    if not words:
        return ""
    name, args = words[0].lower(), words[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        return f"error: unknown command {name!r}; `help` lists them"
    try:
        return "ok: " + await cmd.run(pen, args)
    except CommandError as exc:
        return f"error: {exc}"
    except Exception as exc:  # a model refusing (e.g. a fault it cannot take now)
        return f"error: {name} failed: {exc}; `state` shows the pen"


class ControlServer:
    """The sim's control socket: many clients, one command per line each."""

    def __init__(self, pen: Any, path: Path) -> None:
        self.pen = pen
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self._lock = asyncio.Lock()  # one command at a time on the pen

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                      limit=MAX_LINE)
        self.path.chmod(0o600)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def answer(self, line: str) -> str:
        """The answer to one line, one command at a time (stdin and every client)."""
        async with self._lock:
            return await answer(self.pen, line)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(b"error: line too long; one command per line\n")
                    break
                if not raw:
                    break
                text = await self.answer(raw.decode(errors="replace"))
                if text:
                    writer.write(text.encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
