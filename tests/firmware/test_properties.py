"""Property: whatever the host sends and whatever the body reports, the motor never
runs without a valid permit, contact, no charger and a depth within the limits."""

from hypothesis import given, settings
from hypothesis import strategies as st
from memfs import MemFs
from pen import wire
from rig import T0, Rig, signed_time

ops = st.one_of(
    st.tuples(st.just("arm"), st.sampled_from([250, 500, 1000, 1500, 1750]),
              st.sampled_from([60, 600, 901]), st.booleans(), st.booleans()),
    st.tuples(st.just("depth"), st.sampled_from([0, 250, 500, 600, 1000, 1500, 2500])),
    st.tuples(st.just("speed"), st.integers(0, 5)),
    st.tuples(st.just("start")), st.tuples(st.just("stop")),
    st.tuples(st.just("time"), st.integers(0, 3)),
    st.tuples(st.just("contact"), st.booleans()),
    st.tuples(st.just("charging"), st.booleans()),
    st.tuples(st.just("link"), st.booleans()),
    st.tuples(st.just("battery"), st.integers(0, 100)),
    st.tuples(st.just("stall"), st.booleans()),
    st.tuples(st.just("button"), st.booleans()),
    st.tuples(st.just("run"), st.integers(1, 200)),
    st.tuples(st.just("reboot")),
)


@given(st.lists(ops, max_size=25))
@settings(max_examples=120, deadline=None)
def test_motor_never_runs_without_permit_and_contact(seq):
    r = Rig(MemFs(), home=False)
    i = r.plant.inp
    forged = dict(r.permit())
    for op in seq:
        kind = op[0]
        if kind == "arm":
            p = r.permit(depth=op[1], duration=op[2])
            if op[3]:
                p["tag"] = bytes(32)  # forged
            if op[4]:
                p = forged  # replayed
            r.code(wire.T_ARM, p)
        elif kind == "depth":
            r.code(wire.T_SET_DEPTH, {"depth_um": op[1]})
        elif kind == "speed":
            r.code(wire.T_SET_SPEED, {"level": op[1]})
        elif kind == "start":
            r.code(wire.T_START)
        elif kind == "stop":
            r.code(wire.T_STOP)
        elif kind == "time":
            r.req(wire.T_SET_TIME, signed_time(T0 + op[1] * 86400 * 4))
        elif kind == "contact":
            i.contact = op[1]
        elif kind == "charging":
            i.charging = op[1]
        elif kind == "link":
            i.link_up = op[1]
        elif kind == "battery":
            i.battery_pct = op[1]
        elif kind == "stall":
            r.plant.stall = op[1]
        elif kind == "button":
            i.button = op[1]
        elif kind == "reboot":
            r.boot()
        for _ in range(op[1] if kind == "run" else 3):
            out = r.pen.tick(r.t + 10, i)
            r.t += 10
            if out.motor_duty > 0:
                p = r.pen.permit
                assert r.pen.state == wire.S_RUNNING
                assert p is not None and not p["standalone"]
                assert i.contact and not i.charging and i.cartridge is not None
                assert out.depth_target_um <= min(p["depth"], r.board.ceiling_um)
                assert r.pen.depth.homed
            if r.pen.state != wire.S_RUNNING:
                assert out.motor_duty == 0 and out.depth_target_um == 0
            r.plant.step(out, 10)
