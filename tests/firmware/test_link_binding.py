"""An armed permit belongs to the link it came on (issue: pen hardening, finding 2).

The host arms and its link drops; a phone with no key connects and STARTs. Now
any change of the arming link (drop, new central, new authentication: the
shell's link_epoch) disarms an ARMED pen, pauses a running session, and START is
taken only from the link that armed it (the button too, under that link). A
paused session goes on only after the key holder arms it again on the new link,
within both permits.
"""

from pen import wire
from rig import Rig


def armed(r, depth=500, duration=600):
    assert r.arm(depth=depth, duration=duration) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": depth}) == 0
    assert r.pen.state == wire.S_ARMED


def new_link(r, gap_ms=100):
    # the host's link drops and another central connects and authenticates
    r.plant.inp.link_up = False
    r.run(gap_ms)
    r.plant.inp.link_epoch += 1
    r.plant.inp.link_up = True


def test_a_link_change_disarms_and_a_phone_cannot_start(r):
    armed(r)
    new_link(r)
    r.run(20)
    assert r.pen.state == wire.S_IDLE and r.pen.permit is None
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    assert r.pen.out.motor_duty == 0
    rec = r.log(wire.K_DISARMED)
    assert rec and rec[-1]["depth_um"] == 500


def test_a_reconnect_between_two_ticks_still_disarms(r):
    # drop and reconnect faster than the control loop sees link_up fall
    armed(r)
    r.plant.inp.link_epoch += 2
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    r.run(20)
    assert r.pen.state == wire.S_IDLE


def test_the_button_cannot_start_a_permit_whose_link_is_gone(r):
    armed(r)
    r.plant.inp.link_epoch += 1  # a new link, the same tick as the press
    r.plant.inp.button = True
    r.tick()
    r.plant.inp.button = False
    r.run(100)
    assert r.pen.state == wire.S_IDLE and r.pen.out.motor_duty == 0


def test_start_from_the_arming_link_still_works(r):
    armed(r)
    r.run(500)
    assert r.code(wire.T_START) == 0
    r.run(500)
    assert r.pen.state == wire.S_RUNNING


def test_a_new_central_while_running_pauses_and_cannot_resume(r):
    armed(r)
    assert r.code(wire.T_START) == 0
    r.run(1000)
    r.plant.inp.link_epoch += 1  # link_up never fell (a takeover between ticks)
    r.tick()
    assert r.pen.state == wire.S_PAUSED and r.pen.out.motor_duty == 0
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    r.run(200)
    assert r.pen.state == wire.S_PAUSED


def test_the_key_holder_arms_the_paused_session_again_within_both_permits(r):
    armed(r, depth=750, duration=600)
    assert r.code(wire.T_START) == 0
    r.run(2000)
    new_link(r)
    assert r.pen.state == wire.S_PAUSED
    elapsed = r.pen.elapsed_ms
    # a new permit on the new link: shallower and shorter than the first
    assert r.arm(depth=500, duration=300) == 0
    assert r.pen.state == wire.S_PAUSED and r.pen.session_open
    assert r.pen.permit["depth"] == 500 and r.pen.permit["s"] == 300
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 750}) == wire.E_DEPTH_ABOVE_PERMIT
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_START) == 0
    r.run(500)
    assert r.pen.state == wire.S_RUNNING and r.pen.elapsed_ms > elapsed
    assert len(r.log(wire.K_SESSION_START)) == 1  # one session, resumed
    rearm = r.log(wire.K_ARMED)[-1]
    assert rearm["flags"] == 2


def test_a_forged_permit_cannot_take_a_paused_session_over():
    r = Rig(__import__("memfs").MemFs())
    armed(r)
    assert r.code(wire.T_START) == 0
    r.run(1000)
    new_link(r)
    p = r.permit()
    p["tag"] = bytes(32)
    assert r.code(wire.T_ARM, p) == wire.E_PERMIT_BAD_TAG
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    assert r.pen.state == wire.S_PAUSED


def test_standalone_sessions_do_not_depend_on_a_link():
    from memfs import MemFs
    from rig import make_board

    board = make_board(standalone={"enabled": True, "depth_um": 500, "duration_s": 600})
    r = Rig(MemFs(), board=board)
    r.plant.inp.link_up = False
    r.plant.inp.button = True
    r.run(100)
    r.plant.inp.button = False
    r.run(100)
    assert r.pen.state == wire.S_RUNNING
    r.plant.inp.link_epoch += 1
    r.run(200)
    assert r.pen.state == wire.S_RUNNING
