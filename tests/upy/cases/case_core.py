# The core inside MicroPython: a whole session through the handler, refusals,
# stops within one tick, and a reboot in the middle of a session.
from memfs import MemFs
from pen import wire
from rig import Rig, board_doc

board_doc("/boards/pen-s3-revb.json")


def test_happy_path():
    r = Rig(MemFs())
    assert r.pen.state == wire.S_IDLE
    assert r.start_session(1000, 600) == 0
    r.run(2000)
    st = r.status()
    assert st["state"] == wire.S_RUNNING and st["strokes"] > 150
    assert 1000 <= r.pen.motor.rate_x10 <= 1400
    assert r.end_session() == 0
    r.run(500)
    assert r.status()["state"] == wire.S_FINISHED
    kinds = [x["kind"] for x in r.log()]
    assert wire.K_SESSION_START in kinds and wire.K_SESSION_END in kinds


def test_refusals():
    r = Rig(MemFs())
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    assert r.arm(depth=1750) == wire.E_PERMIT_OVER_LIMIT
    assert r.arm() == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1100}) == wire.E_DEPTH_OFF_GRID
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1250}) == wire.E_DEPTH_ABOVE_PERMIT
    r.plant.inp.charging = True
    assert r.code(wire.T_START) == wire.E_CHARGING
    r.plant.inp.charging = False
    r.plant.inp.contact = False
    assert r.code(wire.T_START) == wire.E_NO_CONTACT
    codes = [x["code"] for x in r.log(wire.K_START_REFUSED)]
    assert wire.E_CHARGING in codes and wire.E_NO_CONTACT in codes


def _running():
    r = Rig(MemFs())
    assert r.start_session(1000, 600) == 0
    r.run(1500)
    assert r.pen.state == wire.S_RUNNING and r.pen.out.motor_duty > 0
    return r


def test_stall_stops_in_one_tick():
    r = _running()
    r.plant.stall = True  # locked rotor: no strokes, locked-rotor current
    out = r.tick()
    out = r.tick()
    assert out.motor_duty == 0
    assert r.pen.fault in (wire.E_FAULT_STALL, wire.E_FAULT_OVERCURRENT)
    r = _running()
    r.plant.stall = True
    r.plant.stall_ma = 900  # current-limited jam: only the missing strokes show it
    for i in range(10):
        out = r.tick()
        if r.pen.fault:
            break
    assert r.pen.fault == wire.E_FAULT_STALL and out.motor_duty == 0
    assert i * 10 <= r.board.stall_ms + 20


def test_overcurrent_overtemp_stop_in_one_tick():
    r = _running()
    r.plant.inp.motor_ma = 1500
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_OVERCURRENT
    r = _running()
    r.plant.inp.temp_c10 = 460
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and r.pen.fault == wire.E_FAULT_OVERTEMP


def test_contact_loss_pauses_in_one_tick():
    r = _running()
    r.plant.inp.contact = False
    out = r.pen.tick(r.t + 10, r.plant.inp)
    assert out.motor_duty == 0 and out.depth_target_um == 0
    assert r.pen.state == wire.S_PAUSED


def test_reboot_mid_session():
    fs = MemFs()
    r = Rig(fs)
    assert r.start_session(1000, 600) == 0
    r.run(1000)
    r.boot()  # power loss: a new Store and Pen over the same files
    out = r.tick()
    assert out.motor_duty == 0 and out.home_seek and r.pen.state == wire.S_HOMING
    r.run(1500)
    assert r.pen.state == wire.S_IDLE
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    ends = r.log(wire.K_SESSION_END)
    assert ends and ends[-1]["flags"] == 1


def test_handler_malformed_and_unknown_change_nothing():
    r = Rig(MemFs())
    before = r.status()
    v = bytes([wire.PROTOCOL_VERSION])
    for frame in (v, v + b"\x05\x07\x00\x05\x00\xff", v + b"\x7e\x01\x00\x01\x00\x04",
                  v + b"\x33\x02\x00\x00\x00"):
        out = r.h.handle(frame, True)
        t, seq, f = wire.decode(out[0])
        assert t == wire.T_NACK and f["error"] != 0
    assert r.status() == before
