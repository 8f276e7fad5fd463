"""Flashing benchmark on the virtual board (a MicroPython VM behind a pty).

Run: ``.venv/bin/python bench/flash/bench_flash.py`` (or ``make bench``).
Compares, on fresh boards, a full ``scalppen`` deploy (every file hashed on the
pen after writing) with ``mpremote fs cp -r`` of the same files (no
verification), then times a re-deploy of the unchanged bundle.
Targets: full deploy no slower than mpremote; unchanged re-deploy <= 1 s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "host"), str(ROOT / "protocol"), str(ROOT / "hardware")]

from scalppen.flash.build import build_bundle, find_board  # noqa: E402
from scalppen.flash.deploy import deploy_bundle  # noqa: E402
from scalppen_hardware.vboard import VirtualBoard  # noqa: E402


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

        board = VirtualBoard(tmp / "flash-ours", run_main=False)
        port = board.start()
        try:
            t0 = time.perf_counter()
            first = deploy_bundle(bundle, port, reset=False)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = deploy_bundle(bundle, port, reset=False)
            t_again = time.perf_counter() - t0
        finally:
            board.stop()
        assert not first.up_to_date and again.up_to_date

        board = VirtualBoard(tmp / "flash-mpremote", run_main=False)
        port = board.start()
        try:
            srcs = [str(p) for p in sorted(stage.iterdir())]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mpremote", "connect", port,
                            "fs", "cp", "-r", *srcs, ":"], check=True, capture_output=True)
            t_mp = time.perf_counter() - t0
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "exec", "pass"],
                           check=True, capture_output=True)
            t_mp_idle = time.perf_counter() - t0
        finally:
            board.stop()

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
