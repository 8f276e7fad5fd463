# Tiny in-VM test harness: runs every test_* function of the given modules and
# prints "PASS mod.name" or "FAIL mod.name: error" (with the traceback).
import sys


def run(modnames):
    for modname in modnames:
        mod = __import__(modname)
        names = [n for n in dir(mod) if n.startswith("test_")]
        names.sort()
        for n in names:
            try:
                getattr(mod, n)()
                print("PASS %s.%s" % (modname, n))
            except Exception as e:
                print("FAIL %s.%s: %r" % (modname, n, e))
                sys.print_exception(e)
    print("DONE")
