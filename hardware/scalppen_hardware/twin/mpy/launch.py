# What the ESP32 port does before the REPL (ports/esp32/main.c and its frozen
# _boot.py), for the twin (MicroPython code, not firmware): connect the bridge,
# put the stand-ins of the ESP32's C modules where `import` finds them, mount the
# pen's flash at "/", run boot.py, then main.py unless the raw REPL asked for a
# soft reset; then `micropython -i` offers the REPL, as the pen does when main.py
# ends or is interrupted.
import os
import sys

_twin_dir = sys.path[0]
sys.path.insert(0, os.getenv("SCALPPEN_TWIN_LIB") or _twin_dir)  # the compiled stand-ins
import _twin  # noqa: E402

_twin.connect(os.getenv("SCALPPEN_TWIN_SOCK"))
for _name in ("machine", "bluetooth", "onewire", "esp32"):
    sys.modules[_name] = __import__(_name)
import vtime  # noqa: E402

sys.modules["time"] = vtime
sys.modules["utime"] = vtime
import gc  # noqa: E402

gc.collect()
# What the stand-ins themselves hold (on the pen these are C modules in flash).
_twin.standin_heap = gc.mem_alloc()


class _Os:
    # The `os` module the firmware imports. This build of VfsPosix gets rename()
    # with two absolute paths wrong (both share one buffer: extmod/vfs_posix.c
    # before upstream's fix), so absolute paths are made relative to the
    # directory the process stands in; everything else is the real `os`.
    pass


_os = _Os()
for _k in dir(os):
    if not _k.startswith("__"):
        setattr(_os, _k, getattr(os, _k))


def _rel(path, getcwd=os.getcwd):
    if not path.startswith("/"):
        return path
    depth = len([p for p in getcwd().split("/") if p])
    return "../" * depth + (path[1:] or ".")


_BLOCK = 4096
_FLASH = int(os.getenv("SCALPPEN_TWIN_FLASH_SIZE") or 2097152)
# Blocks in use on the pen's flash, as _statvfs counts them: counted when a file is
# opened for writing (-1: not known; rename, remove, mkdir and rmdir forget it,
# statvfs counts again), then kept by every write (littlefs's ENOSPC).
_lfs_used = [-1]


def _lfs_blocks(size):
    return max(1, (size + _BLOCK - 1) // _BLOCK)


def _lfs_take(n):
    # n more blocks, or OSError(ENOSPC) as littlefs raises when none is free
    if _lfs_used[0] < 0:
        _lfs_used[0] = _used("/")
    if n > 0 and _lfs_used[0] + n > _FLASH // _BLOCK:
        raise OSError(28)
    _lfs_used[0] += n


def _rename(old, new, rename=os.rename):
    _lfs_used[0] = -1  # a file renamed over is gone
    return rename(_rel(old), _rel(new))


def _lfs_forget(call, take=0):
    def forget(path):
        if take:
            _lfs_take(take)  # a new directory takes a block
        _lfs_used[0] = -1
        return call(path)
    return forget


def _ilistdir(path=".", ilistdir=os.ilistdir, stat=os.stat):
    # littlefs gives (name, type, inode, size); VfsPosix only the first three.
    prefix = path if path.endswith("/") else path + "/"
    for e in ilistdir(path):
        if len(e) >= 4:
            yield e
        elif e[1] & 0x4000:
            yield (e[0], e[1], e[2], 0)
        else:
            yield (e[0], e[1], e[2], stat(prefix + e[0])[6])


def _used(path, ilistdir=os.ilistdir, stat=os.stat):
    n = 1
    for e in ilistdir(path):
        full = path.rstrip("/") + "/" + e[0]
        if e[1] & 0x4000:
            n += _used(full)
        else:
            n += max(1, (stat(full)[6] + _BLOCK - 1) // _BLOCK)
    return n


def _statvfs(path="/"):
    # The pen's littlefs partition, not this computer's disk: _FLASH bytes in
    # 4 KiB blocks, each file taking whole blocks (at least one), each directory one.
    total = _FLASH // _BLOCK
    _lfs_used[0] = _used("/")
    free = total - _lfs_used[0]
    return (_BLOCK, _BLOCK, total, max(0, free), max(0, free), 0, 0, 0, 0, 255)


_os.rename = _rename
_os.remove = _os.unlink = _lfs_forget(os.remove)
_os.rmdir = _lfs_forget(os.rmdir)
_os.mkdir = _lfs_forget(os.mkdir, 1)
_os.ilistdir = _ilistdir
_os.statvfs = _statvfs
_os.__name__ = "os"
sys.modules["os"] = _os
sys.modules["uos"] = _os
os.mount(os.VfsPosix(os.getenv("SCALPPEN_TWIN_FLASH")), "/")
os.chdir("/")
sys.path.clear()
sys.path.extend(("", ".frozen", "/lib"))  # the ESP32 port's sys.path
del _twin_dir, _name, _k, _Os
import builtins  # noqa: E402
import io  # noqa: E402


class _LfsFile(io.IOBase):
    # A file open for writing on the pen's flash (an io.IOBase, so json.dump and
    # print(file=) take it as a stream): counts the blocks it grows by and raises
    # OSError(ENOSPC) when littlefs would have none left. Writes to paths the fault
    # plan watches (_twin.flash) ask it first: corrupted, cut short with the USB
    # link pulled (scalppen_hardware/twin/flashfaults.py). Without a plan a write
    # costs a tell() and a little arithmetic.
    def __init__(self, f, path, size):
        self._f = f
        self._p = path
        self._size = size

    def write(self, b):
        n = len(b)
        cut = 0
        if _twin.flash is not None and n:
            path = self._p
            if path[0] != "/":
                path = os.getcwd().rstrip("/") + "/" + path
            for s in _twin.flash:
                if s in path:
                    ok, flip, cut = _twin.flash_write(path, n)
                    if flip >= 0 or ok < n:
                        b = bytearray(b.encode() if isinstance(b, str) else b)[:ok]
                        if flip >= 0:
                            b[flip] ^= 0xFF
                        n = ok
                    break
        end = self._f.tell() + n
        if end > self._size:
            _lfs_take(_lfs_blocks(end) - _lfs_blocks(self._size))
            self._size = end
        r = self._f.write(b)
        if cut:  # the cable is out: the rest of what the host sent never arrives
            raise OSError(5)
        return r

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def _lfs_open(path, mode="r", *a, open=builtins.open, stat=os.stat, **kw):
    if "w" not in mode and "a" not in mode and "+" not in mode and "x" not in mode:
        return open(path, mode, *a, **kw)
    try:
        size = stat(path)[6]
    except OSError:
        size = -1
    _lfs_take(1 if size < 0 else 0)  # a new file takes a block
    try:
        f = open(path, mode, *a, **kw)
    except OSError:
        _lfs_used[0] = -1
        raise
    if "w" in mode and size > 0:  # truncated: its blocks but one are free again
        _lfs_used[0] -= _lfs_blocks(size) - 1
        size = 0
    elif "a" in mode:
        f.seek(0, 2)  # so that tell() is where the writes go
    return _LfsFile(f, path, max(0, size))


builtins.open = _lfs_open


def _run(path):
    try:
        src = open(path).read()
    except OSError:
        return
    exec(compile(src, path, "exec"), globals())


_mode = os.getenv("SCALPPEN_TWIN_MODE") or "friendly"
try:
    _run("boot.py")
    if _mode == "friendly":
        _run("main.py")
finally:
    # What the program last wrote to the pins takes effect, as on the pen.
    _twin.flush()
del _run, _mode
