# MicroPython's `time` module as the ESP32 port has it, inside the twin
# (MicroPython code, not firmware; installed as `time`). Time is virtual: the
# CPython side's clock model (scalppen_hardware/upy/vclock.py) moves only when
# the firmware sleeps, and each reply carries its readings. ticks_* wrap at the
# ESP32's period (2**30, py/mphal.h MICROPY_PY_TIME_TICKS_PERIOD), not the unix
# port's 2**62; time() counts from the ESP32's epoch (2000-01-01) and is an int.
import _twin

_PERIOD = _twin.info["ticks_period"]
_MASK = _PERIOD - 1
_HALF = _PERIOD >> 1


def ticks_ms():
    return _twin.ticks_ms


def ticks_us():
    return _twin.ticks_us


def ticks_cpu():
    return _twin.ticks_us


def ticks_diff(t1, t2):
    return ((t1 - t2 + _HALF) & _MASK) - _HALF


def ticks_add(t, delta):
    if not -_HALF <= delta < _HALF:
        raise OverflowError("ticks interval overflow")
    return (t + delta) & _MASK


def sleep_ms(ms):
    if ms > 0:
        _twin.sync(int(ms))


def sleep_us(us):
    # Virtual time moves in whole milliseconds of physics.
    if us > 0:
        _twin.sync((int(us) + 999) // 1000)


def sleep(seconds):
    if seconds > 0:
        _twin.sync(int(seconds * 1000 + 0.5))


def time():
    return _twin.epoch_us // 1000000


def time_ns():
    return _twin.epoch_us * 1000


def gmtime(secs=None):
    return tuple(_twin.call(-1, "gmtime", [time() if secs is None else int(secs)]))


localtime = gmtime


def mktime(t):
    return _twin.call(-1, "mktime", [list(t)])
