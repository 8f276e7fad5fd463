"""File operations on the pen's flash, as small programs run through the raw REPL.

A few helper functions (``_sp_*``) are defined once per session in the pen's
REPL globals (:meth:`DeviceFS.install`); every other call is then one short
exec. Contents travel as base64 (``binascii.a2b_base64`` on the pen), hashes as
hex SHA-256 computed by reading the file back from flash.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scalppen.flash.errors import DeviceExecError, FlashFullError
from scalppen.flash.rawrepl import RawRepl

#: How a full littlefs shows in a traceback: "[Errno 28] ENOSPC" where the port names
#: errno 28, "OSError: 28" where it does not (py/moderrno.c has no ENOSPC entry).
_FLASH_FULL = re.compile(r"ENOSPC|Errno 28\b|OSError: 28\b")

#: Raw bytes per base64 line; a file write sends several lines per exec.
LINE_BYTES = 1024

_HELPERS = """\
import os, hashlib, binascii, json
def _sp_hash(p):
    h = hashlib.sha256()
    n = 0
    b = bytearray(1024)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            k = f.readinto(b)
            if not k:
                break
            h.update(m[:k])
            n += k
    return [n, binascii.hexlify(h.digest()).decode()]
def _sp_hashes(ps):
    r = {}
    for p in ps:
        try:
            r[p] = _sp_hash(p)
        except OSError:
            r[p] = None
    return r
def _sp_tree(d, out, pre):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return out
    for e in it:
        full = (d.rstrip('/') + '/' + e[0])
        if e[1] & 0x4000:
            _sp_tree(full, out, pre + e[0] + '/')
        else:
            out[pre + e[0]] = _sp_hash(full)
    return out
def _sp_mkdirs(p):
    q = ''
    for part in p.strip('/').split('/'):
        q += '/' + part
        try:
            os.mkdir(q)
        except OSError:
            pass
def _sp_rmtree(p):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for e in list(os.ilistdir(p)):
            _sp_rmtree(p.rstrip('/') + '/' + e[0])
        os.rmdir(p)
    else:
        os.remove(p)
