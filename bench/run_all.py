"""Run every benchmark once and print its figures (``make bench``).

Each benchmark is its own script under bench/<area>/ and prints its own figures;
this runs them in turn with the project's interpreter and reports failures.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = [
    "bench/protocol/bench_protocol.py",
    "bench/firmware/bench_firmware.py",
    "bench/flash/bench_flash.py",
    "bench/host/bench_store.py",
    "bench/host/bench_sync.py",
]


def main() -> int:
    failed = []
    for rel in BENCHES:
        path = ROOT / rel
        if not path.exists():
            continue
        print(f"\n=== {rel} ===", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(path)], cwd=ROOT)
        print(f"--- {rel}: exit {proc.returncode} in {time.monotonic() - t0:.1f} s", flush=True)
        if proc.returncode:
            failed.append(rel)
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
