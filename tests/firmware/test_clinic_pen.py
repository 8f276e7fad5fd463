# Rule 6 per patient on a clinic pen (issue 15 item 3; pen/patients.py): the
# permit names its patient by an opaque 8-byte reference; a clinic pen keeps each
# patient's last session in a bounded table and applies the interval to that
# patient only, so a second patient is treated right after the first while the
# first's early return is refused. A home pen keeps today's per-pen rule.
import json

import pytest
from memfs import MemFs
from pen import idleoff, wire
from pen.board import Board, BoardError
from plant import cartridge
from rig import T0, Rig, board_doc, signed_time

ADA = b"ada-0001"
BOB = b"bob-0002"
DAY = 86400


def clinic_board(slots=None, **top):
    doc = json.loads(json.dumps(board_doc()))
    doc["use"] = "clinic"
    if slots is not None:
        doc["limits"]["patient_slots"] = slots
    doc.update(top)
    return Board(doc)


@pytest.fixture
def clinic():
    return Rig(MemFs(), board=clinic_board())


_carts = [0]


def new_cartridge(r):
    _carts[0] += 1
    n = _carts[0]
    r.plant.inp.cartridge = None
    r.run(50)
    r.plant.inp.cartridge = cartridge(cid=b"\x2d\x43" + bytes([n & 0xFF, n >> 8]) + b"\x00\x00\x00\x01")
    r.run(50)


def session(r, patient, depth=1000, run_ms=40_000):
    # A whole session for `patient` (past the first 30 s: STOP ends it). -> START's code
    new_cartridge(r)
    assert r.code(wire.T_ARM, r.permit(depth=depth, patient=patient)) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": depth}) == 0
    code = r.code(wire.T_START)
    if code:
        return code
    r.run(run_ms)
    assert r.code(wire.T_STOP) == 0
    r.run(200)
    assert not r.pen.session_open
    return 0


def start_for(r, patient, depth=1000):
    new_cartridge(r)
    assert r.code(wire.T_ARM, r.permit(depth=depth, patient=patient)) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": depth}) == 0
    return r.code(wire.T_START)


def test_a_second_patient_right_after_the_first_and_the_first_refused(clinic):
    r = clinic
    assert session(r, ADA) == 0
    ended = r.pen.clock()
    assert session(r, BOB) == 0  # another patient: no wait
    assert start_for(r, ADA) == wire.E_INTERVAL_LOCKOUT
    assert abs(r.pen.start_detail - (ended + 7 * DAY)) <= 2  # Ada's own lift
    assert r.pen.state == wire.S_IDLE  # the refusal disarmed (a new decision is needed)
    # and STATUS tells the interval of the patient armed, not the pen's last session
    new_cartridge(r)
    assert r.code(wire.T_ARM, r.permit(depth=1000, patient=ADA)) == 0
    assert abs(r.status()["lockout_until"] - (ended + 7 * DAY)) <= 2
    assert r.code(wire.T_STOP) == 0


def test_a_home_pen_keeps_rule_6_per_pen_whatever_the_permit_names(r):
    assert r.board.patient_slots == 0
    assert session(r, ADA) == 0
    assert start_for(r, BOB) == wire.E_INTERVAL_LOCKOUT
    assert start_for(r, bytes(8)) == wire.E_INTERVAL_LOCKOUT


def test_a_clinic_pen_refuses_a_permit_that_names_nobody(clinic):
    r = clinic
    new_cartridge(r)
    assert r.code(wire.T_ARM, r.permit(depth=500)) == wire.E_PERMIT_NO_PATIENT
    assert r.pen.state == wire.S_IDLE and r.pen.permit is None
    assert r.refused(wire.K_PERMIT_REFUSED, wire.T_ARM) == [wire.E_PERMIT_NO_PATIENT]


def test_the_table_is_bounded_and_never_evicts_an_interval_in_force():
    r = Rig(MemFs(), board=clinic_board(slots=8))
    first_end = 0
    for i in range(8):
        assert session(r, b"pat-%04d" % i, depth=250) == 0  # 24 h each
        first_end = first_end or r.pen.clock()
    assert len(r.pen.store.c["pats"]) == 8
    assert start_for(r, b"pat-late", depth=250) == wire.E_PATIENTS_FULL
    assert abs(r.pen.start_detail - (first_end + DAY)) <= 2  # when the first place frees
    assert len(r.pen.store.c["pats"]) == 8
    # a patient already in the table still gets in (their own interval decides)
    r.idle(DAY + 120)
    assert session(r, b"pat-0000", depth=250) == 0
    # a day on, the other seven intervals are over: their places go to new patients
    assert session(r, b"pat-late", depth=250) == 0
    assert b"pat-late".hex() in r.pen.store.c["pats"]
    assert b"pat-0000".hex() in r.pen.store.c["pats"]  # still in force: kept
    assert len(r.pen.store.c["pats"]) <= 8


