"""Each safety rule the firmware owns, with a test that fails if the rule's check is
taken out. Test names carry the rule number (SAFETY_RULES.md)."""

import pytest
from memfs import MemFs
from pen import safety, wire
from pen.board import Board, BoardError
from pen.wear import cart_hex
from rig import T0, Rig, make_board, signed_time


def running(r, depth=1000, duration=600):
    assert r.start_session(depth, duration) == 0
    r.run(1500)
    assert r.pen.state == wire.S_RUNNING and r.pen.out.motor_duty > 0
    return r


def refused(r, kind):
    return [x["code"] for x in r.log(kind)]


# ---- rule 1: depth ceiling ------------------------------------------------------
def test_rule01_set_depth_above_ceiling_refused(r):
    assert r.arm(depth=1500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1750}) == wire.E_DEPTH_ABOVE_CEILING
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 2500}) == wire.E_DEPTH_ABOVE_CEILING
    assert wire.E_DEPTH_ABOVE_CEILING in refused(r, wire.K_START_REFUSED)


def test_rule01_permit_above_ceiling_refused(r):
    assert r.arm(depth=1750) == wire.E_PERMIT_OVER_LIMIT
    assert wire.E_PERMIT_OVER_LIMIT in refused(r, wire.K_PERMIT_REFUSED)


def test_rule01_board_cannot_raise_absolute():
    with pytest.raises(BoardError):
        make_board(ceiling_um=2750)
    with pytest.raises(BoardError):
        make_board(abs_depth_um=3000)
    assert make_board(ceiling_um=1000).ceiling_um == 1000  # tightening is fine


def test_rule01_tighter_board_ceiling_enforced():
    rr = Rig(MemFs(), board=make_board(ceiling_um=1000))
    assert rr.arm(depth=1250) == wire.E_PERMIT_OVER_LIMIT
    assert rr.arm(depth=1000) == 0
    assert rr.code(wire.T_SET_DEPTH, {"depth_um": 1250}) == wire.E_DEPTH_ABOVE_CEILING


def test_rule01_depth_target_never_above_ceiling(r):
    running(r, 1500)
    r.pen.depth.setting_um = 2500  # even if corrupted internally
    r.pen.depth.set_target(2500, r.t)
    out = r.tick()
    assert out.depth_target_um <= 1500


