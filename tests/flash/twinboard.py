"""A pen on this computer for the flashing tests: the twin, from the host's side.

:class:`TwinBoard` runs a :class:`~scalppen_hardware.twin.pen.TwinPen` (the pen's
firmware in a real MicroPython process; its USB serial is that process's REPL) on
an asyncio loop of its own thread, so tests and ``deploy_bundle`` talk to its serial
port from the main thread as a host program does. Without a bundle the twin's flash
holds only ``board.json``: a blank pen, booting into the REPL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from scalppen.flash.port import open_serial
from scalppen.flash.rawrepl import RawRepl
from scalppen_hardware import ble_radio, upy
from scalppen_hardware.twin.flashfaults import FlashFaults
from scalppen_hardware.twin.pen import TwinPen

T = TypeVar("T")


class TwinBoard:
    """A twin pen with its own event loop thread, seen through its USB serial.

    Args:
        flash_dir: the pen's flash (a directory; kept when the board stops).
        flash_size: the littlefs partition in bytes (None: 2 MiB).
        start: power the pen up now.
    """

    def __init__(self, flash_dir: Path, *, flash_size: int | None = None,
                 start: bool = True) -> None:
        self.root = Path(flash_dir)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="twin-board",
                                        daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._out: list[tuple[int, bytes]] = []  # (boot, console bytes) as the host sees them
        self.twin: TwinPen = self.run(self._make(flash_size))
        self.port = ""
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    async def _make(self, flash_size: int | None) -> TwinPen:
        twin = TwinPen(self.root, ble_radio.new_link(), speed=None, flash_size=flash_size)
        twin.on_console(self._on_console)
        return twin

    def _on_console(self, data: bytes) -> None:
        with self._lock:
            self._out.append((self.twin.boots, data))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the board's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Call ``fn()`` on the board's loop (TwinPen is not thread-safe)."""
        async def on_loop() -> T:
            return fn()

        return self.run(on_loop(), timeout)

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> str:
        """Plug the USB cable in, power the pen up; returns its serial port."""
        self.port = self.call(self.twin.open_serial)
        self.run(self.twin.start())
        return self.port

    def stop(self) -> None:
        """Switch the pen off and end the loop (the flash stays)."""
        try:
            self.run(self.twin.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            ble_radio.attach(None)
            upy.uninstall()

    @property
    def faults(self) -> FlashFaults:
        return self.twin.flash_faults

    # ---- what the pen printed -------------------------------------------------------
    def output(self, boot: int) -> str:
        """What the pen sent on its serial during boot number ``boot`` (``\\r\\n`` as ``\\n``)."""
        with self._lock:
            data = b"".join(d for n, d in self._out if n == boot)
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_output(self, boot: int, until: str, timeout: float = 30.0) -> str:
        """The output of boot ``boot`` once it contains ``until`` (or the next boot began)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.output(boot)
            if until in text or self.twin.boots > boot:
                return text
            time.sleep(0.01)
        raise TimeoutError(f"boot {boot} did not print {until!r}: {self.output(boot)[-500:]!r}")

    def boot(self, until: str = ">>> ", timeout: float = 30.0) -> str:
        """Take the battery out and put it back; what boot.py and main.py printed,
        up to ``until`` (the REPL prompt once main.py has ended) or the next reset."""
        boots = self.twin.boots
        self.call(self._power_cycle)
        end = time.monotonic() + timeout
        while self.twin.boots <= boots:
            if time.monotonic() > end:
                raise TimeoutError("the pen did not power up again")
            time.sleep(0.01)
        return self.wait_output(boots + 1, until, max(0.1, end - time.monotonic()))

    def _power_cycle(self) -> None:
        twin = self.twin
        twin.hw.inject("power_loss")
        proc = twin.proc
        if proc is not None:  # the MCU stops at once, even while virtual time is held
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def pause(self) -> None:
        """Hold virtual time: the firmware stops at its next sleep."""
        self.call(self.twin.pause)

    def step(self) -> None:
        """Let the one sleep the firmware waits in pass, then hold time again."""
        def go() -> None:
            self.twin.resume()
            self.twin.pause()

        self.call(go)

    def resume(self) -> None:
        self.call(self.twin.resume)

    # ---- the REPL, as a host --------------------------------------------------------
    def exec(self, code: str) -> tuple[str, str]:
        """Run ``code`` in the pen's raw REPL over its serial: (output, exception text)."""
        ser = open_serial(self.port)
        try:
            repl = RawRepl(ser)
            repl.enter()
            res = repl.exec_raw(code)
            repl.exit()
        finally:
            ser.close()

        def text(b: bytes) -> str:
            return b.decode("utf-8", "replace").replace("\r\n", "\n")

        return text(res.out), text(res.err)
