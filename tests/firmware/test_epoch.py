"""The pen's clock against MicroPython's epoch on the ESP32 (2000-01-01).

MicroPython on the ESP32 counts ``time.time()``, ``gmtime()``, ``mktime()`` from
2000-01-01 (``MICROPY_EPOCH_IS_2000``, the default of ``py/mpconfig.h`` that
``ports/esp32/mpconfigport.h`` keeps; ``docs/library/time.rst``), and
``machine.RTC().datetime()`` is a calendar date. The core and the wire speak Unix
seconds, so ``pen/app.py`` converts at the edges. The virtual clock's
MicroPython-facing API (``vclock``) speaks the 2000 epoch, as the ESP32 does.

Without the conversion the pen reads its RTC 30 years early (never set, as far as
it can tell) and, once a host sets the time, writes a calendar 30 years late
(about 2056) into the RTC.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import importlib
import sys
import time as host_time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scalppen_hardware import ble_radio, upy
from scalppen_hardware.board import load_board
from scalppen_hardware.upy import vclock as upy_vclock
from scalppen_hardware.upy.vclock import VirtualClock
from scalppen_hardware.virtual_pen import VirtualPen
from scalppen_hardware.virtual_pen_hw import VirtualPenHardware
from scalppen_protocol.auth import set_time_fields

KEY = bytes(range(1, 33))


def signed_time(unix: int) -> dict[str, Any]:
    return set_time_fields(KEY, unix)

Y2K = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds
NOW = calendar.timegm((2026, 3, 14, 9, 26, 53))  # the world's true date in these tests


@contextlib.contextmanager
def _own_pen_modules() -> Iterator[None]:
    """Whatever ``pen`` modules a test imports, the ones before come back after."""
    saved = {k: m for k, m in sys.modules.items() if k == "pen" or k.startswith("pen.")}
    try:
        yield
    finally:
        for key in [k for k in sys.modules if k == "pen" or k.startswith("pen.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def _with_pen(tmp_path: Path, epoch: float | None,
              scenario: Callable[[VirtualPen], Awaitable[None]]) -> None:
    async def main() -> None:
        vpen = VirtualPen(tmp_path / "flash", ble_radio.new_link(), speed=None, epoch=epoch)
        vpen.clock.set_calendar(NOW)
        await vpen.start()
        vpen.pause()
        try:
            await asyncio.wait_for(scenario(vpen), 30)
        finally:
            await vpen.stop()

    with _own_pen_modules():
        try:
            asyncio.run(main())
        finally:
            ble_radio.attach(None)
            upy.uninstall()


@pytest.fixture
def hw() -> Iterator[VirtualPenHardware]:
    h = VirtualPenHardware(load_board(), VirtualClock(epoch_s=NOW))
    upy.install(h)
    yield h
    upy.uninstall()


def _machine() -> Any:
    return upy.module("machine")


def _vclock() -> Any:
    return upy.module("vclock")  # the copy the firmware imports as its `time`


# ---- the virtual clock speaks the ESP32's epoch ------------------------------------------


def test_vclock_counts_from_2000_and_the_rtc_is_a_calendar(hw: VirtualPenHardware) -> None:
    clock = hw.clock  # Unix seconds inside
    for t in (upy_vclock, _vclock()):
        assert t.gmtime(0)[:6] == (2000, 1, 1, 0, 0, 0)
        assert t.mktime((2000, 1, 1, 0, 0, 0, 5, 1)) == 0
        assert t.time() == NOW - Y2K
        assert t.time_ns() // 1_000_000_000 == NOW - Y2K
        assert t.gmtime()[:6] == (2026, 3, 14, 9, 26, 53)
        assert t.localtime()[:6] == (2026, 3, 14, 9, 26, 53)
        assert t.mktime(t.gmtime()) == t.time()
    rtc = _machine().RTC()
    assert rtc.datetime()[:7] == (2026, 3, 14, 5, 9, 26, 53)  # a Saturday
    rtc.datetime((2027, 5, 6, 3, 7, 8, 9, 250_000))
    assert clock.epoch() == calendar.timegm((2027, 5, 6, 7, 8, 9))  # Unix inside
    assert _vclock().time() == calendar.timegm((2027, 5, 6, 7, 8, 9)) - Y2K
    assert rtc.datetime() == (2027, 5, 6, 3, 7, 8, 9, 250_000)
    with pytest.raises(ValueError):
        rtc.datetime((2027, 5, 6, 3, 7, 8, 9))  # the ESP32 takes exactly 8 fields
    clock.rtc_lost()
    assert _vclock().time() == 0 and rtc.datetime()[:3] == (2000, 1, 1)


# ---- the pen converts at the edges --------------------------------------------------------


def test_the_pen_reads_its_rtc_in_unix_seconds(tmp_path: Path) -> None:
    async def scenario(vpen: VirtualPen) -> None:
        assert 0 < _vclock().time() < 1_000_000_000  # what the firmware's clock says
        app = vpen.app
        # The core got the RTC in Unix seconds at boot, not "never set" (0).
        assert abs(app.pen.clock() - NOW) <= 2, app.pen.clock()
        vpen.step(3000)
        # No correction of a right RTC: it still reads the world's date.
        assert abs(vpen.unix_time() - (NOW + 3)) <= 2
        assert _machine().RTC().datetime()[:3] == (2026, 3, 14)

    _with_pen(tmp_path, NOW, scenario)


def test_the_pen_sets_its_rtc_to_the_hosts_calendar(tmp_path: Path) -> None:
    # A cold RTC (2000-01-01 on the ESP32): the host's SET_TIME is what the pen knows.
    async def scenario(vpen: VirtualPen) -> None:
        app = vpen.app
        assert _vclock().time() < 60 and app.pen.clock() == 0
        assert app.pen.set_key(KEY, True) == 0
        assert app.pen.set_time(signed_time(NOW)) == 0
        vpen.step(2000)  # the app writes the RTC once a second
        year = _machine().RTC().datetime()[0]
        assert year == 2026, f"the RTC's calendar was set to {year}"
        assert abs(vpen.unix_time() - (NOW + 2)) <= 2  # RTC in Unix s
        assert abs(_vclock().time() - (NOW + 2 - Y2K)) <= 2
        assert abs(app.pen.clock() - (NOW + 2)) <= 1
        # And it stays right: the app does not fight its own RTC.
        before = vpen.clock.epoch()
        vpen.step(5000)
        assert abs(vpen.clock.epoch() - (before + 5)) <= 1
        assert _machine().RTC().datetime()[:3] == (2026, 3, 14)

    _with_pen(tmp_path, None, scenario)


def test_after_a_reboot_the_pen_keeps_the_time_from_its_rtc(tmp_path: Path) -> None:
    async def scenario(vpen: VirtualPen) -> None:
        assert vpen.app.pen.set_key(KEY, True) == 0
        assert vpen.app.pen.set_time(signed_time(NOW)) == 0
        vpen.step(2000)
        await vpen.reboot()
        assert abs(vpen.app.pen.clock() - (NOW + 2)) <= 2

    _with_pen(tmp_path, None, scenario)


@pytest.mark.parametrize(("epoch_year", "offset"), [(2000, Y2K), (1970, 0)])
def test_the_offset_follows_what_the_target_says(monkeypatch: pytest.MonkeyPatch,
                                                 epoch_year: int, offset: int) -> None:
    # Whatever time.gmtime(0) says on the target (2000 on the ESP32, 1970 on ports
    # with MICROPY_EPOCH_IS_1970), the app's RTC reads and writes Unix seconds.
    t = _vclock()

    def gmtime(secs: int | None = None) -> tuple[int, ...]:
        g = host_time.gmtime(int(secs or 0) + offset)
        return (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec, g.tm_wday,
                g.tm_yday)

    assert gmtime(0)[0] == epoch_year
    monkeypatch.setattr(t, "gmtime", gmtime)
    monkeypatch.setattr(t, "time", lambda: NOW - offset)
    with _own_pen_modules():
        for key in [k for k in sys.modules if k == "pen" or k.startswith("pen.")]:
            del sys.modules[key]
        app = importlib.import_module("pen.app")
        assert offset == app._UNIX_OFFSET
        assert app._rtc_unix() == NOW
