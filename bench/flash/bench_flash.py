"""Flashing benchmark on the twin's USB serial (the pen's MicroPython REPL, in a
MicroPython process behind a pty).

Run: ``.venv/bin/python bench/flash/bench_flash.py`` (or ``make bench``).
Compares, on fresh blank pens, a full ``scalppen`` deploy (every file hashed on the
pen after writing) with ``mpremote fs cp -r`` of the same files (no
verification), then times a re-deploy of the unchanged bundle.
Targets: full deploy no slower than mpremote; unchanged re-deploy <= 1 s.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "host"), str(ROOT / "protocol"), str(ROOT / "hardware")]

from scalppen.flash.build import build_bundle, find_board  # noqa: E402
from scalppen.flash.deploy import deploy_bundle  # noqa: E402
from scalppen_hardware import ble_radio, upy  # noqa: E402
from scalppen_hardware.twin.pen import TwinPen  # noqa: E402


@contextmanager
def blank_pen(flash: Path) -> Iterator[str]:
    """A blank pen (the twin, only board.json on its flash) on an event loop of its
    own thread; yields its serial port, for this thread to flash through."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def up() -> tuple[TwinPen, str]:
        twin = TwinPen(flash, ble_radio.new_link(), speed=None)
        port = twin.open_serial()
        await twin.start()
        return twin, port

    twin, port = asyncio.run_coroutine_threadsafe(up(), loop).result(60)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(twin.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        ble_radio.attach(None)
        upy.uninstall()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        bundle = tmp / "bundle"
        t0 = time.perf_counter()
        manifest = build_bundle(ROOT / "firmware", bundle, find_board(ROOT / "hardware" / "boards"))
        t_build = time.perf_counter() - t0
        size = sum(f.size for f in manifest.files)
        print(f"bundle: {len(manifest.files)} files, {size / 1024:.1f} kB "
              f"(build {t_build * 1000:.0f} ms)")

        # the same files, laid out as on the pen, for mpremote
        stage = tmp / "stage"
        for f in manifest.files:
            dest = stage / (f.path if f.location == "root" else f"a/{f.path}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(bundle / f.path, dest)

        with blank_pen(tmp / "flash-ours") as port:
            t0 = time.perf_counter()
            first = deploy_bundle(bundle, port, reset=False)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = deploy_bundle(bundle, port, reset=False)
            t_again = time.perf_counter() - t0
        assert not first.up_to_date and again.up_to_date

        with blank_pen(tmp / "flash-mpremote") as port:
            srcs = [str(p) for p in sorted(stage.iterdir())]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mpremote", "connect", port,
                            "fs", "cp", "-r", *srcs, ":"], check=True, capture_output=True)
            t_mp = time.perf_counter() - t0
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "exec", "pass"],
                           check=True, capture_output=True)
            t_mp_idle = time.perf_counter() - t0
        for f in manifest.files:  # mpremote's copy is complete (it verifies nothing itself)
            rel = f.path if f.location == "root" else f"a/{f.path}"
            assert (tmp / "flash-mpremote" / rel).read_bytes() == (bundle / f.path).read_bytes()

    print(f"full deploy, verified (scalppen):  {t_ours:6.2f} s  "
          f"({size / 1024 / t_ours:.0f} kB/s)")
    print(f"fs cp -r, unverified (mpremote):   {t_mp:6.2f} s  ({size / 1024 / t_mp:.0f} kB/s)")
    print(f"  of which mpremote start-up and connect (exec pass): {t_mp_idle:.2f} s")
    print(f"unchanged re-deploy (scalppen):    {t_again:6.2f} s")
    ok1 = t_ours <= t_mp
    ok2 = t_again <= 1.0
    print(f"target full deploy <= mpremote: {'met' if ok1 else 'MISSED'}; "
          f"target re-deploy <= 1 s: {'met' if ok2 else 'MISSED'}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