def _sp_read(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError:
        return None
def _sp_put(p, t):
    with open(p + '.tmp', 'w') as f:
        f.write(t)
    os.rename(p + '.tmp', p)
def _sp_copy(s, d):
    b = bytearray(1024)
    m = memoryview(b)
    with open(s, 'rb') as fi:
        with open(d, 'wb') as fo:
            while True:
                k = fi.readinto(b)
                if not k:
                    break
                fo.write(m[:k])
    return _sp_hash(d)
def _sp_stat(p):
    try:
        return list(os.stat(p))
    except OSError:
        return None
def _sp_statvfs():
    s = os.statvfs('/')
    return [s[0], s[2], s[3]]
"""


@dataclass(frozen=True)
class FsStat:
    block_size: int
    total_bytes: int
    free_bytes: int


ProgressFn = Callable[[int], None]


class DeviceFS:
    """Remote file operations over an entered :class:`RawRepl`.

    Paths are absolute paths on the pen (``/a/pen/core.mpy``).
    """

    def __init__(self, repl: RawRepl) -> None:
        self.repl = repl
        self._installed = False

    # ---- plumbing -------------------------------------------------------------------
    def install(self) -> None:
        """Define the helper functions on the pen (again after every soft reset)."""
        self._run(_HELPERS)
        self._installed = True

    def _run(self, code: str, timeout: float | None = None) -> bytes:
        try:
            return self.repl.exec(code, timeout)
        except DeviceExecError as exc:
            if _FLASH_FULL.search(exc.traceback):
                raise FlashFullError("the pen's flash is full") from None
            raise

    def _call(self, expr: str, timeout: float | None = None) -> Any:
        if not self._installed:
            self.install()
        out = self._run(f"print(json.dumps({expr}))", timeout)
        text = out.decode(errors="replace").strip()
        try:
            return json.loads(text.splitlines()[-1]) if text else None
        except ValueError as exc:
            raise DeviceExecError(f"unexpected answer from the pen: {text[:80]!r}") from exc

    # ---- queries --------------------------------------------------------------------
    def sha256(self, path: str) -> str | None:
        """Hex SHA-256 of a file on the pen, None if it does not exist."""
        r = self._call(f"_sp_hashes([{path!r}])[{path!r}]")
        return None if r is None else str(r[1])

    def hashes(self, paths: list[str]) -> dict[str, tuple[int, str] | None]:
        """(size, sha256) of several files at once; None for missing ones."""
        r = self._call(f"_sp_hashes({paths!r})")
        return {p: (None if v is None else (int(v[0]), str(v[1]))) for p, v in r.items()}

    def tree(self, directory: str) -> dict[str, tuple[int, str]]:
        """Every file below ``directory`` (relative path -> (size, sha256)); {} if missing."""
        r = self._call(f"_sp_tree({directory!r}, {{}}, '')", timeout=60)
        return {p: (int(v[0]), str(v[1])) for p, v in r.items()}

    def read_text(self, path: str) -> str | None:
        r = self._call(f"_sp_read({path!r})")
        return None if r is None else str(r)

    def stat(self, path: str) -> tuple[int, ...] | None:
        """``os.stat`` tuple, None if the path does not exist."""
        r = self._call(f"_sp_stat({path!r})")
        return None if r is None else tuple(int(x) for x in r)

    def listdir(self, path: str) -> list[str]:
        return [str(x) for x in self._call(f"sorted(os.listdir({path!r}))")]

    def statvfs(self) -> FsStat:
        bsize, blocks, bfree = self._call("_sp_statvfs()")
        return FsStat(int(bsize), int(bsize) * int(blocks), int(bsize) * int(bfree))

    def mpy_version(self) -> tuple[int, int] | None:
        """(version, sub-version) of ``.mpy`` the pen loads; None if it cannot load any."""
        r = self._call("getattr(__import__('sys').implementation, '_mpy', None)")
        if r is None:
            return None
        return int(r) & 0xFF, (int(r) >> 8) & 3

    # ---- changes --------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        """Create ``path`` and its parents (no error if they exist)."""
        self._call(f"_sp_mkdirs({path!r})")

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory tree (no error if missing)."""
        self._call(f"_sp_rmtree({path!r})")

    def rename(self, src: str, dst: str) -> None:
        self._call(f"os.rename({src!r}, {dst!r})")

    def put_text(self, path: str, text: str) -> None:
        """Replace a small text file atomically (write ``path.tmp``, rename over ``path``)."""
        self._call(f"_sp_put({path!r}, {text!r})")

    def copy(self, src: str, dst: str) -> str:
        """Copy a file on the pen; returns the SHA-256 of the copy read back from flash."""
        return str(self._call(f"_sp_copy({src!r}, {dst!r})", timeout=30)[1])

    def write_file(self, path: str, data: bytes, *, chunk: int = 8192,
                   progress: ProgressFn | None = None) -> str:
        """Write ``data`` to ``path`` and return the SHA-256 read back from flash.

        Sends ``chunk`` bytes per exec (as base64 lines of :data:`LINE_BYTES`); the
        file is opened by the first exec and closed and hashed by the last.
        """
        if not self._installed:
            self.install()
        parts = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
        for n, part in enumerate(parts):
            lines = []
            if n == 0:
                lines.append(f"_sp_f=open({path!r},'wb')\n_sp_w=_sp_f.write\n"
                             "_sp_d=binascii.a2b_base64")
            for i in range(0, len(part), LINE_BYTES):
                b64 = base64.b64encode(part[i:i + LINE_BYTES]).decode()
                lines.append(f"_sp_w(_sp_d('{b64}'))")
            if n == len(parts) - 1:
                lines.append(f"_sp_f.close()\nprint(json.dumps(_sp_hash({path!r})))")
            try:
                out = self._run("\n".join(lines), timeout=30)
            except (DeviceExecError, FlashFullError):
                self._close_quietly()
                raise
            if progress is not None:
                progress(len(part))
        text = out.decode(errors="replace").strip()
        try:
            return str(json.loads(text.splitlines()[-1])[1])
        except (ValueError, IndexError) as exc:
            raise DeviceExecError(f"unexpected answer from the pen: {text[:80]!r}") from exc

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):  # best effort after a reported failure
            self.repl.exec("try:\n _sp_f.close()\nexcept Exception:\n pass\n")
