"""Cross-checks of the pen's sensors (rules 3, 8, 12, 14): the hall rate against the
motor's back-EMF, a loop at full duty, a fuel gauge that stops answering, a depth
sensor against the counted steps and the home switch. Against the Plant (the
motor's physics of hardware/scalppen_hardware/models/motor.py)."""

import pytest
from pen import wire
from pen.depthctl import DepthCtl
from pen.io import Inputs
from rig import make_board


def running(r, depth=1000, duration=600, level=1):
    assert r.code(wire.T_SET_SPEED, {"level": level}) == 0
    assert r.start_session(depth, duration) == 0
    r.run(1500)
    assert r.pen.state == wire.S_RUNNING and r.pen.out.motor_duty > 0
    return r


def until_fault(r, ms):
    out = None
    for k in range(ms // 10):
        out = r.tick()
        if r.pen.fault:
            return out, (k + 1) * 10
    return out, None


def rate_of(r, ms=1000):
    s0 = r.plant.strokes
    r.run(ms)
    return (r.plant.strokes - s0) * 1000 / ms


# ---- finding 4: hall pulses lost (rules 8, 9, 14) ------------------------------------------
@pytest.mark.parametrize("level", [1, 3])
def test_one_hall_pulse_in_four_lost_faults_the_stroke_mismatch(r, level):
    running(r, level=level)
    r.plant.hall_miss_every = 4
    out, at = until_fault(r, 1000)
    assert r.pen.fault == wire.E_FAULT_STROKE_MISMATCH and out.motor_duty == 0
    # one window (320 ms) to see it, then duty 0 in the tick that finds it
    assert at <= 400, at
    assert wire.E_FAULT_STROKE_MISMATCH in [x["code"] for x in r.log(wire.K_FAULT)]


def test_pulse_loss_from_the_start_faults_at_the_first_check(r):
    r.plant.hall_miss_every = 4
    assert r.start_session(1000, 600) == 0
    out, at = until_fault(r, 2000)
    assert r.pen.fault == wire.E_FAULT_STROKE_MISMATCH and out.motor_duty == 0
    assert at <= 900  # the soft start and the settle (850 ms), then at once
    assert r.plant.speed < 150 or r.pen.out.motor_duty == 0


def test_wear_is_counted_from_the_higher_estimate(r):
    """One pulse in sixteen lost (6 %: within the cross-check's tolerance, so the
    session goes on): the cartridge is charged for the strokes the cam made."""
    running(r)
    r.plant.hall_miss_every = 16
    s0, p0 = r.pen.strokes, r.plant.strokes
    r.run(20_000)
    assert r.pen.state == wire.S_RUNNING
    made = r.plant.strokes - p0
    counted = r.pen.strokes - s0
    assert counted >= made * 0.97, (counted, made)
    assert counted <= made * 1.06, (counted, made)


def test_a_sound_hall_is_counted_as_it_is(r):
    running(r)
    s0, p0 = r.pen.strokes, r.plant.strokes
    r.run(10_000)
    made = r.plant.strokes - p0
    assert abs((r.pen.strokes - s0) - made) <= made * 0.04


def test_a_loop_at_full_duty_faults_in_the_stall_budget(r):
    """The cell sags so far full duty cannot hold the rate: the loop has no
    authority left, and the pen stops instead of running at the rail."""
    running(r)
    r.plant.inp.battery_mv = 2200
    out, at = until_fault(r, 500)
    assert r.pen.fault == wire.E_FAULT_DUTY_SATURATED and out.motor_duty == 0
    assert at <= 40  # three ticks at the rail (the 30 ms stall budget), then off


@pytest.mark.parametrize("mv", [4150, 3900, 3620])
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_no_false_fault_at_any_level_from_full_to_reserve(r, level, mv):
    r.plant.inp.battery_mv = mv
    running(r, level=level)
    for _ in range(10):
        r.run(1000)
        assert r.pen.state == wire.S_RUNNING and r.pen.fault == 0
    target = r.board.speed_levels_sps[level]
    assert abs(rate_of(r) - target) <= 4


@pytest.mark.parametrize("mv", [4150, 3620])
def test_no_false_fault_when_the_level_changes_while_running(r, mv):
    r.plant.inp.battery_mv = mv
    running(r, level=0)
    for level in (3, 0, 3, 1, 2, 0, 3):
        assert r.code(wire.T_SET_SPEED, {"level": level}) == 0
        r.run(1500)
        assert r.pen.state == wire.S_RUNNING and r.pen.fault == 0, level
        assert r.pen.motor.rate_x10 <= r.board.rate_max_sps * 10 + 40


# ---- finding 5: the fuel gauge (rule 12) ---------------------------------------------------------
def test_a_silent_gauge_refuses_the_start_as_battery_unknown(r):
    r.plant.gauge_off = True
    r.plant.inp.battery_pct = 90  # the last good reading, stale
    r.run(600)
    assert r.arm(depth=500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_START) == wire.E_BATTERY_UNKNOWN
    assert r.pen.state == wire.S_IDLE and r.max_duty == 0  # the permit ended with it


def test_a_gauge_lost_while_running_stops_the_session(r):
    running(r)
    r.plant.gauge_off = True
    out, at = until_fault(r, 100)
    assert r.pen.fault == wire.E_FAULT_GAUGE and out.motor_duty == 0 and at <= 20
    assert out.depth_target_um == 0


def test_the_low_voltage_alert_while_running_stops_the_session(r):
    running(r)
    r.plant.inp.brownout = True
    out, at = until_fault(r, 100)
    assert r.pen.fault == wire.E_FAULT_BROWNOUT and out.motor_duty == 0 and at <= 20


# ---- finding 6: depth (rule 3) ----------------------------------------------------------------------
def test_intermittent_out_of_range_depth_samples_fault(r):
    """Every fourth sample at the ADC rail: never three in a row, still a fault."""
    running(r)
    r.plant.depth_glitch_every = 4
    out, at = until_fault(r, 500)
    assert r.pen.fault == wire.E_FAULT_DEPTH and out.motor_duty == 0
    assert at <= 130


def test_a_rare_depth_glitch_is_not_a_fault(r):
    running(r)
    r.plant.depth_glitch_every = 30  # one in 30: under three in the 24-sample window
    r.run(5000)
    assert r.pen.state == wire.S_RUNNING and r.pen.fault == 0


def test_a_depth_sensor_stuck_through_a_move_disagrees_with_the_steps(r):
    """The sensor freezes at 0.5 mm, then the setting goes to 1.0 mm: the counted
    steps show it as soon as the stepper stands still, before the settle time
    after which the target check would look."""
    assert r.arm(depth=1000) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_START) == 0
    r.run(1500)
    assert r.pen.state == wire.S_RUNNING
    r.plant.depth_sensor_stuck = 500
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1000}) == 0
    out, at = until_fault(r, 400)
    assert r.pen.fault == wire.E_FAULT_DEPTH_DISAGREE and out.motor_duty == 0
    assert at < r.board.depth_settle_ms


