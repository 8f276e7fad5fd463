"""The virtual ``bluetooth``/``micropython`` modules and the firmware are importable."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "hardware" / "scalppen_hardware" / "upy", ROOT / "firmware"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