# ---- rule 2: grid ------------------------------------------------------------------
@pytest.mark.parametrize("um", [0, 100, 300, 1100, 1490])
def test_rule02_off_grid_refused(r, um):
    assert r.arm(depth=1500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": um}) == wire.E_DEPTH_OFF_GRID


@pytest.mark.parametrize("um", [250, 500, 750, 1000, 1250, 1500])
def test_rule02_grid_accepted(r, um):
    assert r.arm(depth=1500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": um}) == 0


def test_rule02_board_grid_cannot_be_finer():
    with pytest.raises(BoardError):
        make_board(grid_um=125)
    with pytest.raises(BoardError):
        make_board(min_depth_um=0)


# ---- rule 3: depth verification --------------------------------------------------------
def test_rule03_depth_error_faults_and_stops(r):
    running(r, 1000)
    r.plant.depth_offset = 200  # sensor reads 0.2 mm deeper than set
    for _ in range(10):
        out = r.tick()
        if r.pen.fault:
            break
    assert r.pen.fault == wire.E_FAULT_DEPTH
    assert out.motor_duty == 0 and out.depth_target_um == 0
    assert wire.E_FAULT_DEPTH in [x["code"] for x in r.log(wire.K_FAULT)]


def test_rule03_within_tolerance_keeps_running(r):
    running(r, 1000)
    r.plant.depth_offset = 140
    r.run(1000)
    assert r.pen.state == wire.S_RUNNING


def test_rule03_homing_after_fault(r):
    running(r, 1000)
    r.plant.depth_offset = 300
    r.run(100)
    assert r.pen.state in (wire.S_FAULT, wire.S_HOMING)
    r.plant.depth_offset = 0
    r.run(700)
    seen_homing = r.pen.state == wire.S_HOMING or r.pen.depth.homed
    r.run(2000)
    assert seen_homing and r.pen.state == wire.S_IDLE and r.pen.depth.homed


# ---- rule 5: session length ------------------------------------------------------------
def test_rule05_warn_at_10_min_and_stop_at_15():
    rr = Rig(MemFs())
    assert rr.code(wire.T_SET_SPEED, {"level": 0}) == 0  # 100/s: 90,000 strokes fit the cartridge
    running(rr, 500, 900)
    rr.run(600 * 1000 - 2000)
    assert wire.N_SESSION_WARN in rr.notices() or rr.pen.elapsed_ms < 600000
    rr.run(3000)
    assert wire.N_SESSION_WARN in rr.notices()
    assert rr.log(wire.K_SESSION_WARN)
    assert rr.pen.state == wire.S_RUNNING
    rr.run(300 * 1000 - 3000)
    assert rr.pen.state == wire.S_RUNNING
    rr.run(2000)
    assert rr.pen.state == wire.S_FINISHED and rr.pen.out.motor_duty == 0
    assert wire.N_SESSION_CAP in rr.notices()
    assert 899000 <= rr.pen.elapsed_ms <= 900010
    ends = rr.log(wire.K_SESSION_END)
    assert ends[-1]["code"] == wire.E_SESSION_CAP


def test_rule05_permit_over_cap_refused(r):
    assert r.arm(duration=901) == wire.E_PERMIT_OVER_LIMIT


def test_rule05_pause_does_not_count():
    rr = Rig(MemFs())
    running(rr, 500, 900)
    rr.plant.inp.contact = False
    rr.run(20000)
    assert rr.pen.elapsed_ms < 2000


# ---- rule 6: interval ---------------------------------------------------------------------
@pytest.mark.parametrize(("depth", "hours"), [(250, 24), (500, 72), (750, 72), (1000, 168), (1500, 168)])
def test_rule06_interval_lockout(depth, hours):
    rr = Rig(MemFs())
    running(rr, depth, 600)
    assert rr.end_session() == 0
    rr.run(200)
    end = rr.pen.store.c["last_end"]
    assert rr.arm(depth=depth) == 0
    rt, _, f = rr.req(wire.T_START)
    assert rt == wire.T_NACK and f["error"] == wire.E_INTERVAL_LOCKOUT
    assert f["detail"] == end + hours * 3600
    assert wire.E_INTERVAL_LOCKOUT in refused(rr, wire.K_START_REFUSED)
    # just before the lift: still locked; at the lift: allowed (with a fresh cartridge).
    # The pen runs on meanwhile: its clock and its own running count both move.
    rr.code(wire.T_STOP)
    rr.idle(hours * 3600 - 120)
    assert rr.arm(depth=depth) == 0
    assert rr.code(wire.T_START) == wire.E_INTERVAL_LOCKOUT
    from plant import cartridge

    rr.plant.inp.cartridge = None
    rr.run(50)
    rr.plant.inp.cartridge = cartridge(cid=b"\x2d\x09\x09\x09\x09\x09\x09\x09")
    rr.run(50)
    rr.idle(120)
    assert rr.pen.clock() >= end + hours * 3600
    assert rr.arm(depth=depth) == 0
    assert rr.code(wire.T_SET_DEPTH, {"depth_um": depth}) == 0
    assert rr.code(wire.T_START) == 0


def test_rule06_intervals_table():
    assert safety.interval_s(1000) == 7 * 86400
    assert safety.interval_s(999) == 72 * 3600
    assert safety.interval_s(500) == 72 * 3600
    assert safety.interval_s(499) == 24 * 3600


def test_rule06_last_session_survives_reboot_and_clock_rollback():
    fs = MemFs()
    rr = Rig(fs)
    running(rr, 1000)
    rr.end_session()
    rr.run(100)
    rr.boot()
    rr.req(wire.T_SET_TIME, signed_time(T0 - 86400 * 30))  # clock set back a month
    rr.run(1500)
    st = rr.status()
    assert st["last_session_end"] > 0 and st["last_session_depth_um"] == 1000
    assert rr.arm(depth=1000, issued=T0 - 86400 * 30 - 5, expires=T0 - 86400 * 30 + 600) == 0
    assert rr.code(wire.T_START) == wire.E_INTERVAL_LOCKOUT


# ---- rule 8: stroke-rate window ---------------------------------------------------------------
def test_rule08_rate_held_in_window(r):
    running(r)
    rates = []
    for _ in range(200):
        r.tick()
        rates.append(r.pen.motor.rate_x10)
    assert all(1000 <= x <= 1500 for x in rates)
    assert abs(sum(rates) / len(rates) - 1170) < 40


def test_rule08_drift_stops_motor(r):
    running(r)
    r.plant.extra_load_ma = 700  # the cam binds: the rate sags out of the window at once
    for _ in range(200):
        out = r.tick()
        if r.pen.fault:
            break
    assert r.pen.fault == wire.E_FAULT_RATE_DRIFT and out.motor_duty == 0


def test_rule08_overspeed_drift_stops_motor(r):
    running(r)
    r.plant.forced_sps = 170.0  # runaway: the loop cannot bring it down to 150/s
    for _ in range(300):
        out = r.tick()
        if r.pen.fault:
            break
    # the hall rate is not what the duty and current give: caught before the drift
    assert r.pen.fault == wire.E_FAULT_STROKE_MISMATCH and out.motor_duty == 0


def test_rule08_speed_levels_within_window(r):
    assert r.code(wire.T_SET_SPEED, {"level": 3}) == 0
    assert r.code(wire.T_SET_SPEED, {"level": 4}) == wire.E_SPEED_OUT_OF_RANGE
    with pytest.raises(BoardError):
        make_board(speed_levels_sps=[90, 117])
    with pytest.raises(BoardError):
        make_board(rate_max_sps=160)


# ---- rule 9: stall / overcurrent / overtemperature in one tick ------------------------------------
def test_rule09_overcurrent_stops_same_tick(r):
    running(r)
    r.plant.inp.motor_ma = 1300
    r.plant.inp.hall_count += 1
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_OVERCURRENT


def test_rule09_overtemp_stops_same_tick(r):
    running(r)
    r.plant.inp.temp_c10 = 451
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_OVERTEMP


def test_rule09_locked_rotor_stops_same_tick(r):
    running(r)
    r.plant.stall = True  # locked rotor from the next plant step: current, no stroke
    r.tick()
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_STALL


def test_rule09_silent_stall_within_stall_ms(r):
    running(r)
    r.plant.stall = True
    r.plant.stall_ma = 800
    for i in range(20):  # noqa: B007 - the tick count is checked below
        out = r.tick()
        if r.pen.fault:
            break
    assert r.pen.fault == wire.E_FAULT_STALL and out.motor_duty == 0
    assert (i + 1) * 10 <= r.board.stall_ms + 20


def test_rule09_spinup_without_pulses_is_stall(r):
    r.plant.stall = True
    r.plant.stall_ma = 500
    assert r.start_session() == 0
    r.run(600)
    assert r.pen.fault == wire.E_FAULT_STALL and r.pen.out.motor_duty == 0


# ---- rule 10: contact gating ---------------------------------------------------------------------
def test_rule10_no_contact_refuses_start(r):
    r.plant.inp.contact = False
    assert r.arm() == 0
    assert r.code(wire.T_START) == wire.E_NO_CONTACT


def test_rule10_contact_loss_pauses_and_retracts_same_tick(r):
    running(r)
    r.plant.inp.contact = False
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and out.depth_target_um == 0
    assert r.pen.state == wire.S_PAUSED
    assert wire.N_PAUSED_NO_CONTACT in [f["code"] for t, f in out.events if t == wire.T_EV_NOTICE]


def test_rule10_no_auto_resume(r):
    running(r)
    r.plant.inp.contact = False
    r.run(100)
    r.plant.inp.contact = True
    r.run(1000)
    assert r.pen.state == wire.S_PAUSED and r.max_duty > 0 and r.pen.out.motor_duty == 0
    assert r.code(wire.T_START) == 0
    r.run(500)
    assert r.pen.state == wire.S_RUNNING


# ---- rule 11: charging -------------------------------------------------------------------------------
def test_rule11_charging_refuses_start(r):
    r.plant.inp.charging = True
    assert r.arm() == 0
    assert r.code(wire.T_START) == wire.E_CHARGING
    assert wire.E_CHARGING in refused(r, wire.K_START_REFUSED)


def test_rule11_charging_stops_same_tick(r):
    running(r)
    r.plant.inp.charging = True
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_CHARGING


# ---- rule 12: battery reserve ------------------------------------------------------------------------
def test_rule12_low_battery_refuses_start(r):
    r.plant.inp.battery_pct = 19
    assert r.arm(duration=60) == 0
    assert r.code(wire.T_START) == wire.E_BATTERY_LOW


def test_rule12_battery_must_cover_permitted_duration(r):
    need = safety.battery_needed(r.board, 900)
    assert need > r.board.battery_reserve_pct
    r.plant.inp.battery_pct = need - 1
    assert r.arm(duration=900) == 0
    _rt, _, f = r.req(wire.T_START)
    assert f["error"] == wire.E_BATTERY_LOW and f["detail"] == need
    assert r.pen.state == wire.S_IDLE  # the refusal ended the permit: a new decision
    r.plant.inp.battery_pct = need
    assert r.arm(duration=900) == 0
    assert r.code(wire.T_START) == 0


def test_rule12_board_cannot_lower_reserve():
    with pytest.raises(BoardError):
        make_board(battery_reserve_pct=10)


# ---- rules 13-15: cartridge -----------------------------------------------------------------------
def swap(r, cart):
    r.plant.inp.cartridge = None
    r.run(50)
    r.plant.inp.cartridge = cart
    r.run(50)


def test_rule13_used_cartridge_refused_after_finished_session(r):
    running(r, 250)
    r.end_session()
    r.run(100)
    assert r.plant.inp.cartridge["finished"] is True  # written back to the EEPROM
    r.pen.store.c["last_end"] = 0  # take the interval out of the picture
    r.pen.store.c["lock"] = 0
    assert r.arm(depth=250) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 250}) == 0
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_USED


