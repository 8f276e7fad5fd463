# boot.py: choose the application slot and roll back a build that does not start.
#
# The application lives in one of two slots, /a/ and /b/. Files at the root:
#   /active     the slot to run ("a" or "b")
#   /good       the last slot whose app reported a good start (pen.bootok.mark_good)
#   /bootcount  starts of the active slot while it is on trial (active != good);
#               main.py adds one before it imports the app
# When the slot on trial has been started MAX_TRIES times without marking itself
# good, /active is switched back to /good. Files are replaced by writing a
# temporary file and renaming it over the old one (atomic on littlefs).
# This file stays source (not .mpy) and must not depend on anything in a slot.
import sys
import os

_MAX_TRIES = 3
_SLOTS = ("a", "b")


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def _has_app(slot):
    try:
        os.stat("/" + slot + "/manifest.json")
        return True
    except OSError:
        return False


def _select():
    active = _read("/active")
    good = _read("/good")
    if good not in _SLOTS:
        good = ""
    if active not in _SLOTS or not _has_app(active):
        active = good or "a"
    if good and active != good:
        try:
            tries = int(_read("/bootcount") or "0")
        except ValueError:
            tries = _MAX_TRIES
        if tries >= _MAX_TRIES:
            print("boot: slot", active, "failed", tries, "starts; rolling back to slot", good)
            # the update's outcome first (pen/bootok.py): a cut before the switch
            # rolls back again at the next start and writes the same
            upd = _read("/update").split()
            if len(upd) == 4 and upd[0] in ("trial", "kept"):
                _write("/update", "back " + " ".join(upd[1:]))
            _write("/active", good)
            try:
                os.remove("/bootcount")
            except OSError:
                pass
            active = good
    path = "/" + active
    while path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
    return active


try:
    _select()
except Exception as _e:  # a broken boot.py must still leave the REPL usable
    sys.print_exception(_e)

del _read, _write, _has_app, _select
