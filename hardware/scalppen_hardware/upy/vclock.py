"""Virtual time for firmware running under CPython: MicroPython's ``time`` API.

The module-level functions have exactly the names and semantics of MicroPython's
``time`` module (``ticks_ms``, ``ticks_us``, ``ticks_cpu``, ``ticks_diff``,
``ticks_add``, ``sleep``, ``sleep_ms``, ``sleep_us``, ``time``, ``time_ns``,
``gmtime``, ``localtime``, ``mktime``), so the virtual pen can hand this module to
the firmware wherever it expects ``time``. They read a :class:`VirtualClock`
installed with :func:`_attach`; a new clock (or the same one after a reboot) can
be attached at any time.

Ticks are ``ticks_ms``/``ticks_us`` values modulo ``TICKS_PERIOD`` (2**30, as on
the ESP32 port); ``ticks_diff`` returns a signed difference in
``[-TICKS_PERIOD/2, TICKS_PERIOD/2)``, exactly like MicroPython.

``time``, ``time_ns``, ``gmtime``, ``localtime`` and ``mktime`` count from
MicroPython's epoch on the ESP32, 2000-01-01T00:00:00Z (``MICROPY_EPOCH_IS_2000``,
the default of ``py/mpconfig.h`` that ``ports/esp32`` keeps; MicroPython's
``docs/library/time.rst``): ``time()`` is Unix time minus :data:`MP_EPOCH_UNIX`
and ``gmtime(0)`` is 2000-01-01. :class:`VirtualClock` itself keeps Unix seconds
(``epoch()``, ``calendar()``); only this MicroPython-facing API speaks the 2000
epoch, and ``machine.RTC().datetime()`` is a calendar date either way.
"""

from __future__ import annotations

import calendar
import time as _host_time
from collections.abc import Callable

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALFPERIOD = TICKS_PERIOD >> 1

# MicroPython's epoch on the ESP32, 2000-01-01T00:00:00Z, in Unix seconds: what
# the module-level time()/gmtime()/mktime() count from.
MP_EPOCH_UNIX = 946684800
# What ESP32 MicroPython's RTC reads after a cold boot (Unix s): its epoch, 2000-01-01.
RTC_COLD_EPOCH = MP_EPOCH_UNIX


