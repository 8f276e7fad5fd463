# A session stopped in its first 30 s of needling (issue 14 item 5): it pauses and
# can be started again under its permit within 10 minutes, as one session; if it is
# not, it ends and counts with its real depth and needling time (rule 6). Any
# paused session ends when its 10 minutes run out.
from pen import safety, wire

WINDOW_S = 600  # the 10 minutes (not read from the firmware it checks)


def early_stop(r, depth=500, run_ms=900):
    assert r.start_session(depth, 600) == 0
    r.run(run_ms)
    assert r.code(wire.T_STOP) == 0
    r.run(100)


def test_a_stop_in_the_first_30_s_pauses_and_says_for_how_long(r):
    early_stop(r)
    st = r.status()
    assert st["state"] == wire.S_PAUSED and st["resume_left_s"] == WINDOW_S
    assert r.max_duty == 0 or r.pen.out.motor_duty == 0
    assert r.pen.out.depth_target_um == 0  # retracted
    stopped = r.log(wire.K_SESSION_STOPPED)[-1]
    assert stopped["depth_um"] == 500 and 800 <= stopped["a"] <= 1100
    assert not r.log(wire.K_SESSION_END)
    assert wire.N_PAUSED_STOPPED in [f["code"] for t, f in r.events if t == wire.T_EV_NOTICE]
    assert r.status()["last_session_end"] == 0  # no session has ended: no interval yet


def test_started_again_it_is_one_session_with_its_whole_needling_time(r):
    early_stop(r)
    r.run(60_000)
    assert r.code(wire.T_START) == 0
    r.run(40_000)
    assert r.pen.state == wire.S_RUNNING
    assert r.code(wire.T_STOP) == 0  # past 30 s: it ends
    r.run(100)
    assert r.pen.state == wire.S_FINISHED
    assert len(r.log(wire.K_SESSION_START)) == 1
    end = r.log(wire.K_SESSION_END)
    assert len(end) == 1 and end[0]["code"] == 0 and 40_000 <= end[0]["a"] <= 41_500


def test_not_started_again_it_ends_after_10_min_and_counts(r):
    early_stop(r)
    r.run((WINDOW_S - 1) * 1000)
    assert r.pen.state == wire.S_PAUSED and r.status()["resume_left_s"] == 1
    r.run(1100)
    assert r.pen.state == wire.S_FINISHED
    end = r.log(wire.K_SESSION_END)[-1]
    assert end["code"] == wire.E_PAUSE_EXPIRED
    assert end["depth_um"] == 500 and 800 <= end["a"] <= 1100  # its real time and depth
    st = r.status()
    assert st["last_session_end"] == r.pen.clock()
    assert st["lockout_until"] == st["last_session_end"] + safety.interval_s(500)
    assert r.code(wire.T_START) == wire.E_NOT_ARMED  # the permit is spent


def test_a_second_stop_ends_the_paused_session_at_once(r):
    early_stop(r)
    assert r.code(wire.T_STOP) == 0
    r.run(100)
    assert r.pen.state == wire.S_FINISHED
    assert r.log(wire.K_SESSION_END)[-1]["code"] == 0
    assert r.status()["resume_left_s"] == 0


def test_a_stop_after_30_s_of_needling_ends_the_session(r):
    assert r.start_session(500, 600) == 0
    r.run(31_000)
    assert r.code(wire.T_STOP) == 0
    assert r.pen.state == wire.S_FINISHED and not r.log(wire.K_SESSION_STOPPED)


def test_on_a_new_link_only_the_key_holder_resumes_within_both_permits(r):
    early_stop(r, depth=750)
    r.plant.inp.link_epoch += 1  # the host's command ended; a new one connects
    r.run(100)
    assert r.code(wire.T_START) == wire.E_NOT_ARMED  # the old link's permit
    assert r.arm(depth=1000, duration=900) == 0  # a rebind: the lower of both permits
    assert r.pen.state == wire.S_PAUSED and r.status()["permit_depth_um"] == 750
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1000}) == wire.E_DEPTH_ABOVE_PERMIT
    assert r.code(wire.T_START) == 0
    r.run(1000)
    assert r.pen.state == wire.S_RUNNING and len(r.log(wire.K_SESSION_START)) == 1
    assert r.log(wire.K_ARMED)[-1]["flags"] == 2  # flagged as a rebind


def test_a_power_cut_while_paused_closes_the_session_with_its_real_time(r):
    early_stop(r)
    r.boot(reset_code=1)
    r.run(100)
    end = r.log(wire.K_SESSION_END)[-1]
    assert end["flags"] == 1 and end["depth_um"] == 500 and 800 <= end["a"] <= 1100
    assert r.pen.state != wire.S_PAUSED


def test_any_pause_ends_when_its_window_runs_out(r):
    # no contact, 5 min into a session: paused; nobody starts it again
    assert r.start_session(500, 900) == 0
    r.run(300_000)
    r.plant.inp.contact = False
    r.run(100)
    assert r.pen.state == wire.S_PAUSED
    r.run(WINDOW_S * 1000 + 200)
    assert r.pen.state == wire.S_FINISHED
    assert r.log(wire.K_SESSION_END)[-1]["code"] == wire.E_PAUSE_EXPIRED


def test_the_button_stops_and_starts_again_in_the_first_30_s(r):
    assert r.start_session(500, 600) == 0
    r.run(2000)
    r.plant.inp.button = True
    r.run(50)
    r.plant.inp.button = False
    r.run(100)
    assert r.pen.state == wire.S_PAUSED
    r.plant.inp.button = True
    r.run(100)
    r.plant.inp.button = False
    r.run(100)
    assert r.pen.state == wire.S_RUNNING and len(r.log(wire.K_SESSION_START)) == 1
