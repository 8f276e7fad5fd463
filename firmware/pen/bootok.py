# Tells boot.py that the running build started well (see boot.py and main.py).
#
# The app calls mark_good() once it is up (first control ticks done, BLE
# advertising); until then the build is on trial and boot.py rolls back to the
# previous slot after three failed starts. Cheap to call more than once.
import os


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def active_slot():
    # "a" or "b" ("" on a board that has never been deployed to)
    return _read("/active")


def good_slot():
    # the last slot that started well ("" before the first deployment's start)
    return _read("/good")


def on_trial():
    good = good_slot()
    return bool(good) and active_slot() != good


def _write(path, text):
    # Replace a file whole: a temporary file renamed over it (atomic on littlefs).
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def _forget_starts():
    try:
        os.remove("/bootcount")
    except OSError:
        pass


def set_active(slot):
    # Boot `slot` from the next reset on trial (/good stays: boot.py rolls back
    # to it when the slot does not mark itself good within its starts).
    _write("/active", slot)
    _forget_starts()


def mark_good():
    active = active_slot()
    if not active:
        return False
    if good_slot() != active:
        _write("/good", active)
    _forget_starts()
    return True
