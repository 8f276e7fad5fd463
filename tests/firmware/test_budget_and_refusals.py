# Rule 14's budget at START (the cartridge must cover the permitted duration at the
# top of the stroke window) and what a refused START leaves armed (issue 14, items
# 4 and 6): a refusal that needs a new decision ends the permit; one the user fixes
# in a moment keeps it, and the display says what the pen waits for.
from pen import safety, wire
from pen.board import Board
from pen.wear import cart_hex
from plant import cartridge

CID = b"\x2d\x31\x32\x33\x34\x35\x36\x37"


def swap(r, cart):
    r.plant.inp.cartridge = None
    r.run(50)
    r.plant.inp.cartridge = cart
    r.run(50)


def test_the_default_rated_budget_covers_a_full_session_at_the_top_of_the_window():
    b = Board()
    assert b.cartridge_rated_strokes == 150000
    assert b.cartridge_rated_strokes >= safety.strokes_needed(b, b.session_cap_s)


def test_a_cartridge_that_cannot_cover_the_permit_is_refused_with_its_minutes_left(r):
    # 100,000 strokes (the old default rating): 15 min at 116/s would need 104,400;
    # at the top of the window 135,000. 100,000 / (150 x 60) = 11 whole minutes.
    swap(r, cartridge(cid=CID, rated=100000))
    assert r.pen.cart_code == 0  # not worn yet: only too short for this permit
    assert r.arm(depth=500, duration=900) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    _t, _, f = r.req(wire.T_START)
    assert f["error"] == wire.E_CARTRIDGE_WORN and f["detail"] == 11
    assert r.max_duty == 0 and r.pen.state == wire.S_IDLE
    disarmed = r.log(wire.K_DISARMED)[-1]
    assert disarmed["code"] == wire.E_CARTRIDGE_WORN and disarmed["b"] == 11
    # a permit the budget covers (11 min x 150/s = 99,000) starts
    assert r.arm(depth=500, duration=660) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_START) == 0


def test_a_partly_used_cartridge_counts_only_what_is_left(r):
    swap(r, cartridge(cid=CID, used=150000 - 60 * 150 * 5 + 1))  # 1 stroke short of 5 min
    assert r.arm(depth=500, duration=300) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    _t, _, f = r.req(wire.T_START)
    assert f["error"] == wire.E_CARTRIDGE_WORN and f["detail"] == 4


def test_a_worn_out_session_end_is_logged_as_worn_not_as_time(r):
    # the running count still locks at the rated strokes (what the host must report)
    swap(r, cartridge(cid=CID, rated=150000))
    assert r.start_session(500, 600) == 0
    r.run(1000)
    r.pen.wear._rec(cart_hex(r.pen.cart))[0] = 149990  # strokes beyond the window's top
    r.run(1000)
    assert r.pen.state == wire.S_FINISHED
    assert r.log(wire.K_SESSION_END)[-1]["code"] == wire.E_CARTRIDGE_WORN


def test_refusals_that_need_a_new_decision_disarm(r):
    need = safety.battery_needed(r.board, 600)
    r.plant.inp.battery_pct = need - 1
    assert r.arm(depth=500) == 0
    assert r.code(wire.T_START) == wire.E_BATTERY_LOW
    assert r.pen.state == wire.S_IDLE and r.status()["permit_s"] == 0
    assert r.log(wire.K_DISARMED)[-1]["code"] == wire.E_BATTERY_LOW
    # a charged battery does not revive the old permit
    r.plant.inp.battery_pct = 100
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    swap(r, cartridge(cid=CID, finished=True))  # a used cartridge
    assert r.arm(depth=500) == 0
    assert r.code(wire.T_START) == wire.E_CARTRIDGE_USED
    assert r.pen.state == wire.S_IDLE


def test_refusals_fixed_in_a_moment_keep_the_permit_and_show_what_the_pen_waits_for(r):
    assert r.arm(depth=500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    r.plant.inp.contact = False
    assert r.code(wire.T_START) == wire.E_NO_CONTACT
    assert r.pen.state == wire.S_ARMED
    r.run(300)
    assert r.pen.out.display.split("\n")[0].startswith("ARMED")
    assert "waits: no contact" in r.pen.out.display
    r.plant.inp.cartridge = None
    r.run(300)
    assert r.code(wire.T_START) == wire.E_NO_CARTRIDGE and r.pen.state == wire.S_ARMED
    assert "waits: no cartridge" in r.pen.out.display
    swap(r, cartridge(cid=CID))
    r.plant.inp.contact = True
    r.run(300)
    assert "waits" not in r.pen.out.display
    assert r.code(wire.T_START) == 0 and r.pen.state == wire.S_RUNNING