def _inp(depth, cmd, home, moving=False):
    i = Inputs()
    i.homed = True
    i.depth_um, i.depth_cmd_um, i.home, i.depth_moving = depth, cmd, home, moving
    return i


def test_home_switch_open_while_the_steps_and_the_sensor_say_home_disagrees():
    """A carriage that stopped short of home (steps lost on the way up) under a
    sensor that reads 0: only the home switch tells, and it is believed."""
    d = DepthCtl(make_board())
    d.homed = True
    codes = [d.verify(1000 + 10 * k, _inp(0, 0, False)) for k in range(3)]
    assert codes == [0, 0, wire.E_FAULT_DEPTH_DISAGREE]
    d = DepthCtl(make_board())
    d.homed = True
    assert all(d.verify(1000 + 10 * k, _inp(0, 0, True)) == 0 for k in range(50))


def test_home_switch_closed_while_the_steps_say_deep_disagrees():
    d = DepthCtl(make_board())
    d.homed = True
    d.set_target(1000, 0)
    codes = [d.verify(1000 + 10 * k, _inp(1000, 1000, True)) for k in range(3)]
    assert codes[-1] == wire.E_FAULT_DEPTH_DISAGREE


def test_a_moving_stepper_is_not_cross_checked():
    d = DepthCtl(make_board())
    d.homed = True
    d.set_target(1000, 0)
    assert all(d.verify(10 * k, _inp(k * 50, k * 60, False, True)) == 0 for k in range(1, 20))
