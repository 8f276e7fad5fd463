"""MicroPython's raw REPL over a serial port: enter, execute, soft reset.

The protocol, as MicroPython's ``pyexec.c`` implements it:

- Ctrl-C stops a running program; Ctrl-A enters the raw REPL, which answers
  ``raw REPL; CTRL-B to exit\\r\\n>``; Ctrl-B goes back to the friendly REPL.
- Raw-paste mode: the host sends ``\\x05A\\x01``; ``R\\x01`` + a little-endian u16
  window means yes (``R\\x00`` means the device knows the mode but refuses it, any
  other answer means an old device). The host may send ``window`` bytes, then
  one more window for every ``\\x01`` it receives; ``\\x04`` ends the code and the
  device acknowledges with ``\\x04``. A ``\\x04`` from the device during the
  upload means it stopped reading (a compile error); the host answers ``\\x04``.
- Plain raw mode: code, then ``\\x04``; the device answers ``OK``.
- Then: the program's output, ``\\x04``, the exception output, ``\\x04``, ``>``.
- Ctrl-D on an empty line is a soft reset: ``OK\\r\\nMPY: soft reboot\\r\\n``,
  boot.py runs (its output follows), then the raw REPL banner again.

No I/O policy here beyond timeouts; file operations are in :mod:`.devicefs`.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from scalppen.flash.errors import DeviceExecError, LinkError, NotMicroPythonError
from scalppen.flash.port import SerialLike

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"soft reboot\r\n"
CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"


@dataclass(frozen=True)
class ExecResult:
    out: bytes
    err: bytes


class RawRepl:
    """One conversation with a MicroPython board in raw REPL mode.

    Args:
        port: an open pyserial-like port (see :class:`scalppen.flash.port.SerialLike`).
        timeout: seconds of silence allowed while waiting for an answer.
        use_raw_paste: try raw-paste mode first (falls back automatically).
    """

    def __init__(self, port: SerialLike, timeout: float = 5.0, use_raw_paste: bool = True) -> None:
        self.port = port
        self.timeout = timeout
        self.use_raw_paste = use_raw_paste
        self.in_raw_repl = False
        self._buf = bytearray()

    # ---- byte I/O -------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except Exception as exc:  # pyserial raises SerialException / OSError
            raise LinkError(f"lost the connection to the pen while writing: {_why(exc)}") from None

    def _fill(self, deadline: float) -> bool:
        try:
            n = self.port.in_waiting
            chunk = self.port.read(max(1, n))
        except Exception as exc:
            raise LinkError(f"lost the connection to the pen while reading: {_why(exc)}") from None
        if chunk:
            self._buf += chunk
            return True
        return time.monotonic() < deadline

    def _drain(self) -> None:
        self._buf.clear()
        try:
            while self.port.in_waiting:
                self.port.read(self.port.in_waiting)
        except Exception as exc:
            raise LinkError(f"lost the connection to the pen: {_why(exc)}") from None

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buf) < n:
            if not self._fill(deadline):
                raise LinkError(f"the pen stopped answering (timeout after {self.timeout:g} s)")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_until(self, ending: bytes, timeout: float | None = None,
                   overall: float | None = None) -> bytes | None:
        """Bytes up to and including ``ending``; None on silence or overall timeout."""
        silence = self.timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = start + silence
        scanned = 0
        while True:
            i = self._buf.find(ending, max(0, scanned - len(ending) + 1))
            if i >= 0:
                end = i + len(ending)
                out = bytes(self._buf[:end])
                del self._buf[:end]
                return out
            scanned = len(self._buf)
            if overall is not None and time.monotonic() - start > overall:
                return None
            before = len(self._buf)
            if not self._fill(deadline):
                return None
            if len(self._buf) > before:
                deadline = time.monotonic() + silence

    # ---- modes ----------------------------------------------------------------------
    def enter(self, soft_reset: bool = False, timeout: float | None = None) -> bytes:
        """Stop any running program and enter the raw REPL.

        Returns:
            What boot.py printed during the soft reset (empty without one).

        Raises:
            NotMicroPythonError: no raw REPL banner within ``timeout`` seconds
                (default: the instance's timeout).
        """
        timeout = self.timeout if timeout is None else timeout
        self._write(b"\r" + CTRL_C)
        time.sleep(0.02)
        self._write(b"\r" + CTRL_C)
        time.sleep(0.02)
        self._drain()
        self._write(b"\r" + CTRL_A)
        got = self.read_until(RAW_BANNER + b">", timeout=timeout, overall=timeout)
        if got is None:
            raise NotMicroPythonError("the device on this port does not answer as MicroPython "
                                      "(no raw REPL)")
        self.in_raw_repl = True
        if not soft_reset:
            return b""
        return self.soft_reset(timeout=timeout)

    def soft_reset(self, timeout: float = 10.0) -> bytes:
        """Soft reset from the raw REPL; boot.py runs, main.py does not."""
        self._write(CTRL_D)
        got = self.read_until(SOFT_REBOOT, timeout=timeout, overall=timeout)
        if got is None:
            raise LinkError("the pen did not soft-reboot")
        boot_out = self.read_until(RAW_BANNER + b">", timeout=timeout, overall=timeout)
        if boot_out is None:
            raise LinkError("the pen did not come back to the raw REPL after a soft reboot")
        return boot_out[: -len(RAW_BANNER) - 1]

    def exit(self) -> None:
        """Back to the friendly REPL."""
        self._write(b"\r" + CTRL_B)
        self.in_raw_repl = False

    def reboot_to_app(self) -> None:
        """Leave the raw REPL and soft-reset in friendly mode, so boot.py and main.py run."""
        self.exit()
        time.sleep(0.05)
        self._write(CTRL_D)

    # ---- execution ------------------------------------------------------------------
    def exec_raw(self, code: str | bytes, timeout: float | None = None) -> ExecResult:
        """Run ``code``; return its output and its exception output (both raw bytes)."""
        data = code.encode() if isinstance(code, str) else code
        if not self.in_raw_repl:
            raise LinkError("not in the raw REPL (call enter() first)")
        if self.use_raw_paste:
            self._write(CTRL_E + b"A" + CTRL_A)
            answer = self.read_exact(2)
            if answer == b"R\x01":
                self._paste(data)
                return self._follow(timeout)
            # An old device took the bytes as code and echoes the raw REPL banner.
            if answer != b"R\x00" and self.read_until(b"w REPL; CTRL-B to exit\r\n>") is None:
                raise LinkError("the pen's raw REPL did not recover after a raw-paste request")
            self.use_raw_paste = False
        for i in range(0, len(data), 256):
            self._write(data[i:i + 256])
            time.sleep(0.002)
        self._write(CTRL_D)
        ok = self.read_exact(2)
        if ok != b"OK":
            raise LinkError(f"the pen did not accept the code (answer {ok!r})")
        return self._follow(timeout)

    def _paste(self, data: bytes) -> None:
        window = struct.unpack("<H", self.read_exact(2))[0]
        remain = window
        i = 0
        while i < len(data):
            while remain == 0 or self._pending():
                c = self.read_exact(1)
                if c == CTRL_A:
                    remain += window
                elif c == CTRL_D:
                    self._write(CTRL_D)  # the device stopped reading early
                    return
                else:
                    raise LinkError(f"unexpected byte {c!r} from the pen during raw paste")
            n = min(remain, len(data) - i)
            self._write(data[i:i + n])
            remain -= n
            i += n
        self._write(CTRL_D)
        # The device acknowledges the end with \x04 (it may still send \x01 first).
        while True:
            c = self.read_exact(1)
            if c == CTRL_D:
                return
            if c != CTRL_A:
                raise LinkError(f"unexpected byte {c!r} from the pen after raw paste")

    def _pending(self) -> bool:
        if self._buf:
            return True
        try:
            return bool(self.port.in_waiting)
        except Exception as exc:
            raise LinkError(f"lost the connection to the pen: {_why(exc)}") from None

    def _follow(self, timeout: float | None) -> ExecResult:
        out = self.read_until(CTRL_D, timeout=timeout)
        if out is None:
            raise LinkError("the pen stopped answering while running code")
        err = self.read_until(CTRL_D, timeout=timeout)
        if err is None:
            raise LinkError("the pen stopped answering while running code")
        if self.read_until(b">", timeout=timeout) is None:
            raise LinkError("the pen did not return to the raw REPL prompt")
        return ExecResult(out[:-1], err[:-1])

    def exec(self, code: str | bytes, timeout: float | None = None) -> bytes:
        """Run ``code``; its output, or :class:`DeviceExecError` if it raised."""
        res = self.exec_raw(code, timeout)
        if res.err:
            text = res.err.decode(errors="replace").replace("\r\n", "\n")
            last = text.strip().splitlines()[-1] if text.strip() else "error"
            raise DeviceExecError(f"the pen raised {last}", traceback=text)
        return res.out

    def eval(self, expr: str, timeout: float | None = None) -> str:
        """``print(expr)`` on the pen; the printed text, stripped."""
        return self.exec(f"print({expr})", timeout).decode(errors="replace").strip()


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
