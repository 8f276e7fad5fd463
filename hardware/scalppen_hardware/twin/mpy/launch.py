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
for _name in ("machine", "bluetooth", "onewire"):
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


def _rename(old, new, rename=os.rename):
    return rename(_rel(old), _rel(new))


_BLOCK = 4096
_FLASH = int(os.getenv("SCALPPEN_TWIN_FLASH_SIZE") or 2097152)


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
    free = total - _used("/")
    return (_BLOCK, _BLOCK, total, max(0, free), max(0, free), 0, 0, 0, 0, 255)


_os.rename = _rename
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
