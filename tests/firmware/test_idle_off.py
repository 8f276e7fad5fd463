"""Auto power-off (issue 14 item 7): the policy of pen/idleoff.py over the core.

An idle pen with nobody around is due to sleep after the board's idle_off_s; an
open or paused session (the whole pause window), an armed permit, a central
connected, the pairing window, the charger and the button keep it awake and start
the countdown again. What it stores before sleeping lets the next boot credit the
time asleep off rule 6's interval by the RTC, which counts on in deep sleep, and
no more: the interval is not shortened by sleeping.
"""

from pen import core, wire
from pen.idleoff import IdleOff, save_for_sleep, why_awake
from rig import T0

DAY = 86400


def _due_after(r, idle, ms, connected=False):
    # Tick like pen/app.py: -> the time (ms from now) the pen was first due to sleep.
    t0 = r.t
    for _ in range(ms // 10):
        r.tick()
        reason = why_awake(r.pen, r.plant.inp, connected, False)
        if idle.due(r.pen.now_ms, reason, r.plant.inp.cartridge is not None):
            return r.t - t0
    return None


def test_an_idle_pen_is_due_to_sleep_after_the_boards_idle_off_s(r):
    assert r.board.idle_off_s == 600  # hardware/boards/pen-s3-revb.json
    assert r.pen.state == wire.S_IDLE
    idle = IdleOff(r.board.idle_off_s)
    at = _due_after(r, idle, 700_000)
    assert at is not None and 600_000 <= at <= 600_020, at


def test_a_paused_session_keeps_the_pen_awake_for_the_whole_pause_window(r):
    assert r.start_session(500, 600) == 0
    r.run(5000)
    assert r.code(wire.T_STOP) == 0
    assert r.pen.state == wire.S_PAUSED and r.pen.session_open
    idle = IdleOff(r.board.idle_off_s)
    at = _due_after(r, idle, 1_300_000)
    # not within the window; the countdown starts when the window has run out
    assert at is not None and at >= core.PAUSE_WINDOW_MS + 600_000 - 20, at
    assert not r.pen.session_open  # ended as PAUSE_EXPIRED, not lost


def test_the_pairing_window_charger_button_permit_and_a_central_keep_it_awake(r):
    inp = r.plant.inp
    r.pen.open_pairing()
    assert why_awake(r.pen, inp, False, False) == "pairing"
    r.run(core.PAIR_WINDOW_MS + 10)
    assert why_awake(r.pen, inp, False, False) == ""
    assert why_awake(r.pen, inp, True, False) == "connected"
    assert why_awake(r.pen, inp, False, True) == "activity"
    inp.charging = True
    assert why_awake(r.pen, inp, False, False) == "charging"
    inp.charging = False
    inp.button = True
    assert why_awake(r.pen, inp, False, False) == "button"
    inp.button = False
    assert r.arm(depth=500) == 0
    assert why_awake(r.pen, inp, False, False) != ""
    # and each of them starts the countdown again
    idle = IdleOff(r.board.idle_off_s)
    assert not idle.due(0, "", True)
    assert not idle.due(599_000, "charging", True)
    assert not idle.due(1_198_000, "", True)
    assert idle.due(1_199_000, "", True)


def test_a_cartridge_put_in_or_taken_out_starts_the_countdown_again():
    idle = IdleOff(600)
    assert not idle.due(0, "", True)
    assert not idle.due(500_000, "", False)  # taken out
    assert not idle.due(1_099_000, "", False)
    assert idle.due(1_100_000, "", False)


def _ended_session(r, depth):
    assert r.start_session(depth, 600) == 0
    r.run(40_000)  # past the first 30 s: STOP ends it
    assert r.code(wire.T_STOP) == 0
    r.run(200)
    assert not r.pen.session_open
    return r.pen.lockout_until()


def test_sleeping_does_not_shorten_the_interval(r):
    lift = _ended_session(r, 1000)  # 7 days (rule 6)
    r.idle(120, step_s=1)  # counted down in RAM, not yet stored (core.LOCK_SAVE_MS)
    assert r.pen.lockout_until() == lift
    assert save_for_sleep(r.pen)
    slept_at = r.pen.clock()
    # deep sleep for 3 days: the RTC counts on; RAM is lost; a new boot
    r.boot(rtc=slept_at + 3 * DAY)
    r.run(1500)
    assert abs(r.pen.lockout_until() - lift) <= 1, (r.pen.lockout_until(), lift)
    assert r.pen.store.c["lock"] >= 4 * DAY - 130
    assert r.start_session(1000, 600) == wire.E_INTERVAL_LOCKOUT
    assert r.pen.start_detail >= lift - 1


def test_a_pen_that_never_had_its_clock_set_counts_no_time_asleep():
    from memfs import MemFs
    from rig import Rig

    r = Rig(MemFs(), clock=0)
    r.pen.store.c["lock"] = 3 * DAY  # an interval to serve, counted by running time
    assert save_for_sleep(r.pen)
    assert r.pen.store.c["lock_at"] == 0
    r.boot(rtc=T0 + 3 * DAY)  # whatever the RTC says after the sleep
    assert r.pen.store.c["lock"] == 3 * DAY  # nothing credited: longer, never shorter