def test_rule13_used_cartridge_refused_even_if_eeprom_not_written(r):
    running(r, 250)
    r.end_session()
    r.run(100)
    r.plant.inp.cartridge["finished"] = False  # the EEPROM write was lost
    r.pen.store.c["last_end"] = 0
    r.pen.store.c["lock"] = 0
    assert r.arm(depth=250) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 250}) == 0
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_USED


def test_rule13_reinserted_cartridge_refused(r):
    running(r, 250)
    r.plant.inp.contact = False
    r.run(50)  # paused mid-session
    cart = r.plant.inp.cartridge
    swap(r, cart)
    assert r.pen.cart_code == wire.E_CARTRIDGE_REINSERTED
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_REINSERTED


def test_rule13_cartridge_used_elsewhere_refused(r):
    from plant import cartridge

    swap(r, cartridge(cid=b"\x2d\x05\x05\x05\x05\x05\x05\x05", first_use=T0 - 100, used=500))
    assert r.arm() == 0
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_REINSERTED


def test_rule13_unused_cartridge_may_be_reseated(r):
    cart = r.plant.inp.cartridge
    swap(r, cart)
    assert r.start_session() == 0


def test_rule14_worn_cartridge_refused(r):
    from plant import cartridge

    swap(r, cartridge(cid=b"\x2d\x06\x06\x06\x06\x06\x06\x06", rated=1000, used=1000))
    assert r.arm() == 0
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_WORN


