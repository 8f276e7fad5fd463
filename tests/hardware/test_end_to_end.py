"""Drivers driving the virtual hardware for a whole session: write Outputs, advance, read Inputs."""

from __future__ import annotations

import pytest


def test_fifteen_minute_session(rig) -> None:  # type: ignore[no-untyped-def]
    lim = rig.board["limits"]
    hw = rig.hw
    hw.set_battery(90)
    cart = hw.insert_cartridge("new")
    hw.set_contact(True)
    rig.tick(12)  # presence, then the cartridge's authenticator read page by page
    assert rig.inp.cartridge["valid"] and rig.inp.cartridge["auth"]
    rig.home()
    rig.go_to(1000)
    assert abs(rig.inp.depth_um - 1000) <= lim["depth_tol_um"]
    soc0, temp0 = hw.body.battery.soc, rig.inp.temp_c10
    rig.out.display = "RUN 1.00mm"
    rig.out.motor_duty = rig.board["motor"]["nominal_duty"]
    rig.tick(100)  # spin up
    start = rig.inp.hall_count
    ticks = lim["session_cap_s"] * 1000 // lim["tick_ms"]
    rates = []
    last = start
    for i in range(1, ticks + 1):
        rig.tick()
        if i % 100 == 0:  # strokes per second, second by second
            rates.append(rig.inp.hall_count - last)
            last = rig.inp.hall_count
    strokes = rig.inp.hall_count - start
    assert all(lim["rate_min_sps"] <= r <= lim["rate_max_sps"] for r in rates)
    assert strokes == sum(rates)
    # Open loop at the nominal duty on a 90 % cell runs a little fast; the core closes the loop.
    assert strokes == pytest.approx(lim["rate_nominal_sps"] * lim["session_cap_s"], rel=0.1)
    assert max(rates) - min(rates) <= 6
    assert sum(rates[-60:]) < sum(rates[:60])  # open loop slows as the cell drains
    assert cart.strokes == hw.body.strokes  # the needles really moved that much
    # the session drained the cell (motor, stepper, MCU: about 300 mA for 15 min of
    # 650 mAh), and the gauge's reading followed
    assert soc0 - hw.body.battery.soc > 5
    assert abs(rig.inp.battery_pct - hw.body.battery.soc) <= 2
    assert rig.inp.temp_c10 > temp0 + 30  # and warmed the handpiece
    assert rig.inp.temp_c10 < lim["overtemp_c10"]
    assert abs(rig.inp.depth_um - 1000) <= lim["depth_tol_um"]
    rig.out.motor_duty = 0
    rig.out.cartridge_write = {"used": strokes, "first_use": hw.clock.epoch(), "finished": True}
    rig.tick()
    rig.out.cartridge_write = None
    rig.tick(30)  # two EEPROM writes (usage page, counter) of up to 100 ms each
    # the chip's counter stops at the rated strokes; it counts two strokes a count, so
    # what it holds is rounded up to the next even stroke, never below what was made
    want = min(strokes + strokes % 2, lim["cartridge_rated_strokes"])
    assert cart.record["used"] == want and cart.record["finished"]
    rig.go_to(0)
    assert rig.inp.home
    assert hw.display_text == "RUN 1.00mm"


def test_watchdog_fed_by_outputs(rig) -> None:  # type: ignore[no-untyped-def]
    rig.drv.start_watchdog()
    rig.out.feed_wdt = True
    rig.tick(500)
    assert rig.hw.needs_reboot is None
    rig.out.feed_wdt = False
    rig.tick(150)
    assert rig.hw.needs_reboot is not None


def test_safe_stop(rig) -> None:  # type: ignore[no-untyped-def]
    rig.home()
    rig.out.motor_duty = 700
    rig.tick(10)
    rig.drv.safe_stop()
    assert rig.hw.motor.duty == 0 and not rig.hw.stepper.enabled


def test_other_board_revision_runs_the_same_drivers(clock) -> None:  # type: ignore[no-untyped-def]
    from scalppen_hardware import upy
    from scalppen_hardware.board import load_board
    from scalppen_hardware.virtual_pen_hw import VirtualPenHardware
    from tests.hardware.conftest import Rig

    board = load_board("pen-s3-reva")
    hw = VirtualPenHardware(board, clock)
    upy.install(hw)
    try:
        rig = Rig(hw, board)
        hw.set_contact(True)
        hw.insert_cartridge("new")
        rig.tick(12)
        assert rig.inp.contact and rig.inp.cartridge["valid"]  # contact is active-low on rev A
        rig.home()
        rig.go_to(750)
        assert hw.stepper.pos == 30  # 40 steps/mm on rev A
        assert abs(rig.inp.depth_um - 750) <= 5
        rig.out.motor_duty = board["motor"]["nominal_duty"]
        rig.tick(200)
        n = rig.inp.hall_count
        rig.tick(100)
        lim = board.limits
        assert lim["rate_min_sps"] <= rig.inp.hall_count - n <= lim["rate_max_sps"]
    finally:
        upy.uninstall()
