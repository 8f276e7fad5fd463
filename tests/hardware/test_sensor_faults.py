"""Sensor faults of the virtual pen (hall pulses lost, a fuel gauge off the bus or
stuck, a depth sensor stuck or glitching): the models, the drivers' readings, and
the firmware core on the drivers on the virtual hardware (rules 3, 8, 12, 14)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from scalppen_hardware import upy
from scalppen_hardware.board import load_board
from scalppen_hardware.upy.vclock import VirtualClock
from scalppen_hardware.virtual_pen_hw import FAULTS, VirtualPenHardware

FW_TESTS = str(Path(__file__).resolve().parents[1] / "firmware")
if FW_TESTS not in sys.path:
    sys.path.insert(0, FW_TESTS)

EPOCH = 1_767_225_600


class HwPlant:
    """The Plant's face (``inp``, ``step(out, dt)``) on the firmware's drivers over
    the virtual hardware, so tests/firmware/rig.py drives the core on it."""

    def __init__(self, hw: VirtualPenHardware) -> None:
        from pen.drivers import Drivers
        from pen.io import Inputs

        self.hw = hw
        self.drv = Drivers(hw.board)
        self.inp = Inputs()
        self.inp.link_up = True
        hw.insert_cartridge("new")
        hw.set_contact(True)
        self.drv.read(self.inp)

    def step(self, out: Any, dt: int) -> None:
        self.drv.apply(out)
        self.hw.advance(dt)
        self.drv.read(self.inp)


@pytest.fixture
def pen_on_hw() -> Any:
    """-> make(soc_pct): a firmware rig (tests/firmware/rig.py) on the virtual pen."""
    made: list[Any] = []

    def make(soc_pct: float = 90.0) -> Any:
        import rig as fw_rig
        from memfs import MemFs
        from pen.board import Board

        board = load_board()
        hw = VirtualPenHardware(board, VirtualClock(epoch_s=EPOCH), soc_pct=soc_pct)
        upy.install(hw)
        made.append(hw)
        r = fw_rig.Rig(MemFs(), board=Board(board.data), plant=HwPlant(hw))
        r.hw = hw
        return r

    yield make
    upy.uninstall()


def _wire() -> Any:
    from pen import wire

    return wire


def _until_fault(r: Any, ms: int) -> tuple[Any, int | None]:
    out = None
    for k in range(ms // 10):
        out = r.tick()
        if r.pen.fault:
            return out, (k + 1) * 10
    return out, None


def _running(r: Any, level: int = 1, depth: int = 1000, duration: int = 600) -> None:
    w = _wire()
    assert r.code(w.T_SET_SPEED, {"level": level}) == 0
    assert r.start_session(depth, duration) == 0
    r.run(1500)
    assert r.pen.state == w.S_RUNNING


# ---- the models ---------------------------------------------------------------------------------
def test_the_new_faults_are_injectable_and_clear(hw) -> None:  # type: ignore[no-untyped-def]
    for name in ("hall_pulse_loss", "gauge_off_bus", "gauge_stuck_high", "depth_sensor_stuck",
                 "depth_sensor_glitch"):
        assert name in FAULTS
        hw.inject(name)
        assert name in hw.faults
        hw.clear(name)
        assert name not in hw.faults
    b = hw.body
    assert b.motor.hall_miss_every == 0 and not b.gauge.off_bus and not b.gauge.stuck_high
    assert b.depth_sensor.stuck_mv is None and b.depth_sensor.glitch_every_ms == 0


def test_hall_pulse_loss_hides_strokes_the_cam_makes(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.set_contact(True)
    rig.out.motor_duty = 700
    rig.tick(50)
    rig.hw.inject("hall_pulse_loss", every=4)
    h0, s0 = rig.inp.hall_count, rig.hw.body.strokes
    rig.tick(300)
    made = rig.hw.body.strokes - s0
    seen = rig.inp.hall_count - h0
    assert made > 300 and abs(seen - made * 3 / 4) <= 2
    rig.hw.clear("hall_pulse_loss")
    h0, s0 = rig.inp.hall_count, rig.hw.body.strokes
    rig.tick(100)
    assert rig.inp.hall_count - h0 == rig.hw.body.strokes - s0


def test_a_gauge_off_the_bus_is_not_a_battery_reading(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick(60)
    assert rig.inp.battery_ok and rig.inp.battery_pct > 50
    rig.hw.inject("gauge_off_bus")
    rig.hw.set_battery(8)
    with pytest.raises(OSError):
        rig.drv.i2c.readfrom_mem(rig.board["battery"]["fuel_gauge_addr"], 0x02, 2)
    rig.tick(60)  # one gauge poll
    assert not rig.inp.battery_ok
    assert rig.drv.sensors.gauge_errors >= 2  # tried again before giving up
    rig.hw.clear("gauge_off_bus")
    rig.tick(60)
    assert rig.inp.battery_ok and rig.inp.battery_pct == 8


def test_a_gauge_read_stuck_high_is_not_a_battery_reading(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick(60)
    assert rig.inp.battery_ok
    rig.hw.inject("gauge_stuck_high")
    rig.tick(60)
    assert not rig.inp.battery_ok


def test_the_low_voltage_alert_is_watched_after_boot(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick(60)
    assert not rig.inp.brownout
    rig.hw.set_battery(0)  # 3.3 V at rest, a little less under the pen's own load
    rig.tick(60)
    assert rig.hw.needs_reboot is None  # above the MCU's brown-out: still running
    assert rig.inp.brownout


def test_depth_sensor_stuck_and_glitching(rig) -> None:  # type: ignore[no-untyped-def]
    rig.home()
    rig.go_to(500)
    rig.hw.inject("depth_sensor_stuck")
    rig.go_to(1000)
    rig.tick(5)
    assert abs(rig.inp.depth_um - 500) < 20 and rig.inp.depth_cmd_um == 1000
    rig.hw.clear("depth_sensor_stuck")
    rig.hw.inject("depth_sensor_glitch", every_ms=50)
    reads = []
    for _ in range(20):
        reads.append(rig.tick().depth_um)
    rail = [d for d in reads if d > 3000]
    assert 3 <= len(rail) <= 5 and all(abs(d - 1000) < 20 for d in reads if d <= 3000)


# ---- the firmware on the virtual pen ---------------------------------------------------------------
@pytest.mark.parametrize("level", [1, 3])
def test_hall_pulse_loss_faults_the_session(pen_on_hw, level) -> None:  # type: ignore[no-untyped-def]
    """Finding: one pulse in four lost ran the cam at 156/s (level 117/s) and 193/s
    (top level), a quarter of the strokes uncounted, no fault. Now it stops."""
    w = _wire()
    r = pen_on_hw()
    _running(r, level)
    r.hw.inject("hall_pulse_loss", every=4)
    s0 = r.hw.body.strokes
    out, at = _until_fault(r, 2000)
    assert r.pen.fault == w.E_FAULT_STROKE_MISMATCH and out.motor_duty == 0
    assert at is not None and at <= 400
    assert r.hw.body.motor.duty == 0
    made = r.hw.body.strokes - s0
    assert made < 60  # at most a window's worth of strokes


@pytest.mark.parametrize("soc", [100, 60, 35])
def test_no_false_fault_at_any_level_on_the_virtual_pen(pen_on_hw, soc) -> None:  # type: ignore[no-untyped-def]
    """All levels, a full cell to one that can just finish the session, level
    changes while running, on skin: no sensor check trips."""
    w = _wire()
    r = pen_on_hw(soc)
    _running(r, level=0, duration=120)
    for level in (1, 2, 3, 0, 3, 1):
        assert r.code(w.T_SET_SPEED, {"level": level}) == 0
        r.run(3000)
        assert r.pen.state == w.S_RUNNING and r.pen.fault == 0, (soc, level)
    made, counted = r.hw.body.strokes, r.pen.strokes
    assert counted >= made * 0.98 and counted <= made * 1.04


def test_gauge_off_the_bus_refuses_the_start(pen_on_hw) -> None:  # type: ignore[no-untyped-def]
    """Finding: with the gauge off the bus and the cell at 8 %, the pen reported
    90 % and started."""
    w = _wire()
    r = pen_on_hw(90)
    r.run(600)
    r.hw.inject("gauge_off_bus")
    r.hw.set_battery(8)
    r.run(600)
    assert r.arm(depth=500) == 0
    assert r.code(w.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(w.T_START) == w.E_BATTERY_UNKNOWN
    r.run(500)
    assert r.pen.state == w.S_IDLE and r.max_duty == 0  # the refusal ended the permit


def test_gauge_lost_mid_session_stops_it(pen_on_hw) -> None:  # type: ignore[no-untyped-def]
    w = _wire()
    r = pen_on_hw(90)
    _running(r)
    r.hw.inject("gauge_off_bus")
    out, at = _until_fault(r, 1000)
    assert r.pen.fault == w.E_FAULT_GAUGE and out.motor_duty == 0
    assert at is not None and at <= 510  # the next gauge poll (every 500 ms)


def test_intermittent_depth_sensor_faults_the_session(pen_on_hw) -> None:  # type: ignore[no-untyped-def]
    w = _wire()
    r = pen_on_hw(90)
    _running(r)
    r.hw.inject("depth_sensor_glitch", every_ms=50)
    out, at = _until_fault(r, 1000)
    assert r.pen.fault == w.E_FAULT_DEPTH and out.motor_duty == 0
    assert at is not None and at <= 200
