"""Fault injection through the drivers: what the firmware sees for each fault."""

from __future__ import annotations

import pytest

from scalppen_hardware import upy
from scalppen_hardware.virtual_pen_hw import FAULTS, PWRON_RESET
from tests.hardware.conftest import EPOCH, Rig


def test_stall_raises_current_and_stops_hall(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.set_contact(True)
    rig.out.motor_duty = rig.board["motor"]["nominal_duty"]
    rig.tick(100)
    assert rig.inp.motor_ma < rig.board["limits"]["overcurrent_ma"]
    rig.hw.inject("stall")
    rig.tick()
    count = rig.inp.hall_count
    assert rig.inp.motor_ma > rig.board["limits"]["overcurrent_ma"]  # seen within one tick
    rig.tick(10)
    assert rig.inp.hall_count == count
    rig.out.motor_duty = 0
    rig.tick()
    assert rig.inp.motor_ma == 0
    rig.hw.clear("stall")
    assert "stall" not in rig.hw.faults


def test_motor_duty_clamped_and_zero_stops_at_once(rig) -> None:  # type: ignore[no-untyped-def]
    rig.out.motor_duty = 5000
    rig.tick()
    assert rig.drv.motor.duty == 1023 and rig.hw.motor.duty == 1.0
    rig.out.motor_duty = -7
    rig.drv.apply(rig.out)
    assert rig.hw.motor.duty == 0.0


def test_contact_and_charger(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.set_contact(True)
    rig.tick()
    assert rig.inp.contact
    rig.hw.inject("contact_lost")
    rig.tick()
    assert not rig.inp.contact
    rig.hw.clear("contact_lost")
    rig.hw.inject("charger")
    rig.tick()
    assert rig.inp.contact and rig.inp.charging
    soc = rig.hw.battery.soc
    rig.tick(1000)
    assert rig.hw.battery.soc > soc
    rig.hw.clear("charger")
    rig.tick()
    assert not rig.inp.charging


def test_power_loss_and_reboot(rig, clock) -> None:  # type: ignore[no-untyped-def]
    rig.home()
    rig.go_to(1000)
    rig.out.motor_duty = 700
    rig.out.display = "RUN"
    rig.tick(50)
    rig.hw.inject("power_loss")
    assert not rig.hw.powered and rig.hw.needs_reboot == PWRON_RESET
    assert rig.hw.motor.duty == 0 and rig.hw.display_text == ""
    rig.hw.advance(1000)
    assert rig.hw.motor.speed == 0
    hw2 = rig.hw.reboot()
    assert hw2.powered and hw2.reset_cause == PWRON_RESET
    assert hw2.depth_um == 1000  # the carriage stays where it was
    assert clock.epoch() < EPOCH  # the RTC restarted cold
    rig2 = Rig(hw2, rig.board)
    rig2.tick()
    assert not rig2.inp.homed and rig2.inp.depth_um == pytest.approx(1000, abs=5)


def test_cartridge_made_after_a_power_cut_is_dated_by_the_calendar(rig, clock) -> None:  # type: ignore[no-untyped-def]
    # The RTC restarts cold at a power cut; a new cartridge from the box is still
    # made this year, not in 2000 (else the pen would refuse it as expired).
    before = rig.hw.make_cartridge("new")
    rig.hw.inject("power_loss")
    hw2 = rig.hw.reboot()
    assert clock.epoch() < EPOCH <= clock.calendar()
    after = hw2.make_cartridge("new")
    assert after.record["expiry"] >= before.record["expiry"] > clock.calendar()


def test_brownout_reported_after_reboot(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick()
    assert not rig.inp.brownout
    rig.hw.inject("brownout")
    assert rig.hw.needs_reboot == PWRON_RESET and rig.hw.last_power_event == "brownout"
    assert "brownout" not in rig.hw.faults  # transient
    hw2 = rig.hw.reboot()
    rig2 = Rig(hw2, rig.board)
    rig2.tick()
    assert rig2.inp.brownout  # the gauge latched the sag
    rig3 = Rig(hw2.reboot(), rig.board)  # latch cleared by the previous boot
    rig3.tick()
    assert not rig3.inp.brownout


def test_flat_battery_browns_out(hw) -> None:  # type: ignore[no-untyped-def]
    hw.set_battery(1)
    hw.inject("stall")  # locked-rotor current on a flat cell
    machine = upy.module("machine")
    machine.PWM(machine.Pin(hw.board["pins"]["motor_pwm"]), freq=20000, duty_u16=65535)
    hw.advance(500)
    assert not hw.powered and hw.last_power_event == "brownout"


def test_unknown_fault(hw) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="unknown fault"):
        hw.inject("gremlins")
    with pytest.raises(ValueError):
        hw.clear("gremlins")
    for name in FAULTS:
        if name not in ("power_loss", "brownout"):
            hw.inject(name)
            hw.clear(name)
    assert hw.faults == frozenset()
