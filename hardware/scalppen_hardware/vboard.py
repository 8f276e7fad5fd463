"""A virtual ESP32-S3 MicroPython board on a pseudo-terminal, for flashing tests.

The board speaks on a pty what MicroPython speaks on its USB serial port:

- the friendly REPL (banner, ``>>>`` prompt, line echo, one-line statements run
  in ``single`` mode so expressions print), Ctrl-A to the raw REPL, Ctrl-B back,
  Ctrl-C, Ctrl-D soft reset (``MPY: soft reboot``; boot.py and main.py run);
- the raw REPL exactly as ``pyexec.c`` does it: ``raw REPL; CTRL-B to exit``,
  ``>``, code + Ctrl-D -> ``OK``, output, ``\\x04``, exception text, ``\\x04``;
  Ctrl-D on an empty line is a soft reset (boot.py runs, main.py does not);
- raw-paste mode: ``\\x05A\\x01`` -> ``R\\x01`` + u16 window; one ``\\x01`` is sent
  back for every ``window`` bytes consumed; ``\\x04`` ends the code and is echoed.

Code runs in a real MicroPython 1.27 VM (:mod:`scalppen_hardware.mpvm`) whose ``/``
is the board's flash directory on the host: ``/a/pen/core.mpy`` on the board is
``root_dir/a/pen/core.mpy``, so device-side code needs no path rewriting. A soft
reset starts a fresh VM (globals, ``sys.path`` and ``sys.modules`` are reset).

Flash size: ``os.statvfs('/')`` reports ``flash_size`` split in ``block_size`` blocks,
and a write that would need more blocks than are free raises ``OSError(28)``
(ENOSPC), as littlefs does on the pen. Usage counts each file as its size rounded
up to whole blocks (at least one) and each directory as one block. (The guest's
errno numbers are WASI's, so the pen's ``[Errno 28] ENOSPC`` reads ``[Errno 51] ENOSPC``.)

Fault injection (:class:`Faults`, ``board.faults``): flip one byte of the next
write(s) to a matching file (the file on flash differs from what was sent), or cut
the link after N more bytes were written to matching files (the pty closes; the
partly written file stays, like a pulled cable).

Differences from the pen: the guest's errno numbers are WASI's (ENOENT is 44, not
2); the friendly REPL takes single lines only (no continuation, no paste mode);
Ctrl-C stops a running program by restarting the VM, so its globals are lost.

Use in-process (``with VirtualBoard(tmp) as port: ...``) or as the simulator's
USB port (``start()`` returns e.g. ``/dev/pts/7``; ``mpremote connect /dev/pts/7``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import struct
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from scalppen_hardware.mpvm import GuestVM, RunOutcome, VMDead

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"


@dataclass
class Faults:
    """Fault injection plan; change the fields while the board runs."""

    #: number of upcoming writes (to files whose path contains ``corrupt_path``) to corrupt
    corrupt_writes: int = 0
    corrupt_path: str = ""
    #: cut the link once this many more bytes were written to files matching ``cut_path``
    cut_after_bytes: int | None = None
    cut_path: str = ""
    corrupted: int = 0
    cut: bool = False


class VirtualBoard:
    """A MicroPython board on a pty with its flash in ``root_dir``.

    Args:
        root_dir: host directory holding the board's flash filesystem (created if missing).
        flash_size: bytes of the filesystem (what ``os.statvfs`` reports).
        block_size: filesystem block size.
        window: raw-paste flow-control window in bytes.
        run_main: run main.py after boot.py on power-on and friendly soft resets.
        machine: the board name printed in the banner.
    """

    BANNER_FMT = ("MicroPython v1.27.0 on 2025-12-09; {machine} with ESP32S3\r\n"
                  'Type "help()" for more information.\r\n')

    def __init__(self, root_dir: str | os.PathLike[str], *, flash_size: int = 2 * 1024 * 1024,
                 block_size: int = 4096, window: int = 256, run_main: bool = True,
                 machine: str = "ScalpPen S3") -> None:
        self.root = Path(root_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.flash_size = flash_size
        self.block_size = block_size
        self.window = window
        self.run_main = run_main
        self.machine = machine
        self.faults = Faults()
        self.port: str | None = None
        self._master = -1
        self._slave = -1
        self._inq: queue.Queue[bytes | None] = queue.Queue()
        self._rx = bytearray()
        self._rx_pos = 0
        self._out_lock = threading.Lock()
        self._vm_lock = threading.RLock()
        self._vm: GuestVM | None = None
        self._capture: list[bytes] | None = None
        self._stop = threading.Event()
        self._powered = threading.Event()
        self._threads: list[threading.Thread] = []
        self._raw = False
        self._cut_bytes = 0

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> str:
        """Open the pty, power the board on (boot.py, main.py) and return the port path."""
        if self.port:
            return self.port
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._powered.clear()
        for target, name in ((self._reader, "vboard-rx"), (self._repl, "vboard-repl")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._powered.wait(15)  # the VM is up; boot.py and main.py may still be running
        return self.port

    def stop(self) -> None:
        """Unplug: stop the threads, close the pty and the VM."""
        self._stop.set()
        self._inq.put(None)
        vm = self._vm
        if vm is not None and vm.busy:
            vm.interrupt()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(3)
        self._threads.clear()
        self._close_pty()
        with self._vm_lock:
            if self._vm is not None:
                self._vm.close()
                self._vm = None
        self.port = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _close_pty(self) -> None:
        with self._out_lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = -1

    def cut_link(self) -> None:
        """Drop the USB link now (the pty closes; clients get an I/O error)."""
        self.faults.cut = True
        self._stop.set()
        self._inq.put(None)
        self._close_pty()

    # ---- flash accounting (host functions of the guest shim) --------------------------
    def _blocks(self, size: int) -> int:
        return max(1, -(-size // self.block_size))

    def used_blocks(self) -> int:
        used = 1
        for _dirpath, dirnames, filenames in os.walk(self.root):
            used += len(dirnames)
            for name in filenames:
                with contextlib.suppress(OSError):
                    used += self._blocks(os.path.getsize(os.path.join(_dirpath, name)))
        return used

    def free_bytes(self) -> int:
        total = self.flash_size // self.block_size
        return max(0, total - self.used_blocks()) * self.block_size

    def _host_path(self, guest_path: str) -> Path:
        parts = [p for p in guest_path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ValueError("path escapes the board")
        return self.root.joinpath(*parts)

    def _statvfs(self) -> list[int]:
        total = self.flash_size // self.block_size
        free = max(0, total - self.used_blocks())
        return [self.block_size, self.block_size, total, free, free, 0, 0, 0, 0, 255]

    def _write_check(self, path: str, n: int) -> list[object]:
        """Before a guest write: [bytes allowed, link cut, index of byte to flip or -1]."""
        f = self.faults
        flip = -1
        if f.corrupt_writes > 0 and n > 0 and f.corrupt_path in path:
            f.corrupt_writes -= 1
            f.corrupted += 1
            flip = n // 2
        if f.cut_after_bytes is not None and f.cut_path in path:
            room = f.cut_after_bytes - self._cut_bytes
            if n >= room:
                f.cut_after_bytes = None
                self._cut_bytes = 0
                self.cut_link()
                return [max(0, room), True, -1]
            self._cut_bytes += n
        try:
            size = os.path.getsize(self._host_path(path))
        except OSError:
            size = 0
        extra = self._blocks(size + n) - self._blocks(size)
        total = self.flash_size // self.block_size
        if extra and self.used_blocks() + extra > total:
            return [0, False, -1]
        return [n, False, flip]

    # ---- the VM ---------------------------------------------------------------------
    def _new_vm(self) -> GuestVM:
        if self._vm is not None:
            self._vm.close()
        self._vm = GuestVM(self.root, self._guest_output,
                           {"statvfs": self._statvfs, "wr": self._write_check})
        return self._vm

    def _guest_output(self, data: bytes) -> None:
        data = data.replace(b"\n", b"\r\n")
        if self._capture is not None:
            self._capture.append(data)
        self._out(data)

    def _run(self, mode: str, text: str = "") -> RunOutcome:
        with self._vm_lock:
            vm = self._vm if self._vm is not None and not self._vm.dead else self._new_vm()
            try:
                outcome = vm.run(mode, text)
            except VMDead as exc:
                outcome = RunOutcome(f"Traceback (most recent call last):\nSystemError: {exc}\n")
            if vm.dead:  # interrupted or crashed: the next run gets a fresh VM
                self._vm = None
            return outcome

    def _reset_vm(self, run_main: bool) -> None:
        """Soft reset: fresh VM, boot.py, then main.py if ``run_main``."""
        with self._vm_lock:
            self._new_vm()
            self._powered.set()
            for name in ("boot.py", "main.py") if run_main else ("boot.py",):
                outcome = self._run("file", name)
                if outcome.error:
                    self._guest_output(outcome.error.encode())

    def boot(self, run_main: bool = True) -> str:
        """Hard reset in-process: fresh VM, boot.py and main.py; returns what they printed.

        Works with or without :meth:`start` (without, nothing goes to a pty).
        """
        with self._vm_lock:
            self._capture = []
            try:
                self._reset_vm(run_main)
                return b"".join(self._capture).decode(errors="replace").replace("\r\n", "\n")
            finally:
                self._capture = None

    def exec(self, code: str) -> tuple[str, str]:
        """Run code in the board's VM directly (tests); returns (output, traceback)."""
        with self._vm_lock:
            self._capture = []
            try:
                outcome = self._run("exec", code)
                out = b"".join(self._capture).decode(errors="replace").replace("\r\n", "\n")
                return out, outcome.error
            finally:
                self._capture = None

    # ---- pty I/O --------------------------------------------------------------------
    def _out(self, data: bytes) -> None:
        with self._out_lock:
            fd = self._master
            if fd < 0 or self.faults.cut:
                return
            view = memoryview(data)
            while view:
                try:
                    _, w, _ = select.select([], [fd], [], 0.5)
                    if not w:
                        if self._stop.is_set():
                            return
                        continue
                    n = os.write(fd, view)
                except OSError:
                    return
                view = view[n:]

    def _reader(self) -> None:
        while not self._stop.is_set():
            fd = self._master
            if fd < 0:
                break
            try:
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r:
                    continue
                data = os.read(fd, 4096)
            except OSError:
                time.sleep(0.05)  # no client on the slave side yet
                continue
            vm = self._vm
            if 3 in data and vm is not None and vm.busy:
                vm.interrupt()
            self._inq.put(data)
        self._inq.put(None)

    def _take(self, n: int) -> bytes:
        """Up to ``n`` received bytes (at least one; blocks until there is one)."""
        while self._rx_pos >= len(self._rx):
            chunk = self._inq.get()
            if chunk is None or self._stop.is_set():
                raise _Stopped
            self._rx = bytearray(chunk)
            self._rx_pos = 0
        out = bytes(self._rx[self._rx_pos:self._rx_pos + n])
        self._rx_pos += len(out)
        return out

    def _unread(self, data: bytes) -> None:
        self._rx = bytearray(data) + self._rx[self._rx_pos:]
        self._rx_pos = 0

    def _getc(self) -> int:
        return self._take(1)[0]

    # ---- REPL -----------------------------------------------------------------------
    def _repl(self) -> None:
        try:
            self._reset_vm(self.run_main)
            self._raw = False
            while not self._stop.is_set():
                if self._raw:
                    self._raw_repl()
                else:
                    self._friendly_repl()
        except _Stopped:
            pass

    def _soft_reboot(self) -> None:
        self._out(b"MPY: soft reboot\r\n")
        self._reset_vm(run_main=self.run_main and not self._raw)

    def _friendly_repl(self) -> None:
        self._out(self.BANNER_FMT.format(machine=self.machine).encode())
        while True:
            self._out(b">>> ")
            line = bytearray()
            while True:
                c = self._getc()
                if c == 1:  # Ctrl-A: raw REPL
                    self._out(b"\r\n")
                    self._raw = True
                    return
                if c == 2:  # Ctrl-B: banner again
                    self._out(b"\r\n")
                    return
                if c == 3:
                    self._out(b"\r\n")
                    break
                if c == 4:
                    if not line:
                        self._out(b"\r\n")
                        self._soft_reboot()
                        return
                    continue
                if c in (13, 10):
                    self._out(b"\r\n")
                    text = line.decode(errors="replace")
                    if text.strip():
                        outcome = self._run("single", text)
                        if outcome.error:
                            self._guest_output(outcome.error.encode())
                    break
                if c in (8, 127):
                    if line:
                        line.pop()
                        self._out(b"\x08 \x08")
                    continue
                if c >= 32 or c == 9:
                    line.append(c)
                    self._out(bytes([c]))

    def _raw_repl(self) -> None:
        self._out(RAW_BANNER)
        while True:
            self._out(b">")
            line = bytearray()
            while True:
                c = self._getc()
                if c == 1:
                    if len(line) == 2 and line[0] == 5:
                        if line[1] == ord("A"):
                            self._raw_paste()
                        else:
                            self._out(b"R\x00")
                        line.clear()
                        self._out(b">")
                        continue
                    return  # reset the raw REPL: banner again
                if c == 2:
                    self._out(b"\r\n")
                    self._raw = False
                    return
                if c == 3:
                    line.clear()
                    continue
                if c == 4:
                    break
                line.append(c)
            self._out(b"OK")
            if not line:
                self._out(b"\r\n")
                self._soft_reboot()
                return
            self._execute(bytes(line))

    def _raw_paste(self) -> None:
        self._out(b"R\x01" + struct.pack("<H", self.window))
        code = bytearray()
        remain = self.window
        while True:
            data = self._take(remain)
            ends = [i for i in (data.find(b"\x03"), data.find(b"\x04")) if i >= 0]
            if ends:
                end = min(ends)
                code += data[:end]
                self._unread(data[end + 1:])
                self._out(b"\x04")
                if data[end] == 3:
                    self._out(b"\x04Traceback (most recent call last):\r\n"
                              b"KeyboardInterrupt: \r\n\x04")
                    return
                break
            code += data
            remain -= len(data)
            if remain == 0:
                self._out(b"\x01")
                remain = self.window
        self._execute(bytes(code))

    def _execute(self, code: bytes) -> None:
        outcome = self._run("exec", code.decode(errors="replace"))
        self._out(b"\x04")
        if outcome.error:
            self._out(outcome.error.replace("\n", "\r\n").encode())
        self._out(b"\x04")


class _Stopped(Exception):
    pass
