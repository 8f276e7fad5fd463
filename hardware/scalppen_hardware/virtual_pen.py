"""The virtual pen: the real firmware (``firmware/pen``) on virtual hardware and radio.

One :class:`VirtualPen` is one pen: its flash directory (board file, logs, counters,
bonds), its body (motor, stepper, battery, cartridge... in virtual time) and its radio
on a bumble ``LocalLink``. The firmware's own ``pen.app.App`` runs unchanged: its
``import machine``, ``bluetooth``, ``micropython`` get the modules of
``scalppen_hardware.upy``.

Virtual time runs ``speed`` times faster than the wall clock (``None``: as fast as
the host allows), so a 15-minute session or a 7-day lockout takes seconds.
Reboots (watchdog, ``machine.reset()``, power loss, brown-out) start a fresh
firmware over the same flash directory, as on the pen. ``machine.deepsleep()`` ends
the firmware too: the pen then sleeps (:attr:`VirtualPen.asleep`, radio silent, the
board's deep-sleep current) until a wake source fires (its button), and boots again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bumble.link import LocalLink

from scalppen_hardware import ble_radio, upy
from scalppen_hardware.board import Board, load_board
from scalppen_hardware.upy.vclock import VirtualClock
from scalppen_hardware.virtual_pen_hw import VirtualPenHardware

_log = logging.getLogger(__name__)

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
DEFAULT_ADDRESS = "C0:5C:A1:00:00:01"
#: Virtual ms stepped between two yields to the event loop (BLE traffic flows there).
BATCH_MS = 20
#: The same while the pen is in deep sleep (nothing runs; wake sources are looked at).
SLEEP_BATCH_MS = 1000


def _purge_firmware_modules() -> None:
    for name in list(sys.modules):
        if name == "pen" or name.startswith("pen."):
            del sys.modules[name]


class VirtualPen:
    """A pen on this computer.

    Args:
        flash_dir: the pen's flash filesystem (created; kept across reboots).
        link: the radio link shared with centrals (``ble_radio.new_link()``).
        board: a board name in ``hardware/boards`` or a path.
        address: the pen's random static BLE address.
        speed: virtual seconds per wall second (``None`` = unpaced).
        soc_pct: the battery's charge at first power-up.
        epoch: the RTC's time at power-up (Unix s); None: never set (cold).
    """

    def __init__(
        self,
        flash_dir: Path,
        link: LocalLink,
        *,
        board: str | Path = "pen-s3-revb",
        address: str = DEFAULT_ADDRESS,
        speed: float | None = 1.0,
        soc_pct: float = 80.0,
        epoch: float | None = None,
    ) -> None:
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.board: Board = load_board(board)
        self.link = link
        self.speed = speed
        self.clock = VirtualClock()
        if epoch is not None:
            self.clock.set_epoch(epoch)
            self.clock.set_calendar(epoch)
        self.hw = VirtualPenHardware(self.board, self.clock, soc_pct=soc_pct)
        self.radio = ble_radio.VirtualRadio(link, address, name="pen")
        self.app: Any = None
        self.now_ms = 0
        self.boots = 0
        self.errors: list[BaseException] = []
        self._display_listeners: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = asyncio.Event()
        self._paused.set()
        board_file = self.flash_dir / "board.json"
        if not board_file.exists():
            board_file.write_text(self.board.to_json())

    # ---- life cycle -------------------------------------------------------------------
    def _boot(self) -> None:
        upy.install(self.hw)
        if str(FIRMWARE_DIR) not in sys.path:
            sys.path.insert(0, str(FIRMWARE_DIR))
        ble_radio.attach(self.radio)
        _purge_firmware_modules()
        from pen.app import App  # the firmware's own shell, fresh for this boot

        for listener in self._display_listeners:
            self.hw.display.add_listener(listener)
        self.app = App(str(self.flash_dir), on_pen=False)
        self.app.drivers.start_watchdog()  # as run() does on the pen: rule 21
        self.now_ms = 0
        self.boots += 1

    async def start(self) -> None:
        """Power the pen up and run it until :meth:`stop`."""
        self._boot()
        await self._radio_idle()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="virtual-pen")

    async def stop(self) -> None:
        """Switch the pen off (as a user would: the motor stops first)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.app is not None:
            self.app.drivers.safe_stop()
        await self.radio.power_off()

    async def reboot(self) -> None:
        """Reset the pen: a fresh firmware over the same flash, body and bonds."""
        await self.radio.power_off()
        self.hw = self.hw.reboot()
        self._boot()
        await self._radio_idle()

    async def _radio_idle(self) -> None:
        ble = getattr(self.app.ble, "_ble", None) if self.app is not None else None
        if ble is not None and hasattr(ble, "idle"):
            await ble.idle()

    # ---- running ------------------------------------------------------------------------
    def on_display(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(text)`` on every change of the pen's display (across reboots)."""
        self._display_listeners.append(listener)
        self.hw.display.add_listener(listener)

    @property
    def display(self) -> str:
        return str(self.hw.display_text)

    @property
    def asleep(self) -> bool:
        """The pen is in deep sleep (its firmware called ``machine.deepsleep()``)."""
        return bool(self.hw.asleep)

    @property
    def passkey(self) -> int | None:
        """The passkey the pen shows while pairing, else None."""
        return None if self.app is None else self.app.passkey

    def step(self, ms: int) -> None:
        """Run ``ms`` of virtual time now (whole ticks), without yielding."""
        tick = int(self.board.limits["tick_ms"])
        for _ in range(max(1, ms // tick)):
            self.hw.advance(tick)
            self.now_ms += tick
            self.app.step(self.now_ms)

    async def run_for(self, ms: int) -> None:
        """Advance ``ms`` of virtual time, yielding to the event loop between batches."""
        done = 0
        while done < ms:
            chunk = min(SLEEP_BATCH_MS if self.hw.asleep else BATCH_MS, ms - done)
            await self._tick_batch(chunk)
            done += chunk
            await asyncio.sleep(0)

    async def _tick_batch(self, ms: int) -> None:
        if self.hw.asleep:
            self.hw.sleep_for(ms)  # nothing runs; a wake source ends it
            if not self.hw.asleep:
                await self.reboot()
            return
        try:
            self.step(ms)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self.hw.needs_reboot is None:
                self.errors.append(exc)
                _log.error("firmware error: %r", exc)
                self.hw.request_reset(1)
        if self.hw.asleep:
            await self.radio.power_off()  # deep sleep: the radio is off, nothing advertises
        elif self.hw.needs_reboot is not None:
            await self.reboot()

    async def _run(self) -> None:
        wall0 = time.monotonic()
        virt0 = self.clock.world_us / 1000
        while not self._stopping:
            await self._paused.wait()
            if self.speed is None:
                await self._tick_batch(SLEEP_BATCH_MS if self.hw.asleep else BATCH_MS)
                await asyncio.sleep(0)
                continue
            target = virt0 + (time.monotonic() - wall0) * 1000 * self.speed
            behind = target - self.clock.world_us / 1000
            most = 10 * (SLEEP_BATCH_MS if self.hw.asleep else BATCH_MS)
            if behind >= BATCH_MS:
                await self._tick_batch(BATCH_MS if not self.hw.asleep and behind < most
                                       else int(min(behind, most)))
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(max(0.001, (BATCH_MS - behind) / 1000 / self.speed))

    def pause(self) -> None:
        """Hold virtual time (the pen freezes; the radio keeps running)."""
        self._paused.clear()

    def resume(self) -> None:
        self._paused.set()

    def unix_time(self) -> int:
        """The pen's RTC (virtual wall time), in Unix seconds."""
        return int(self.clock.epoch())
