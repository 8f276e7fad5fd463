# main.py: start the pen's application from the slot boot.py selected.
#
# While the slot is on trial (/active differs from /good) one start is counted in
# /bootcount before the app is imported; the app clears the trial by calling
# pen.bootok.mark_good() once it has started. A trial build that raises here is
# restarted (machine.reset) so boot.py can roll back after its third failure.
#
# A production build (board.json "profile": "production", scalppen build
# --production) never falls back to the REPL: whatever ends the app (an error,
# Ctrl-C on the USB port, a return) resets the pen, which boots the app again.
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


def _production():
    try:
        import json
        with open("/board.json") as f:
            return json.load(f).get("profile") == "production"
    except Exception:
        return False  # no board: the app cannot start either; the REPL is for repair


def _restart(window=True):
    try:
        import machine
        import time
    except ImportError:
        return
    if window:
        time.sleep(1)  # a window for Ctrl-C before the next attempt
    machine.reset()


def _main():
    production = _production()
    trial = False
    try:
        trial = _count_start()
    except Exception as e:
        sys.print_exception(e)
    try:
        from pen import app
        app.run()
    except BaseException as e:  # KeyboardInterrupt too, in production
        if production:
            sys.print_exception(e)
            _restart(False)
        if not isinstance(e, Exception):
            raise  # a development pen: Ctrl-C reaches the REPL
        sys.print_exception(e)
        if trial:
            _restart()
    if production:
        _restart(False)  # the app returned: a production pen never shows the REPL


_main()
