"""Session sequences across requests and ticks: notices raised by a request reach the
host, and a second session gets its own permitted time."""

from __future__ import annotations

import plant
from pen import wire


def _notices(r) -> list[int]:
    return [f["code"] for t, f in r.events if t == wire.T_EV_NOTICE]


def test_notices_raised_by_stop_are_handed_out_on_the_next_tick(r) -> None:
    assert r.start_session(1000, 600) == 0
    r.run(1500)
    r.events.clear()
    assert r.code(wire.T_STOP) == 0  # in the first 30 s: paused, resumable
    r.tick()
    assert _notices(r) == [wire.N_PAUSED_STOPPED]
    r.events.clear()
    assert r.code(wire.T_STOP) == 0  # a second STOP ends it
    r.tick()
    assert _notices(r) == [wire.N_SESSION_FINISHED, wire.N_PERMIT_USED]


def test_resumed_notice_after_a_pause_reaches_the_host(r) -> None:
    assert r.start_session(1000, 600) == 0
    r.run(1500)
    r.plant.inp.contact = False
    r.run(100)
    assert r.pen.state == wire.S_PAUSED
    r.plant.inp.contact = True
    r.run(100)
    r.events.clear()
    assert r.code(wire.T_START) == 0
    r.tick()
    assert wire.N_RESUMED in _notices(r)


def test_a_second_session_gets_its_own_permitted_time(r) -> None:
    assert r.start_session(500, 60) == 0
    r.run(61_000, until=lambda out: r.pen.state == wire.S_FINISHED)
    assert r.pen.state == wire.S_FINISHED
    r.idle(4 * 86400)  # past the 72 h interval lockout, by clock and by running time
    r.plant.inp.cartridge = None  # the used cartridge out, a new one in
    r.run(100)
    r.plant.inp.cartridge = plant.cartridge(cid=b"\x2d\x09\x09\x09\x09\x09\x09\x09")
    r.run(500)
    assert r.pen.remaining_s() == 0  # no permit yet
    assert r.arm(depth=500, duration=60) == 0
    assert r.pen.remaining_s() == 60
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_START) == 0  # the first session's minute does not count
    assert r.pen.state == wire.S_RUNNING
