# Tells boot.py that the running build started well (see boot.py and main.py).
#
# The app calls mark_good() once it is up (first control ticks done, BLE
# advertising); until then the build is on trial and boot.py rolls back to the
# previous slot after three failed starts. Cheap to call more than once.
#
# /update tells how the last update over SMP went: "<state> <n> <tried> <before>",
# state "trial" (written as the trial is set up), "kept" (the build started well:
# mark_good) or "back" (boot.py rolled it back), n counts the trials, tried and
# before are versions. The app logs each ended trial once (pen/app.py).
import os

_UPDATE = "/update"
_STATES = ("", "trial", "kept", "back")  # index = UpdateOutcome (pen/wire.py U_*)


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


def set_active(slot, tried="", before=""):
    # Boot `slot` from the next reset on trial (/good stays: boot.py rolls back
    # to it when the slot does not mark itself good within its starts). /update
    # first: a cut between the two leaves a "trial" that never began, which
    # update() reads as no trial (the pen is not on trial).
    if tried:
        n = update()[1]
        _write(_UPDATE, "trial %d %s %s" % (n + 1, tried, before))
    _write("/active", slot)
    _forget_starts()


def update():
    # -> (outcome 0..3 as pen/wire.py U_*, n, version tried, version before)
    parts = _read(_UPDATE).split()
    if len(parts) != 4 or parts[0] not in _STATES[1:]:
        return 0, 0, "", ""
    try:
        n = int(parts[1])
    except ValueError:
        return 0, 0, "", ""
    outcome = _STATES.index(parts[0])
    if outcome == 1 and not on_trial():
        outcome = 0  # cut before the switch, or the slot was flashed over USB since
    return outcome, n, parts[2][:32], parts[3][:32]


def version_code(text):
    # "1.2.3" -> 1 << 16 | 2 << 8 | 3, as the UPDATE record carries it (0 if not)
    try:
        a, b, c = (min(int(x), 255) for x in text.split("-")[0].split("."))
        return a << 16 | b << 8 | c
    except ValueError:
        return 0


def mark_good():
    active = active_slot()
    if not active:
        return False
    if good_slot() != active:
        parts = _read(_UPDATE).split()
        if len(parts) == 4 and parts[0] == "trial":
            _write(_UPDATE, "kept " + " ".join(parts[1:]))  # the trial ends well
        _write("/good", active)
    _forget_starts()
    return True