def test_a_power_cut_mid_session_locks_that_patient_and_only_them(clinic):
    r = clinic
    assert start_for(r, ADA, depth=750) == 0
    r.run(60_000)
    r.boot(reset_code=1, rtc=0)  # the power went: RTC lost
    r.req(wire.T_SET_TIME, signed_time(T0 + 3600))
    r.run(1500)
    end = r.log(wire.K_SESSION_END)[-1]
    assert end["flags"] == 1  # closed at boot
    assert r.pen.store.c["pats"][ADA.hex()][2] > 0
    assert start_for(r, ADA) == wire.E_INTERVAL_LOCKOUT
    assert session(r, BOB) == 0


def test_a_clock_moved_forward_does_not_shorten_a_patients_interval(clinic):
    r = clinic
    assert session(r, ADA) == 0
    assert r.status()["lockout_until"] == 0  # nothing armed: no patient to tell of
    assert r.req(wire.T_SET_TIME, signed_time(r.pen.clock() + 8 * DAY))[0] == wire.T_ACK
    assert start_for(r, ADA) == wire.E_INTERVAL_LOCKOUT  # the running count holds
    assert session(r, BOB) == 0


def test_a_deep_sleep_credits_each_patients_interval_by_the_rtc_and_no_more(clinic):
    r = clinic
    assert session(r, ADA) == 0  # 7 days
    ended = r.pen.clock()
    assert idleoff.save_for_sleep(r.pen)
    r.boot(rtc=r.pen.clock() + 3 * DAY)
    r.run(1500)
    left = r.pen.store.c["pats"][ADA.hex()][2]
    assert 4 * DAY - 60 <= left <= 4 * DAY
    assert start_for(r, ADA) == wire.E_INTERVAL_LOCKOUT
    assert abs(r.pen.start_detail - (ended + 7 * DAY)) <= 2


def test_a_paused_session_goes_on_only_for_its_own_patient(clinic):
    r = clinic
    assert start_for(r, ADA, depth=500) == 0
    r.run(900)
    assert r.code(wire.T_STOP) == 0  # in its first 30 s: paused
    r.run(100)
    assert r.pen.state == wire.S_PAUSED
    r.plant.inp.link_epoch += 1  # a new link
    r.run(100)
    assert r.code(wire.T_ARM, r.permit(depth=500, patient=BOB)) == wire.E_PERMIT_OTHER_PATIENT
    assert r.pen.state == wire.S_PAUSED
    assert r.code(wire.T_ARM, r.permit(depth=500, patient=ADA)) == 0
    assert r.code(wire.T_START) == 0
    r.run(40_000)
    assert r.code(wire.T_STOP) == 0
    r.run(200)
    assert len(r.log(wire.K_SESSION_START)) == 1
    assert r.pen.store.c["pats"][ADA.hex()][1] == 500


def test_the_board_says_home_or_clinic_and_a_clinic_pen_has_no_standalone_mode():
    assert Board().patient_slots == 0
    assert clinic_board().patient_slots == 64
    assert clinic_board(slots=8).patient_slots == 8
    for bad in (7, 129):
        with pytest.raises(BoardError, match="patient_slots"):
            clinic_board(slots=bad)
    with pytest.raises(BoardError, match="use"):
        clinic_board(use="school")
    doc = json.loads(json.dumps(board_doc()))
    doc["use"] = "clinic"
    doc["limits"]["standalone"] = {"enabled": True, "depth_um": 500, "duration_s": 600}
    with pytest.raises(BoardError, match="standalone"):
        Board(doc)
    assert clinic_board().limits_wire()["patient_slots"] == 64



def test_an_interval_counted_before_the_pen_became_a_clinic_pen_holds_for_everyone(r):
    # a home pen's session, then the same flash under a clinic board (rebuilt)
    assert session(r, ADA) == 0
    r.board = clinic_board()
    r.boot(rtc=r.pen.clock())
    r.run(1500)
    assert r.pen.patients is not None and r.pen.store.c["lock"] > 0
    assert start_for(r, BOB) == wire.E_INTERVAL_LOCKOUT  # the pen's own count still holds