def test_rule14_wear_budget_stops_running_session(r):
    from plant import cartridge

    swap(r, cartridge(cid=b"\x2d\x07\x07\x07\x07\x07\x07\x07", rated=90000, needles=12))
    running(r)  # 600 s x 150/s = 90,000: the budget covers the permit at START
    # strokes the START check could not foresee (a count above the window): the
    # running count still locks the cartridge when its rated strokes are reached
    r.pen.wear._rec(cart_hex(r.pen.cart))[0] = 90000 - 500
    r.run(6000)
    assert r.pen.state == wire.S_FINISHED and r.pen.out.motor_duty == 0
    assert r.log(wire.K_SESSION_END)[-1]["code"] == wire.E_CARTRIDGE_WORN
    w = r.req(wire.T_GET_WEAR)[2]
    assert w["strokes_used"] >= 90000 and w["hp_punctures"] == w["hp_strokes"] * 12
    assert r.plant.writes[-1]["used"] >= 90000


def test_rule14_rated_capped_by_board(r):
    from plant import cartridge

    swap(r, cartridge(cid=b"\x2d\x08\x08\x08\x08\x08\x08\x08", rated=10**7, used=150000))
    assert r.pen.cart_code == wire.E_CARTRIDGE_WORN


def test_rule15_expired_cartridge_refused(r):
    from plant import cartridge

    swap(r, cartridge(cid=b"\x2d\x0a\x0a\x0a\x0a\x0a\x0a\x0a", expiry=T0 - 1))
    assert r.arm() == 0
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_EXPIRED
    assert wire.E_CARTRIDGE_EXPIRED in refused(r, wire.K_START_REFUSED)