class VirtualClock:
    """Virtual time: a monotonic world clock, the pen's boot time, and its RTC.

    ``world_us`` only ever grows. ``ticks_*`` count from the last boot (plus
    ``ticks_origin_ms``, which tests use to start near the wrap-around).
    ``epoch()`` is the pen's RTC in Unix seconds.

    Args:
        epoch_s: RTC reading (Unix seconds) at world time 0.
        ticks_origin_ms: value ``ticks_ms()`` reads at boot.
    """

    def __init__(self, epoch_s: float = RTC_COLD_EPOCH, ticks_origin_ms: int = 0) -> None:
        self.world_us = 0
        self.boot_us = 0
        self.ticks_origin_ms = ticks_origin_ms
        self._epoch_offset_us = int(epoch_s * 1_000_000)
        self._calendar_offset_us = self._epoch_offset_us
        # Who advances physics when the firmware sleeps (the installed hardware).
        self.sleeper: Callable[[int], None] | None = None

    # --- time flow -------------------------------------------------------------
    def advance_us(self, us: int) -> None:
        """Move virtual time forward (no physics; the hardware calls this)."""
        if us < 0:
            raise ValueError("virtual time cannot go backwards")
        self.world_us += us

    def advance_ms(self, ms: int) -> None:
        self.advance_us(int(ms * 1000))

    def sleep_ms(self, ms: int) -> None:
        """Firmware sleep: lets the installed hardware step its physics."""
        if ms <= 0:
            return
        if self.sleeper is not None:
            self.sleeper(int(ms))
        else:
            self.advance_ms(ms)

    def boot(self, ticks_origin_ms: int | None = None) -> None:
        """A reset: ``ticks_*`` restart; the RTC keeps running."""
        self.boot_us = self.world_us
        if ticks_origin_ms is not None:
            self.ticks_origin_ms = ticks_origin_ms

    # --- readings ----------------------------------------------------------------
    def uptime_us(self) -> int:
        return self.world_us - self.boot_us

    def ticks_ms(self) -> int:
        return (self.uptime_us() // 1000 + self.ticks_origin_ms) & TICKS_MAX

    def ticks_us(self) -> int:
        return (self.uptime_us() + self.ticks_origin_ms * 1000) & TICKS_MAX

    def epoch_us(self) -> int:
        return self.world_us + self._epoch_offset_us

    def epoch(self) -> int:
        """The RTC in whole Unix seconds."""
        return self.epoch_us() // 1_000_000

    def set_epoch(self, epoch_s: float) -> None:
        """Set the RTC (what ``machine.RTC().datetime(...)`` does)."""
        self._epoch_offset_us = int(epoch_s * 1_000_000) - self.world_us

    def calendar(self) -> int:
        """The true date in the pen's world, in Unix seconds: what a factory stamps
        on a cartridge and a laptop's clock shows. The RTC may be wrong (lost at a
        power cut, set by a host); this is not."""
        return (self.world_us + self._calendar_offset_us) // 1_000_000

    def set_calendar(self, epoch_s: float) -> None:
        """Set the world's true date (the RTC is set with :meth:`set_epoch`)."""
        self._calendar_offset_us = int(epoch_s * 1_000_000) - self.world_us

    def rtc_lost(self) -> None:
        """Power was lost: the RTC restarts from its cold-boot value."""
        self.set_epoch(RTC_COLD_EPOCH)


_clock: VirtualClock | None = None


def _attach(clock: VirtualClock | None) -> None:
    """Install the clock the module-level functions read (``None`` detaches)."""
    global _clock
    _clock = clock


def _c() -> VirtualClock:
    if _clock is None:
        raise RuntimeError("no VirtualClock attached (vclock._attach)")
    return _clock


# --- MicroPython's time API --------------------------------------------------------
def ticks_ms() -> int:
    return _c().ticks_ms()


def ticks_us() -> int:
    return _c().ticks_us()


def ticks_cpu() -> int:
    return _c().ticks_us()


def ticks_add(ticks: int, delta: int) -> int:
    if not -TICKS_HALFPERIOD <= delta < TICKS_HALFPERIOD:
        raise OverflowError("ticks interval overflow")
    return (ticks + delta) & TICKS_MAX


def ticks_diff(ticks1: int, ticks2: int) -> int:
    return ((ticks1 - ticks2 + TICKS_HALFPERIOD) & TICKS_MAX) - TICKS_HALFPERIOD


def sleep_ms(ms: int) -> None:
    _c().sleep_ms(ms)


def sleep_us(us: int) -> None:
    # Sub-millisecond sleeps are rounded up to whole ms of physics.
    if us > 0:
        _c().sleep_ms((us + 999) // 1000)


def sleep(seconds: float) -> None:
    _c().sleep_ms(round(seconds * 1000))


def time() -> int:
    """Whole seconds since 2000-01-01 (the ESP32's epoch), an int as on the ESP32."""
    return _c().epoch() - MP_EPOCH_UNIX


def time_ns() -> int:
    """Nanoseconds since 2000-01-01."""
    return (_c().epoch_us() - MP_EPOCH_UNIX * 1_000_000) * 1000


def gmtime(secs: int | None = None) -> tuple[int, ...]:
    """(year, month, mday, hour, minute, second, weekday, yearday) of ``secs``
    seconds since 2000-01-01 (now when None), as MicroPython on the ESP32."""
    t = _host_time.gmtime((time() if secs is None else int(secs)) + MP_EPOCH_UNIX)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday, t.tm_yday)


localtime = gmtime  # the ESP32 port has no time zone: local time is UTC


def mktime(tup: tuple[int, ...]) -> int:
    """The inverse of :func:`gmtime`: seconds since 2000-01-01."""
    return calendar.timegm((*tuple(tup[:6]), 0, 0, 0)) - MP_EPOCH_UNIX
