# main.py: start the pen's application from the slot boot.py selected.
#
# While the slot is on trial (/active differs from /good) one start is counted in
# /bootcount before the app is imported; the app clears the trial by calling
# pen.bootok.mark_good() once it has started. A trial build that raises here is
# restarted (machine.reset) so boot.py can roll back after its third failure.
import sys


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _count_start():
    active = _read("/active")
    good = _read("/good")
    if not good or active == good:
        return False
    try:
        tries = int(_read("/bootcount") or "0")
    except ValueError:
        tries = 0
    import os
    with open("/bootcount.tmp", "w") as f:
        f.write(str(tries + 1))
    os.rename("/bootcount.tmp", "/bootcount")
    return True


def _restart():
    try:
        import machine
        import time
    except ImportError:
        return
    time.sleep(1)  # a window for Ctrl-C before the next attempt
    machine.reset()


def _main():
    trial = False
    try:
        trial = _count_start()
    except Exception as e:
        sys.print_exception(e)
    try:
        from pen import app
        app.run()
    except Exception as e:
        sys.print_exception(e)
        if trial:
            _restart()


_main()
