"""The twin: the pen's firmware bundle running in a real MicroPython process.

:class:`TwinPen` is a pen on this computer the way :class:`VirtualPen` is, with the
same face (``start``, ``stop``, ``reboot``, ``hw``, ``radio``, ``display``,
``passkey``, ``run_for``, ``pause``), but its firmware is the ``.mpy`` bundle that
``scalppen build`` makes, laid on the pen's flash, started by its own ``boot.py``
-> slot -> ``main.py`` -> ``pen.app.run()`` in MicroPython's unix port with a
capped heap. Its body, clock and radio are the same CPython models the in-process
pen uses; the bridge (:mod:`scalppen_hardware.twin.bridge`) moves one message per
tick between the two.

Resets are new processes over the same flash, body, clock and bonds: a watchdog
reset, ``machine.reset()``, a power cut or a brown-out (the process is killed), a
soft reset from the REPL (the process ended). ``machine.deepsleep()`` ends the
process too; then no process runs while the pen sleeps (:attr:`TwinPen.asleep`: the
radio off, the board's deep-sleep current, the RTC counting) until a wake source
fires (the button), and the next process boots with reset cause ``DEEPSLEEP_RESET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bumble.link import LocalLink

from scalppen_hardware import ble_radio, upy
from scalppen_hardware.board import Board, load_board
from scalppen_hardware.twin import process as twin_process
from scalppen_hardware.twin import wire as w
from scalppen_hardware.twin.bridge import Bridge, TwinPort, TwinReset
from scalppen_hardware.twin.flashfaults import FlashFaults
from scalppen_hardware.upy.vclock import VirtualClock
from scalppen_hardware.virtual_pen_hw import SOFT_RESET, VirtualPenHardware

_log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "C0:5C:A1:00:00:01"
_PASSKEY = re.compile(r"PAIR (\d{6})")
_CONNECT_TIMEOUT = 20.0
_CONSOLE_KEEP = 64 * 1024
_IDLE_AFTER_S = 0.05  # wall seconds without a message before the body runs on its own
_IDLE_POLL_S = 0.02
_RUNNING_WITHIN_S = 0.2  # the program talked to the bridge this recently: it runs
_SLEEP_CHUNK_MS = 60_000  # virtual ms of deep sleep between two yields when unpaced
_UNPACED_SLEEP_SPEED = 100.0  # unpaced deep sleep with nobody waiting: virtual s per s


def provision(flash_dir: Path, bundle_dir: Path) -> bool:
    """Lay a bundle on a blank pen's flash as the factory does: root files, slot ``a``.

    Returns False (and changes nothing) when the flash already holds an application.
    """
    flash_dir = Path(flash_dir)
    if (flash_dir / "active").exists():
        return False
    bundle_dir = Path(bundle_dir)
    manifest = (bundle_dir / "manifest.json").read_bytes()
    import json

    doc = json.loads(manifest)
    slot = flash_dir / "a"
    slot.mkdir(parents=True, exist_ok=True)
    for f in doc["files"]:
        src = bundle_dir / f["path"]
        if f["location"] == "slot":
            dest = slot / f["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        elif not (flash_dir / f["path"]).exists():
            shutil.copyfile(src, flash_dir / f["path"])
    (slot / "manifest.json").write_bytes(manifest)
    (flash_dir / "active").write_text("a")
    return True


def _from_probe(v: Any) -> Any:
    # sequences come back as tuples (the bridge's unwire), bytes as bytes
    if isinstance(v, (list, tuple)):
        return tuple(_from_probe(x) for x in v)
    if isinstance(v, dict):
        if "bytes" in v:
            return bytes.fromhex(v["bytes"])
        if "items" in v:
            return {_hashable(_from_probe(k)): _from_probe(x) for k, x in v["items"]}
        if "repr" in v:
            return v["repr"]
    return v


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, (list, tuple)) else v


class TwinPen:
    """A pen whose firmware runs in a MicroPython process.

    Args:
        flash_dir: the pen's flash (created; kept across resets).
        link: the radio link shared with centrals.
        bundle_dir: the firmware bundle laid on a blank flash (``scalppen build``).
        board: a board name in ``hardware/boards`` or a path.
        address: the pen's random static BLE address.
        unique_id: the chip's ``machine.unique_id()`` (6 bytes; the pen's serial is
            derived from it); None: the hardware model's default.
        speed: virtual seconds per wall second (``None``: as fast as it runs).
        soc_pct: the battery's charge at first power-up.
        epoch: the RTC and calendar at power-up (Unix s); None: cold RTC.
        heap_kb: the pen's heap in KiB (the stand-ins get their own allowance on top).
        flash_size: the littlefs partition in bytes (``os.statvfs``; writes beyond it
            raise ENOSPC); None: 2 MiB. Faults of flash writes and of the USB link:
            :attr:`flash_faults` (:mod:`scalppen_hardware.twin.flashfaults`).
    """

    def __init__(
        self,
        flash_dir: Path,
        link: LocalLink,
        *,
        bundle_dir: Path | None = None,
        board: str | Path = "pen-s3-revb",
        address: str = DEFAULT_ADDRESS,
        speed: float | None = 1.0,
        soc_pct: float = 80.0,
        epoch: float | None = None,
        heap_kb: int = twin_process.DEFAULT_HEAP_KB,
        flash_size: int | None = None,
        unique_id: bytes | None = None,
    ) -> None:
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.board: Board = load_board(board)
        self.link = link
        self.speed = speed
        self.heap_kb = heap_kb
        self.flash_size = flash_size
        #: The plan of flash-write and USB-link faults (flashfaults.py).
        self.flash_faults = FlashFaults(on_cut=self.cut_usb)
        self.bundle_dir = bundle_dir
        self.clock = VirtualClock()
        if epoch is not None:
            self.clock.set_epoch(epoch)
            self.clock.set_calendar(epoch)
        self.hw = VirtualPenHardware(self.board, self.clock, soc_pct=soc_pct,
                                     unique_id=unique_id)
        self.radio = ble_radio.VirtualRadio(link, address, name="pen")
        self.boots = 0
        self.errors: list[str] = []
        self.console = bytearray()
        self.bridge: Bridge | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._console_listeners: list[Callable[[bytes], None]] = []
        self._tick_listeners: list[Callable[[Any], None]] = []
        self._display_listeners: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = asyncio.Event()
        self._paused.set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tmp = tempfile.mkdtemp(prefix="scalppen-twin-")
        self._sock_path = os.path.join(self._tmp, "bridge.sock")
        self._next_mode = "friendly"
        self._booted = asyncio.Event()
        #: The REPL is in raw mode (as far as its output tells).
        self.repl_raw = False
        self._hide_until_prompt = False
        self._raw_asked = False
        self._hidden = bytearray()
        self._last_out = 0
        self._usb: Any = None
        self._last_message = time.monotonic()
        self._last_idle = 0.0  # when the idle clock last ran the body
        self._at_prompt = False  # the REPL showed its prompt since the last message
        #: Why the last boot ended (for messages and tests).
        self.last_end = ""
        #: Wall microseconds of each tick in the twin, when a benchmark asks (a list).
        self.tick_samples: list[float] | None = None
        if bundle_dir is not None:  # the bundle's board.json (a production one, say)
            provision(self.flash_dir, bundle_dir)
        board_file = self.flash_dir / "board.json"
        if not board_file.exists():
            board_file.write_text(self.board.to_json())

    # ---- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Power the pen up; returns once its firmware has connected the bridge."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="twin-pen")
        waiter = asyncio.ensure_future(self._booted.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=_CONNECT_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()
        if waiter not in done:
            waiter.cancel()
            raise TimeoutError("the twin did not start: " + self.console_text()[-800:])

    async def stop(self) -> None:
        """Switch the pen off."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._kill()
        self.hw.body.motor.duty = 0.0
        if self._usb is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._usb._master)
            self._usb.close()
            self._usb = None
        await self.radio.power_off()
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def reboot(self) -> None:
        """Reset the pen (a hard reset: a new process over the same flash)."""
        if self.hw.asleep:
            self.hw.reset_from_sleep()
        elif self.hw.needs_reboot is None:
            self.hw.request_reset(2)

    @property
    def asleep(self) -> bool:
        """The pen is in deep sleep (its firmware called ``machine.deepsleep()``)."""
        return bool(self.hw.asleep)

    def pause(self) -> None:
        """Hold virtual time (the firmware waits at its next sleep)."""
        self._paused.clear()

    def resume(self) -> None:
        self._paused.set()

    # ---- what people see -------------------------------------------------------------------
    def on_display(self, listener: Callable[[str], None]) -> None:
        self._display_listeners.append(listener)
        self.hw.display.add_listener(listener)

    def on_tick(self, listener: Callable[[Any], None]) -> None:
        """Call ``listener(hw)`` after every sleep of the firmware (its control tick),
        once the body has run that tick: a trace of what the pen did, from outside."""
        self._tick_listeners.append(listener)

    def on_console(self, listener: Callable[[bytes], None]) -> None:
        """Call ``listener(bytes)`` with everything the twin writes to its terminal."""
        self._console_listeners.append(listener)

    @property
    def display(self) -> str:
        return str(self.hw.display_text)

    @property
    def passkey(self) -> int | None:
        """The passkey the pen shows while pairing (read off its display), else None."""
        m = _PASSKEY.search(self.display)
        return int(m.group(1)) if m else None

    def console_text(self) -> str:
        return bytes(self.console).decode("utf-8", "replace")

    def unix_time(self) -> int:
        return int(self.clock.epoch())

    async def probe(self, expr: str, timeout: float = 10.0, *, exec_: bool = False) -> Any:
        """Evaluate ``expr`` in the running firmware (``app`` is its ``pen.app.App``)
        at the next tick boundary, as a debugger would read the pen's memory. With
        ``exec_`` the text is statements and the answer is what they bind to ``result``."""
        if self.bridge is None:
            raise RuntimeError("the twin is not running")
        answer = await asyncio.wait_for(
            self.bridge.probe(expr, "exec" if exec_ else "eval"), timeout)
        if "error" in answer:
            raise RuntimeError(f"probe {expr!r}: {answer['error']}")
        return _from_probe(answer["value"])

    async def run_for(self, ms: int) -> None:
        """Wait until ``ms`` of virtual time have passed."""
        target = self.clock.world_us + int(ms * 1000)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut

    # ---- the process ---------------------------------------------------------------------------
    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.proc = None
        if self._master >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    def _on_console(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        self.console += data
        if len(self.console) > _CONSOLE_KEEP:
            del self.console[: len(self.console) - _CONSOLE_KEEP]
        if b"Traceback" in data:
            self.errors.append(data.decode("utf-8", "replace"))
        raw_at = data.rfind(b"raw REPL; CTRL-B to exit")
        friendly_at = data.rfind(b">>> ")
        if raw_at >= 0 or friendly_at >= 0:
            self.repl_raw = raw_at > friendly_at
        # the REPL waits for input: only then is the firmware idle, not computing
        self._at_prompt = data.endswith(b">>> ") or (self.repl_raw and data.endswith(b">"))
        if self._hide_until_prompt:
            # A soft reset asked from the raw REPL: the ESP32 comes back in the raw
            # REPL; the unix port starts its friendly REPL, so switch it over unseen.
            self._hidden += data
            if not self._raw_asked and self._hidden.endswith(b">>> "):
                self._raw_asked = True
                self.write_console(b"\x01")
            at = self._hidden.find(b"raw REPL; CTRL-B to exit")
            if at < 0:
                return
            data = bytes(self._hidden[at:])
            self._hide_until_prompt = False
            self._hidden = bytearray()
        data = self._cook(data)
        for listener in self._console_listeners:
            listener(data)

    def _cook(self, data: bytes) -> bytes:
        # The ESP32 port writes "\r\n" for every "\n" a program prints
        # (mp_hal_stdout_tx_strn_cooked); the unix port writes "\n".
        out = bytearray()
        prev = self._last_out
        for b in data:
            if b == 0x0A and prev != 0x0D:
                out.append(0x0D)
            out.append(b)
            prev = b
        self._last_out = prev
        return bytes(out)

    def write_console(self, data: bytes) -> None:
        """Bytes typed on the pen's USB serial.

        While the program runs (it talks to the bridge), Ctrl-C is taken out of the
        stream and raised in the program at its next tick, as the ESP32's UART
        driver does; in the REPL it is a character like any other.
        """
        bridge = self.bridge
        running = time.monotonic() - self._last_message < _RUNNING_WITHIN_S
        if bridge is not None and running and b"\x03" in data:
            bridge.kbd_intr = True
            data = data.replace(b"\x03", b"")
        if data and self._master >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._master, data)

    async def _run(self) -> None:
        try:
            while not self._stopping:
                await self._one_boot()
        finally:
            self._kill()

    async def _one_boot(self) -> None:
        loop = asyncio.get_running_loop()
        upy.install(self.hw)
        ble_radio.attach(self.radio)
        radio = self.radio
        bridge = Bridge(self.hw, lambda: self._make_ble(radio, bridge))
        bridge.flash_faults = self.flash_faults
        self.bridge = bridge
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._sock_path)
        connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            loop.create_future())

        def on_connect(r: asyncio.StreamReader, wr: asyncio.StreamWriter) -> None:
            if not connected.done():
                connected.set_result((r, wr))

        server = await asyncio.start_unix_server(on_connect, path=self._sock_path)
        mode, self._next_mode = self._next_mode, "friendly"
        self.proc, self._master = twin_process.spawn(self.flash_dir, self._sock_path,
                                                     heap_kb=self.heap_kb, mode=mode,
                                                     flash_size=self.flash_size)
        loop.add_reader(self._master, self._on_console)
        self.boots += 1
        self._hide_until_prompt = mode == "raw"
        self._raw_asked = False
        self._hidden = bytearray()
        try:
            reader, writer = await asyncio.wait_for(connected, _CONNECT_TIMEOUT)
        finally:
            server.close()
        idle = asyncio.create_task(self._idle_clock(), name="twin-idle-clock")
        try:
            await self._serve(reader, writer, bridge)
        finally:
            idle.cancel()
            writer.close()
            self._kill()
            await radio.power_off()
            if not self._stopping and self.hw.asleep:
                await self._deep_sleep()
            if not self._stopping:
                self.hw = self.hw.reboot()

    async def _deep_sleep(self) -> None:
        # machine.deepsleep(): no process runs; virtual time passes at the board's
        # deep-sleep current (paced like the awake pen) until a wake source fires.
        self.last_end = "deep sleep"
        hw = self.hw
        wall = time.monotonic()
        while hw.asleep and hw.powered and not self._stopping:
            if not self._paused.is_set():
                await self._paused.wait()
                wall = time.monotonic()
            if self.speed is None and self._waiters:
                # unpaced and someone waits for a moment: straight on to it
                now = self.clock.world_us
                ms = min(_SLEEP_CHUNK_MS, max(1.0, (min(t for t, _ in self._waiters) - now) / 1000))
                await asyncio.sleep(0)
                wall = time.monotonic()
            elif self.speed is None:
                # unpaced, nobody waiting: about the pace the awake twin keeps, so a
                # wall-clock wait (a scan, a connect) does not skip days
                await asyncio.sleep(_IDLE_POLL_S)
                t = time.monotonic()
                ms = (t - wall) * 1000 * _UNPACED_SLEEP_SPEED
                wall = t
            else:
                await asyncio.sleep(_IDLE_POLL_S)
                t = time.monotonic()
                ms = (t - wall) * 1000 * self.speed
                wall = t
            hw.sleep_for(ms)
            self._wake_waiters()

    def _make_ble(self, radio: ble_radio.VirtualRadio, bridge: Bridge) -> Any:
        from scalppen_hardware.upy import bluetooth

        ble_radio.attach(radio)
        ble = bluetooth.BLE()
        ble._port = TwinPort(bridge)
        return ble

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     bridge: Bridge) -> None:
        wall0 = time.monotonic()
        virt0 = self.clock.world_us
        since_yield = 0
        replied = time.perf_counter()
        while not self._stopping:
            try:
                head = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack("<I", head)[0])
            except (asyncio.IncompleteReadError, ConnectionError):
                self.last_end = "the process ended"
                code = await self._exit_code()
                if self.hw.needs_reboot is None and code not in (0, None):
                    # The interpreter died (a signal, a fatal error): the ESP32
                    # panics and resets the chip.
                    self.last_end = f"the process died ({code})"
                    self.hw.request_reset(2)
                elif self.hw.needs_reboot is None:
                    # The process ended by itself: Ctrl-D in the REPL, a soft reset
                    # (ports/esp32/main.c prints "MPY: soft reboot").
                    self.hw.request_reset(SOFT_RESET)
                    self._emit(b"MPY: soft reboot\r\n")
                    if self.repl_raw:
                        self._next_mode = "raw"
                return
            self._last_message = time.monotonic()
            self._at_prompt = False
            if body[0] == w.K_HELLO:
                self._booted.set()
            if self.tick_samples is not None and body[0] == w.K_SYNC:
                # what the firmware took between two sleeps (a tick), bridge included
                self.tick_samples.append((time.perf_counter() - replied) * 1e6)
            if body[0] == w.K_SYNC:
                taken = self._through(bridge.take_ops, body)
                if taken is None:
                    return
                body = taken
                if not self._paused.is_set():
                    await self._paused.wait()
                    wall0, virt0 = time.monotonic(), self.clock.world_us
                ms = struct.unpack_from("<I", body, 1)[0]
                if self.speed is not None:
                    ahead = (self.clock.world_us + ms * 1000 - virt0) / 1e6 / self.speed - (
                        time.monotonic() - wall0)
                    if ahead > 0.002:
                        await asyncio.sleep(ahead)
                        since_yield = 0
                    elif ahead < -1.0:
                        wall0, virt0 = time.monotonic(), self.clock.world_us  # fell behind
            reply = self._through(bridge.handle, body)
            if reply is None:
                return
            writer.write(reply)
            replied = time.perf_counter()
            if body[0] == w.K_SYNC:
                for listener in self._tick_listeners:
                    listener(self.hw)
            self._wake_waiters()
            since_yield += 1
            if since_yield >= 4:
                since_yield = 0
                await asyncio.sleep(0)

    def _through(self, step: Callable[[bytes], bytes], body: bytes) -> bytes | None:
        """``step(body)`` of the bridge -> its result, or None when this boot ends:
        machine.reset(), a reset the model asked for, or a message the bridge
        cannot take (the twin is broken: reset it)."""
        try:
            out = step(body)
        except TwinReset:
            self.last_end = "machine.reset()"
            return None
        except Exception as exc:
            _log.exception("the twin sent a message the bridge cannot take")
            self.errors.append(f"bridge: {exc!r}")
            self.last_end = f"bridge error {exc!r}"
            self.hw.request_reset(2)
            return None
        if self.hw.needs_reboot is not None:
            self.last_end = f"reset cause {self.hw.needs_reboot}"
            return None
        return out

    async def _idle_clock(self) -> None:
        # While the firmware does not sleep (it sits in the REPL after Ctrl-C, or
        # computes), the pen's body and its watchdog go on in virtual time.
        while True:
            await asyncio.sleep(_IDLE_POLL_S)
            if not self._paused.is_set():
                continue
            if not self._at_prompt:
                continue  # the firmware computes, or CPython is slow: no time passes
            now = time.monotonic()
            quiet = now - max(self._last_message, self._last_idle)
            if quiet < _IDLE_AFTER_S:
                continue
            ms = int(quiet * 1000 * (self.speed or 1.0))
            self._last_idle = now
            if ms > 0 and self.hw.needs_reboot is None:
                self.hw.advance(ms)
                self._wake_waiters()
            if self.hw.needs_reboot is not None and self.proc is not None:
                # the watchdog (or a power cut) ends this process: _serve sees EOF
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)

    # ---- the USB serial port --------------------------------------------------------------------
    def open_serial(self) -> str:
        """The pen's USB serial (its REPL) as a pty for mpremote or ``scalppen flash``;
        it stays open across resets, as a USB-UART bridge does. Returns its path."""
        if self._usb is None:
            from scalppen_hardware.models.uart_port import UartPort

            self._usb = UartPort()
            asyncio.get_running_loop().add_reader(self._usb._master, self._on_usb)
            self.on_console(self._usb.write)
        return str(self._usb.path)

    def cut_usb(self) -> None:
        """Pull the USB cable: the host's end of the serial hangs up (its reads and
        writes fail) and the pen runs on; :meth:`open_serial` then is a new cable."""
        usb, self._usb = self._usb, None
        if usb is None:
            return
        with contextlib.suppress(ValueError):
            self._console_listeners.remove(usb.write)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(usb._master)
        usb.close()

    def _on_usb(self) -> None:
        data = self._usb.read(4096)
        if data:
            self.write_console(data)

    async def _exit_code(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        for _ in range(50):
            code = proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.01)
        return None

    def _emit(self, data: bytes) -> None:
        self.console += data
        for listener in self._console_listeners:
            listener(data)

    def _wake_waiters(self) -> None:
        if not self._waiters:
            return
        now = self.clock.world_us
        keep = []
        for target, fut in self._waiters:
            if now >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep
