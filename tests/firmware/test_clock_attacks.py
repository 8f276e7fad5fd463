"""Rule 6 against the clock (issue: pen hardening, finding 1).

A bonded central without the permit key used to move the pen's clock: SET_TIME
(now - 4 days) after the host's link dropped mid-session, STOP, SET_TIME(now)
stored the session as ended four days ago, and the next session was allowed
minutes later. A laptop clock 73 h fast did the same through the host. Now
SET_TIME needs the key's tag and a fresh nonce, is refused while a session is
open, and the interval is also counted on the pen's own running time, so a
clock moved forward shortens nothing and a power cut keeps the later answer.
"""

from memfs import MemFs
from pen import core, safety, wire
from rig import T0, Rig, signed_time

OTHER_KEY = bytes(range(50, 82))


def running(r, depth=500, duration=600):
    assert r.start_session(depth, duration) == 0
    r.run(2000)
    assert r.pen.state == wire.S_RUNNING


def finished(r, depth=500):
    running(r, depth)
    assert r.end_session() == 0
    r.run(200)
    return r.pen.store.c["last_end"]


def fresh_cartridge(r, n=9):
    from plant import cartridge

    r.plant.inp.cartridge = None
    r.run(50)
    r.plant.inp.cartridge = cartridge(cid=b"\x2d\x0b" + bytes([n]) * 6)
    r.run(50)


def start_again(r, depth=500):
    fresh_cartridge(r)
    assert r.arm(depth=depth) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": depth}) == 0
    rt, _, f = r.req(wire.T_START)
    return (f["error"], f["detail"]) if rt == wire.T_NACK else (0, 0)


def test_set_time_without_the_keys_tag_is_refused_and_the_clock_stays(r):
    before = r.pen.clock()
    forged = signed_time(T0 - 4 * 86400, key=OTHER_KEY)  # a phone with any key but the pen's
    assert r.code(wire.T_SET_TIME, forged) == wire.E_PERMIT_BAD_TAG
    bare = dict(signed_time(T0 - 4 * 86400), tag=bytes(32))
    assert r.code(wire.T_SET_TIME, bare) == wire.E_PERMIT_BAD_TAG
    assert abs(r.pen.clock() - before) <= 1
    assert not r.log(wire.K_TIME_SET)[1:]  # only the rig's own, at boot
    assert r.refused(wire.K_PERMIT_REFUSED, wire.T_SET_TIME) == [wire.E_PERMIT_BAD_TAG] * 2


def test_a_replayed_set_time_is_refused(r):
    fields = signed_time(T0 + 100)
    assert r.code(wire.T_SET_TIME, fields) == 0
    assert r.code(wire.T_SET_TIME, dict(fields)) == wire.E_PERMIT_REPLAYED


def test_a_pen_without_a_key_takes_no_time():
    r = Rig(MemFs(), key=None, clock=0)
    assert r.code(wire.T_SET_TIME, signed_time(T0)) == wire.E_PERMIT_NO_KEY
    assert r.pen.clock() == 0


def test_set_time_is_refused_while_a_session_is_open_running_or_paused(r):
    running(r)
    assert r.code(wire.T_SET_TIME, signed_time(T0 - 4 * 86400)) == wire.E_WRONG_STATE
    r.plant.inp.link_up = False  # the host's link drops: the session pauses
    r.run(100)
    assert r.pen.state == wire.S_PAUSED
    r.plant.inp.link_up = True
    assert r.code(wire.T_SET_TIME, signed_time(T0 - 4 * 86400)) == wire.E_WRONG_STATE
    assert abs(r.pen.clock() - (T0 + 3)) <= 2


def test_the_phone_attack_no_longer_moves_the_session_end(r):
    # The host's link drops mid-session; a bonded central (no key) sends
    # SET_TIME(now - 4 days), STOP, SET_TIME(now): the session ends now.
    running(r)
    r.plant.inp.link_up = False
    r.run(100)
    r.plant.inp.link_epoch += 1
    r.plant.inp.link_up = True  # the phone
    now = r.pen.clock()
    no_key = {"unix": now - 4 * 86400, "nonce": b"phone001", "tag": bytes(32)}
    assert r.code(wire.T_SET_TIME, no_key) == wire.E_PERMIT_BAD_TAG
    assert r.code(wire.T_STOP) == 0
    assert r.code(wire.T_SET_TIME, dict(no_key, unix=now)) == wire.E_PERMIT_BAD_TAG
    assert abs(r.pen.store.c["last_end"] - now) <= 1
    assert r.status()["lockout_until"] >= now + 72 * 3600


def test_a_clock_moved_forward_by_the_key_holder_shortens_no_interval(r):
    # A laptop whose clock is 73 h fast signs a correct SET_TIME: the clock says the
    # 72 h wait is over, the pen's running count says it has just begun.
    end = finished(r, 500)
    assert r.code(wire.T_SET_TIME, signed_time(end + 73 * 3600)) == 0
    code, lift = start_again(r)
    assert code == wire.E_INTERVAL_LOCKOUT
    assert lift >= r.pen.clock() + 72 * 3600 - 60  # counted from the pen's own time
    assert r.status()["lockout_until"] == lift


def test_a_clock_moved_back_lengthens_the_interval(r):
    end = finished(r, 500)
    assert r.code(wire.T_SET_TIME, signed_time(end - 86400)) == 0
    r.idle(72 * 3600 + 120)  # the running count is served...
    code, lift = start_again(r)
    assert code == wire.E_INTERVAL_LOCKOUT  # ...the clock's answer is the later one
    assert lift == end + 72 * 3600


def test_the_interval_is_served_in_running_time_with_the_clock_untouched(r):
    finished(r, 250)
    r.idle(24 * 3600 - 120)
    assert start_again(r)[0] == wire.E_INTERVAL_LOCKOUT
    r.idle(180)
    assert start_again(r)[0] == 0


def test_after_a_power_loss_the_later_of_the_two_answers_holds():
    fs = MemFs()
    r = Rig(fs)
    end = finished(r, 500)
    r.idle(3600)  # an hour of running time is served and stored
    r.boot()  # the power is cut and back: the RTC lost (clock unset)
    r.req(wire.T_SET_TIME, signed_time(end + 73 * 3600))  # a fast laptop sets it
    r.run(1500)
    lock = r.pen.store.c["lock"]
    assert 71 * 3600 - core.LOCK_SAVE_MS // 1000 <= lock <= 71 * 3600
    code, lift = start_again(r)
    assert code == wire.E_INTERVAL_LOCKOUT and lift >= end + 73 * 3600 + 70 * 3600


def test_time_off_on_a_running_rtc_is_served_without_a_host():
    # Switched off (deep sleep, the RTC runs on): the time off counts, measured in
    # the RTC's own frame.
    fs = MemFs()
    r = Rig(fs)
    end = finished(r, 250)
    r.boot(rtc=r.pen.clock() + 24 * 3600 + 60)  # the RTC a day later
    r.run(1500)
    assert r.pen.store.c["lock"] == 0
    assert start_again(r)[0] == 0
    assert r.pen.clock() >= end + safety.interval_s(250)


def test_the_host_sees_the_later_lift_in_status_and_nack(r):
    end = finished(r, 1000)
    assert r.code(wire.T_SET_TIME, signed_time(end + 8 * 86400)) == 0
    st = r.status()
    assert st["lockout_until"] >= r.pen.clock() + 7 * 86400 - 60
    assert st["last_session_end"] == end  # the record itself is not rewritten
