# Tiny in-VM test harness: runs every test_* function of the given modules and
# prints one block per test (tests/upy/test_core_in_micropython.py reads them):
#   @@upy PASS mod.name heap=<bytes in use after it> alloc=<bytes it allocated>
#   @@upy FAIL mod.name            then the traceback, then "@@upy END"
# and "@@upy DONE" once every test ran and every firmware module (pen, pen.*)
# was loaded from a .mpy file, as on the pen. Anything else raises: the process
# ends with a traceback and no DONE line, and every test of the run fails.
import gc
import sys

import micropython


def _asserts_compiled_in():
    try:
        assert False
    except AssertionError:
        return True
    return False


def _alloc():
    # bytes allocated so far (MICROPY_MEM_STATS; the GC's frees are not counted)
    f = getattr(micropython, "mem_total", None)
    return f() if f else -1


def _check_firmware_compiled():
    n = 0
    for name in sorted(sys.modules):
        if name == "pen" or name.startswith("pen."):
            f = getattr(sys.modules[name], "__file__", "")
            if not f.endswith(".mpy"):
                raise RuntimeError("firmware module %s ran from %r, not a .mpy" % (name, f))
            n += 1
    return n


def run(modnames):
    if not _asserts_compiled_in():
        raise RuntimeError("assert statements are compiled out (optimisation level)")
    for modname in modnames:
        mod = __import__(modname)
        names = [n for n in dir(mod) if n.startswith("test_")]
        names.sort()
        for n in names:
            gc.collect()
            a0 = _alloc()
            try:
                getattr(mod, n)()
            except BaseException as e:  # a SystemExit in a case fails it too
                print("@@upy FAIL %s.%s" % (modname, n))
                sys.print_exception(e, sys.stdout)
                print("@@upy END")
                continue
            a1 = _alloc()
            gc.collect()
            print("@@upy PASS %s.%s heap=%d alloc=%d" % (modname, n, gc.mem_alloc(), a1 - a0))
    print("@@upy FIRMWARE %d modules from .mpy" % _check_firmware_compiled())
    print("@@upy DONE")
