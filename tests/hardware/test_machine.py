"""The virtual machine/micropython modules: pins, IRQs, PWM, ADC, I2C, timers, watchdog, resets."""

from __future__ import annotations

import pytest

from scalppen_hardware import upy
from scalppen_hardware.virtual_pen_hw import HARD_RESET, PWRON_RESET, WDT_RESET, VirtualPenHardware


def test_pins_and_irq(hw, machine) -> None:  # type: ignore[no-untyped-def]
    pins = hw.board["pins"]
    free = machine.Pin(33, machine.Pin.IN, machine.Pin.PULL_UP)
    assert free.value() == 1
    out = machine.Pin(34, machine.Pin.OUT, value=1)
    assert out.value() == 1
    out.off()
    assert out() == 0
    hits: list[int] = []
    hall = machine.Pin(pins["hall"], machine.Pin.IN)
    hall.irq(handler=lambda p: hits.append(p.id()), trigger=machine.Pin.IRQ_RISING)
    pwm = machine.PWM(machine.Pin(pins["motor_pwm"]), freq=20000, duty_u16=0)
    pwm.duty(hw.board["motor"]["nominal_duty"])
    assert pwm.duty() == hw.board["motor"]["nominal_duty"]
    assert hw.motor.duty == pytest.approx(hw.board["motor"]["nominal_duty"] / 1023, abs=1e-3)
    hw.advance(2000)
    assert len(hits) == hw.motor.strokes > 200 and set(hits) == {pins["hall"]}
    with pytest.raises(ValueError):
        pwm.duty_u16(70000)
    pwm.deinit()
    assert hw.motor.duty == 0


def test_adc_quantisation(hw, machine) -> None:  # type: ignore[no-untyped-def]
    adc = machine.ADC(machine.Pin(hw.board["pins"]["ntc"]), atten=machine.ADC.ATTN_11DB)
    mv = hw.body.ntc.mv(hw.thermal.temp_c)
    assert abs(adc.read_uv() / 1000 - mv) < 1.0
    assert adc.read() == round(mv * 4095 / 3100)
    assert adc.read_u16() >> 4 == adc.read()
    adc.atten(machine.ADC.ATTN_0DB)
    assert adc.read() == 4095  # above the 0 dB range: clipped


def test_i2c(hw, machine) -> None:  # type: ignore[no-untyped-def]
    pins = hw.board["pins"]
    i2c = machine.I2C(0, scl=machine.Pin(pins["i2c_scl"]), sda=machine.Pin(pins["i2c_sda"]))
    assert i2c.scan() == sorted(
        [hw.board["battery"]["fuel_gauge_addr"], hw.board["display"]["addr"]]
    )
    assert i2c.readfrom_mem(hw.board["battery"]["fuel_gauge_addr"], 0x08, 2) == b"\x00\x12"
    with pytest.raises(OSError):
        i2c.writeto(0x50, b"\x00")
    other = machine.I2C(1, scl=machine.Pin(40), sda=machine.Pin(41))
    assert other.scan() == []


def test_timer_schedule_sleep(hw, machine, clock) -> None:  # type: ignore[no-untyped-def]
    import micropython

    fired: list[int] = []
    t = machine.Timer(0)
    t.init(period=10, mode=machine.Timer.PERIODIC, callback=lambda tm: fired.append(clock.world_us))
    one: list[int] = []
    machine.Timer(1).init(period=25, mode=machine.Timer.ONE_SHOT, callback=lambda tm: one.append(1))
    hw.advance(100)
    assert fired == [i * 10_000 for i in range(1, 11)]
    assert one == [1]
    t.deinit()
    hw.advance(100)
    assert len(fired) == 10
    got: list[int] = []
    micropython.schedule(got.append, 7)
    assert got == []
    hw.advance(1)
    assert got == [7]
    assert micropython.const(5) == 5
    import vclock

    t0 = vclock.ticks_ms()
    vclock.sleep_ms(250)  # a firmware sleep steps the hardware
    assert vclock.ticks_diff(vclock.ticks_ms(), t0) == 250
    machine.lightsleep(1000)
    assert clock.world_us == 1_451_000


def test_watchdog_expiry_and_reboot(hw, machine, clock) -> None:  # type: ignore[no-untyped-def]
    hw.set_contact(True)
    pwm = machine.PWM(machine.Pin(hw.board["pins"]["motor_pwm"]), freq=20000, duty_u16=40000)
    wdt = machine.WDT(timeout=500)
    for _ in range(10):
        hw.advance(400)
        wdt.feed()
    assert hw.needs_reboot is None
    hw.advance(600)
    assert hw.needs_reboot == WDT_RESET
    assert hw.motor.duty == 0  # the outputs float once the MCU is reset
    pwm.duty_u16(40000)
    assert hw.motor.duty == 0
    body = hw.body
    hw2 = hw.reboot()
    assert hw2.body is body and hw2.clock is clock and hw2.needs_reboot is None
    assert machine.reset_cause() == WDT_RESET
    import vclock

    assert vclock.ticks_ms() == 0  # ticks restart at boot
    with pytest.raises(machine.ResetRequested):
        machine.reset()
    assert hw2.needs_reboot == HARD_RESET
    hw3 = hw2.reboot()
    assert machine.reset_cause() == HARD_RESET and hw3.running


def test_machine_misc(hw, machine) -> None:  # type: ignore[no-untyped-def]
    assert machine.reset_cause() == PWRON_RESET
    assert len(machine.unique_id()) == 6
    assert machine.freq() == 240_000_000
    rtc = machine.RTC()
    rtc.datetime((2027, 3, 4, 0, 5, 6, 7, 0))
    assert rtc.datetime()[:3] == (2027, 3, 4)
    import vclock

    assert vclock.gmtime()[:6] == (2027, 3, 4, 5, 6, 7)


def test_fresh_install_replaces_hardware(board, clock) -> None:  # type: ignore[no-untyped-def]
    a = VirtualPenHardware(board, clock)
    b = VirtualPenHardware(board, clock)
    upy.install(a)
    m = upy.module("machine")
    pa = m.Pin(33, m.Pin.OUT, value=1)
    upy.install(b)
    pb = m.Pin(33, m.Pin.IN)
    assert pa.value() == 1 and pb.value() == 0  # each object keeps its own hardware
    upy.uninstall()
    with pytest.raises(RuntimeError, match="no virtual hardware"):
        m.Pin(1)
