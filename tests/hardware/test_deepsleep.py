"""machine.deepsleep() and the esp32 wake sources on the virtual hardware, as the
ESP32 port does them (docs/fidelity.md): the boot ends as at a reset (no code after
the call runs, outputs off), the chip draws the board's deep-sleep current with the
RTC counting, and a wake source boots it with reset cause DEEPSLEEP_RESET and the
wake reason; RTC memory survives the sleep, not a power cut."""

from __future__ import annotations

from typing import Any

import pytest

from scalppen_hardware import upy
from scalppen_hardware.virtual_pen_hw import (
    DEEPSLEEP_RESET,
    EXT0_WAKE,
    EXT1_WAKE,
    HARD_RESET,
    PWRON_RESET,
    TIMER_WAKE,
    VirtualPenHardware,
    deep_sleep_ua,
    self_discharge_ma,
)


def _sleep(hw: VirtualPenHardware, machine: Any, time_ms: int | None = None) -> list[str]:
    ran: list[str] = []
    with pytest.raises(machine.ResetRequested) as ended:
        machine.deepsleep(time_ms)
        ran.append("after deepsleep")  # never: the boot ends in the call
    assert ended.value.cause == DEEPSLEEP_RESET
    return ran


def test_deepsleep_ends_the_boot_and_draws_the_boards_sleep_current(hw, machine) -> None:  # type: ignore[no-untyped-def]
    esp32 = upy.module("esp32")
    pins = hw.board["pins"]
    hw.body.stepper.enabled = True
    esp32.wake_on_ext0(pin=machine.Pin(pins["button"]), level=False)
    epoch0 = hw.clock.epoch()
    assert _sleep(hw, machine) == []
    assert hw.asleep and not hw.running and not hw.body.stepper.enabled
    assert hw.needs_reboot == DEEPSLEEP_RESET
    soc0 = hw.body.battery.soc
    hw.sleep_for(24 * 3600 * 1000)
    assert hw.asleep
    ua = deep_sleep_ua(hw.board) + self_discharge_ma(hw.board) * 1000
    cap_mah = hw.board["battery"]["capacity_mah"]
    expected = ua / 1000 * 24 / cap_mah * 100  # percent of the cell in a day
    assert soc0 - hw.body.battery.soc == pytest.approx(expected, rel=0.05)
    assert 10 < ua < 100  # microamps, not the 40 mA awake
    assert hw.clock.epoch() - epoch0 == 24 * 3600  # the RTC counted on

    hw.set_button(True)  # the press: active low on the button's RTC GPIO
    hw.sleep_for(1000)
    assert not hw.asleep
    new = hw.reboot()
    assert new.reset_cause == DEEPSLEEP_RESET and new.wake_reason == EXT0_WAKE
    assert upy.module("machine").wake_reason() == EXT0_WAKE
    assert new.clock.epoch() >= epoch0 + 24 * 3600  # time kept, unlike a power cut


def test_rtc_memory_survives_deep_sleep_and_not_a_power_cut(hw, machine) -> None:  # type: ignore[no-untyped-def]
    machine.RTC().memory(b"kept")
    _sleep(hw, machine, 5000)
    hw.sleep_for(10_000)
    assert not hw.asleep  # the timer woke it
    new = hw.reboot()
    assert new.wake_reason == TIMER_WAKE
    m = upy.module("machine")
    assert m.RTC().memory() == b"kept"
    with pytest.raises(ValueError):
        m.RTC().memory(bytes(m.RTC_USER_MEM_MAX + 1))
    _sleep(new, m)
    new.inject("power_loss")  # a power cut while asleep: RTC domain gone
    assert not new.asleep and new.needs_reboot == PWRON_RESET
    third = new.reboot()
    assert third.reset_cause == PWRON_RESET and third.wake_reason == 0
    assert upy.module("machine").RTC().memory() == b""


def test_only_rtc_gpios_wake_the_s3_and_ext1_all_low(hw, machine) -> None:  # type: ignore[no-untyped-def]
    esp32 = upy.module("esp32")
    with pytest.raises(ValueError, match="invalid pin"):
        esp32.wake_on_ext0(pin=machine.Pin(45), level=False)  # rev A's charge sense
    with pytest.raises(ValueError, match="invalid pin"):
        esp32.wake_on_ext1(pins=(machine.Pin(18), machine.Pin(45)), level=False)
    assert hw.wake_cfg["ext1"] == ()  # nothing kept from a refused call
    charge = hw.board["pins"]["charge_detect"]
    esp32.wake_on_ext1(pins=(machine.Pin(charge),), level=False)
    _sleep(hw, machine)
    hw.sleep_for(60_000)
    assert hw.asleep
    hw.plug_charger(True)
    hw.sleep_for(2000)
    assert not hw.asleep and hw.reboot().wake_reason == EXT1_WAKE


def test_a_reset_while_asleep_is_a_hard_reset(hw, machine) -> None:  # type: ignore[no-untyped-def]
    _sleep(hw, machine)  # no wake source armed: it sleeps until reset or power cut
    hw.sleep_for(3600_000)
    assert hw.asleep
    hw.reset_from_sleep()
    new = hw.reboot()
    assert new.reset_cause == HARD_RESET and new.wake_reason == 0