def test_rule15_shelf_life_from_manufacture(r):
    from plant import cartridge

    c = cartridge(cid=b"\x2d\x0b\x0b\x0b\x0b\x0b\x0b\x0b", expiry=T0 + 10**8)
    c["made"] = T0 - 63072000
    swap(r, c)
    assert r.pen.cart_code == wire.E_CARTRIDGE_EXPIRED


# ---- rule 20: permit required ------------------------------------------------------------------------
def test_rule20_no_permit_no_start(r):
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    r.run(500)
    assert r.max_duty == 0


def test_rule20_permit_consumed_by_session(r):
    running(r, 250)
    r.end_session()
    r.run(100)
    r.pen.store.c["last_end"] = 0
    assert r.code(wire.T_START) == wire.E_NOT_ARMED


def test_rule20_expired_permit_refused_at_start(r):
    assert r.arm(expires=T0 + 5) == 0
    r.run(6000)
    assert r.code(wire.T_START) == wire.E_PERMIT_EXPIRED


def test_rule20_duration_limited_by_permit(r):
    running(r, 500, 60)
    r.run(60000)
    assert r.pen.state == wire.S_FINISHED and r.pen.out.motor_duty == 0
    assert r.pen.elapsed_ms <= 60010


def test_rule20_standalone_disabled_by_default(r):
    r.plant.inp.button = True
    r.run(100)
    r.plant.inp.button = False
    r.run(500)
    assert r.max_duty == 0 and r.pen.state == wire.S_IDLE


