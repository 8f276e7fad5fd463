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
    good = _read("/good")
    return bool(good) and _read("/active") != good


def set_active(slot):
    # Boot `slot` from the next reset on trial (/good stays: boot.py rolls back
    # to it when the slot does not mark itself good within its starts).
    with open("/active.tmp", "w") as f:
        f.write(slot)
    os.rename("/active.tmp", "/active")
    try:
        os.remove("/bootcount")
    except OSError:
        pass


def mark_good():
    active = _read("/active")
    if not active:
        return False
    if _read("/good") != active:
        with open("/good.tmp", "w") as f:
            f.write(active)
        os.rename("/good.tmp", "/good")
    try:
        os.remove("/bootcount")
    except OSError:
        pass
    return True
