"""Type-check the firmware against MicroPython's stubs (``make typecheck``).

The ESP32 port stubs (``micropython-esp32-stubs``) install bare ``.pyi`` files into
site-packages, which mypy does not search; they are linked into a temporary stub
directory instead, and MicroPython's stdlib stubs replace CPython's typeshed.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stub_dir(tmp: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    dist = metadata.distribution("micropython-esp32-stubs")
    tops = set()
    for f in dist.files or []:
        first = Path(str(f)).parts[0]
        if first.endswith(".dist-info") or not (first.endswith(".pyi") or "." not in first):
            continue
        tops.add(first)
    for name in sorted(tops):
        (tmp / name).symlink_to(site / name)
    return site


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        site = stub_dir(Path(tmp))
        files = [str(p.relative_to(ROOT / "firmware"))
                 for p in sorted((ROOT / "firmware").rglob("*.py"))]
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "tools/mypy-firmware.ini"),
               "--custom-typeshed-dir", str(site), *files]
        proc = subprocess.run(cmd, cwd=ROOT / "firmware", env={"MYPYPATH": tmp, "PATH": ""},
                              capture_output=True, text=True)
    # Errors inside the third-party stubs themselves are not ours to fix.
    ours = [line for line in proc.stdout.splitlines()
            if line.split(":", 1)[0] in files and ": note:" not in line]
    for line in ours:
        print(f"firmware/{line}")
    print(f"typecheck firmware: {len(ours)} errors in {len(files)} files "
          "(MicroPython 1.29 ESP32 stubs)")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
