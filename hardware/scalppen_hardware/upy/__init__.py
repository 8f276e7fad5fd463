"""Stand-ins for MicroPython's modules, for running the firmware under CPython.

The directory of this package goes on ``sys.path`` so that the firmware's
``import machine`` / ``import micropython`` / ``import onewire`` / ``import esp32`` find these
modules under their MicroPython names; ``vclock`` is MicroPython's ``time`` API.
:func:`install` puts the directory on the path and attaches a hardware object
and its clock to every loaded copy of the modules (a test may also have them
imported under ``scalppen_hardware.upy.*``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

UPY_DIR = str(Path(__file__).resolve().parent)
MODULES = ("machine", "micropython", "onewire", "vclock", "esp32")


def add_to_path() -> None:
    if UPY_DIR not in sys.path:
        sys.path.insert(0, UPY_DIR)


def module(name: str) -> ModuleType:
    """The top-level copy the firmware imports (``machine``, ``vclock``, ...)."""
    add_to_path()
    return importlib.import_module(name)


def install(hw: Any) -> None:
    """Attach ``hw`` (and ``hw.clock``) to the ``machine``, ``micropython``, ``vclock`` modules."""
    add_to_path()
    for name in MODULES:
        importlib.import_module(name)
    for name in MODULES:
        for key in (name, f"{__name__}.{name}"):
            mod = sys.modules.get(key)
            if mod is None or not hasattr(mod, "_attach"):
                continue
            mod._attach(hw.clock if name == "vclock" else hw)


def uninstall() -> None:
    for name in MODULES:
        for key in (name, f"{__name__}.{name}"):
            mod = sys.modules.get(key)
            if mod is not None and hasattr(mod, "_attach"):
                mod._attach(None)