def test_rule20_standalone_when_enabled_limited():
    b = make_board(standalone={"enabled": True, "depth_um": 500, "duration_s": 600})
    rr = Rig(MemFs(), board=b)
    rr.pen.depth.setting_um = 1500
    rr.plant.inp.button = True
    rr.run(100)
    rr.plant.inp.button = False
    rr.run(1000)
    assert rr.pen.state == wire.S_RUNNING
    assert rr.pen.depth.target_um <= 500
    assert rr.code(wire.T_SET_DEPTH, {"depth_um": 750}) == wire.E_DEPTH_ABOVE_PERMIT
    with pytest.raises(BoardError):
        make_board(standalone={"enabled": True, "depth_um": 750, "duration_s": 600})
    with pytest.raises(BoardError):
        make_board(standalone={"enabled": True, "depth_um": 500, "duration_s": 900})


# ---- rule 21: fail safe -------------------------------------------------------------------------------
def test_rule21_link_loss_stops_and_retracts(r):
    running(r)
    r.plant.inp.link_up = False
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and out.depth_target_um == 0 and r.pen.state == wire.S_PAUSED
    assert r.log(wire.K_LINK_LOST)
    r.plant.inp.link_up = True
    r.run(1000)
    assert r.pen.out.motor_duty == 0  # nothing resumes on its own
    assert r.code(wire.T_START) == 0


def test_rule21_start_while_the_link_is_down_is_refused(r):
    # A START queued just before the link went must not run with nobody connected.
    assert r.arm(depth=1000) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1000}) == 0
    r.plant.inp.link_up = False
    r.run(20)
    assert r.code(wire.T_START) == wire.E_FAULT_LINK_LOST
    r.run(500)
    assert r.max_duty == 0 and r.pen.state != wire.S_RUNNING
    assert wire.E_FAULT_LINK_LOST in refused(r, wire.K_START_REFUSED)
    r.plant.inp.link_up = True
    r.run(20)
    assert r.code(wire.T_START) == 0


def test_rule21_reset_mid_session_stops_and_locks_interval():
    fs = MemFs()
    rr = Rig(fs)
    running(rr, 1000)
    rr.boot(reset_code=wire.E_FAULT_WATCHDOG)
    out = rr.tick()
    assert out.motor_duty == 0 and out.depth_target_um == 0 and out.home_seek
    rr.req(wire.T_SET_TIME, signed_time(T0 + 10))
    rr.run(1500)
    assert rr.pen.state == wire.S_IDLE and rr.max_duty > 0
    end = rr.log(wire.K_SESSION_END)[-1]
    assert end["flags"] == 1 and end["code"] == wire.E_FAULT_WATCHDOG
    assert rr.code(wire.T_START) == wire.E_NOT_ARMED
    assert rr.arm() == 0
    assert rr.code(wire.T_START) == wire.E_INTERVAL_LOCKOUT


def test_rule21_watchdog_fed_only_while_healthy(r):
    out = r.tick()
    assert out.feed_wdt
    running(r)
    r.pen.motor.update = None  # an internal error in the control path
    out = r.tick()
    assert not out.feed_wdt and out.motor_duty == 0
    out = r.tick()
    assert not out.feed_wdt and out.motor_duty == 0  # latched until the reset


def test_rule21_gate_catches_inconsistent_state(r):
    running(r)
    r.pen.permit = None  # the state machine lost its permit but thinks it runs
    out = r.tick()
    assert out.motor_duty == 0 and not out.feed_wdt


def test_rule21_late_tick_while_running_faults(r):
    running(r)
    out = r.pen.tick(r.t + 500, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_WATCHDOG


def test_rule21_fault_loop_locks(r):
    r.plant.depth_offset = 400  # a broken depth sensor: every re-homing ends in a fault
    r.run(30000)
    assert r.pen.state == wire.S_LOCKED
    assert len(r.log(wire.K_FAULT)) == 5
    assert r.code(wire.T_START) == wire.E_LOCKED
    assert r.arm() == wire.E_LOCKED


def test_board_loaded_from_repo_file():
    from rig import board_doc

    b = Board(board_doc())
    assert b.ceiling_um == 1500 and b.abs_depth_um == 2500 and b.tick_ms == 10
    assert b.standalone_enabled is False
