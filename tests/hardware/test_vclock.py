"""Virtual time: MicroPython ticks semantics (wrap-around), sleeps, the RTC."""

from __future__ import annotations

import pytest

from scalppen_hardware.upy import vclock
from scalppen_hardware.upy.vclock import TICKS_MAX, TICKS_PERIOD, VirtualClock


@pytest.fixture
def clk() -> VirtualClock:
    c = VirtualClock(epoch_s=1_700_000_000, ticks_origin_ms=TICKS_MAX - 5)
    vclock._attach(c)
    yield c
    vclock._attach(None)


def test_ticks_wrap_and_diff(clk: VirtualClock) -> None:
    t0 = vclock.ticks_ms()
    assert t0 == TICKS_MAX - 5
    clk.advance_ms(10)
    t1 = vclock.ticks_ms()
    assert t1 == 4  # wrapped
    assert vclock.ticks_diff(t1, t0) == 10
    assert vclock.ticks_diff(t0, t1) == -10
    assert vclock.ticks_add(t0, 10) == t1
    assert vclock.ticks_add(t1, -10) == t0


def test_ticks_diff_range_and_add_overflow() -> None:
    half = TICKS_PERIOD // 2
    assert vclock.ticks_diff(half - 1, 0) == half - 1
    assert vclock.ticks_diff(half, 0) == -half  # beyond half a period reads as negative
    assert vclock.ticks_diff(0, TICKS_MAX) == 1
    with pytest.raises(OverflowError):
        vclock.ticks_add(0, half)
    assert vclock.ticks_add(TICKS_MAX, 1) == 0


def test_ticks_us_and_sleep(clk: VirtualClock) -> None:
    slept: list[int] = []
    clk.sleeper = slept.append
    vclock.sleep_ms(7)
    vclock.sleep_us(1500)
    vclock.sleep(0.25)
    assert slept == [7, 2, 250]
    clk.sleeper = None
    u0 = vclock.ticks_us()
    vclock.sleep_ms(3)
    assert vclock.ticks_diff(vclock.ticks_us(), u0) == 3000


def test_rtc_and_boot(clk: VirtualClock) -> None:
    # The clock keeps Unix seconds; MicroPython's time API on the ESP32 counts
    # from 2000-01-01 (MICROPY_EPOCH_IS_2000).
    y2k = vclock.MP_EPOCH_UNIX
    assert y2k == 946_684_800
    assert clk.epoch() == 1_700_000_000
    assert vclock.time() == 1_700_000_000 - y2k
    assert vclock.time_ns() == (1_700_000_000 - y2k) * 1_000_000_000
    clk.advance_ms(2500)
    assert vclock.time() == 1_700_000_002 - y2k
    clk.set_epoch(1_800_000_000)
    assert vclock.time() == 1_800_000_000 - y2k
    assert vclock.gmtime(0)[:3] == (2000, 1, 1)
    assert vclock.gmtime(0)[6:] == (5, 1)  # a Saturday, the year's first day
    assert vclock.mktime((2000, 1, 1, 0, 0, 0, 5, 1)) == 0
    assert vclock.gmtime()[:6] == (2027, 1, 15, 8, 0, 0)  # Unix 1_800_000_000
    assert vclock.localtime() == vclock.gmtime()
    assert vclock.mktime(vclock.gmtime()) == vclock.time()
    clk.boot(ticks_origin_ms=0)
    assert vclock.ticks_ms() == 0
    assert vclock.time() == 1_800_000_000 - y2k  # the RTC keeps running through a reset
    clk.rtc_lost()
    assert clk.epoch() == vclock.RTC_COLD_EPOCH
    assert vclock.time() == 0  # a cold ESP32 RTC reads its epoch, 2000-01-01
    assert vclock.gmtime()[:3] == (2000, 1, 1)


def test_time_cannot_go_back(clk: VirtualClock) -> None:
    with pytest.raises(ValueError):
        clk.advance_us(-1)


def test_unattached_is_an_error() -> None:
    vclock._attach(None)
    with pytest.raises(RuntimeError, match="no VirtualClock"):
        vclock.ticks_ms()
