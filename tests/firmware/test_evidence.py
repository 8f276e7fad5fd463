"""Evidence survives until the host has it (issue: pen hardening, finding 3).

The log ring used to drop its oldest segment whether read or not, and every
refused request wrote a record: 1,100 bad requests erased the session record and
the evidence of a clock change. Now the host acknowledges what it stored
(LOG_ACK, tagged with the permit key) and only acknowledged records are ever
overwritten; repeated refusals are counted; ordinary records leave a reserve for
evidence; a START that could not be recorded in full is refused (LOG_UNSYNCED).
"""

import pytest
from memfs import MemFs
from pen import wire
from pen.store import LogFull, Store
from rig import T0, Rig, signed_ack, signed_time

OTHER_KEY = bytes(range(50, 82))


def session(r, depth=500):
    assert r.start_session(depth, 600) == 0
    r.run(2000)
    assert r.end_session() == 0
    r.run(200)


def flood(r, n):
    # n refused requests of several kinds, as a bonded phone without the key sends
    for i in range(n):
        k = i % 3
        if k == 0:
            p = r.permit()
            p["tag"] = bytes(32)
            r.code(wire.T_ARM, p)
        elif k == 1:
            r.code(wire.T_START)
        else:
            r.code(wire.T_SET_TIME, {"unix": T0 - 86400, "nonce": b"%08d" % i, "tag": bytes(32)})
        if i % 50 == 0:
            r.run(10)


def test_1100_bad_requests_erase_neither_the_session_nor_the_clock_evidence():
    r = Rig(MemFs())
    session(r)
    assert r.code(wire.T_SET_TIME, signed_time(r.pen.clock() + 30)) == 0
    evidence = [x for x in r.log() if x["kind"] in (wire.K_SESSION_START, wire.K_SESSION_END,
                                                       wire.K_TIME_SET)]
    flood(r, 1100)
    r.idle(120)
    after = r.log()
    for rec in evidence:
        assert rec in after, f"evidence lost: {rec}"
    # the flood was counted, not written one by one
    written = [x for x in after if x["kind"] in (wire.K_PERMIT_REFUSED, wire.K_START_REFUSED)]
    counted = sum(x["a"] for x in after if x["kind"] == wire.K_REFUSALS_REPEATED)
    assert len(written) <= 6 and counted + len(written) >= 1100 - 3


def test_a_flood_spread_over_hours_never_overwrites_unacknowledged_records():
    r = Rig(MemFs())
    session(r)
    first = r.log()
    for _ in range(60):  # an hour of alternating floods, a window a minute
        flood(r, 30)
        r.idle(60)
    assert r.store.first_seq() == 1
    after = r.log()
    assert after[: len(first)] == first
    assert r.store.free_slots() >= r.store.reserve  # ordinary records left the reserve


def test_a_full_log_refuses_the_start_until_the_host_acknowledges():
    fs = MemFs()
    r = Rig(fs)
    r.store.seg_records, r.store.max_segments, r.store.reserve = 8, 4, 8
    session(r)
    # fill the ordinary space with refusals the host never read (new kinds each time)
    n = 0
    while r.store.free_slots() > r.store.reserve:
        r.code(wire.T_SET_DEPTH, {"depth_um": 260 + n})
        n += 1
        r.idle(60)
    from test_clock_attacks import fresh_cartridge

    fresh_cartridge(r)
    r.idle(4 * 86400, step_s=3600)  # the interval served
    assert r.arm(depth=500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    rt, _, f = r.req(wire.T_START)
    assert rt == wire.T_NACK and f["error"] == wire.E_LOG_UNSYNCED
    assert r.pen.state != wire.S_RUNNING
    assert r.store.first_seq() == 1  # nothing dropped
    # the host syncs and acknowledges: the space is free again
    assert r.code(wire.T_LOG_ACK, signed_ack(r.store.last_seq())) == 0
    assert r.arm(depth=500) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_START) == 0


def test_log_ack_needs_the_keys_tag_never_goes_back_nor_past_the_end(r):
    last = r.store.last_seq()
    assert r.code(wire.T_LOG_ACK, {"up_to_seq": last, "tag": bytes(32)}) == wire.E_PERMIT_BAD_TAG
    assert r.code(wire.T_LOG_ACK, signed_ack(last, key=OTHER_KEY)) == wire.E_PERMIT_BAD_TAG
    assert r.store.c["ack"] == 0
    last = r.store.last_seq()  # the refusals were logged
    assert r.code(wire.T_LOG_ACK, signed_ack(10**6)) == 0
    assert r.store.c["ack"] == last  # never past what was written
    assert r.code(wire.T_LOG_ACK, signed_ack(1)) == 0
    assert r.store.c["ack"] == last  # never backwards


def test_the_bench_uart_cannot_acknowledge():
    from pen.handler import Handler

    r = Rig(MemFs())
    bench = Handler(r.pen, bench=True)
    frame = wire.encode(wire.T_LOG_ACK, 1, signed_ack(r.store.last_seq()))
    t, _, f = wire.decode(bench.handle(frame, False)[0])
    assert t == wire.T_NACK and f["error"] == wire.E_NOT_AUTHORIZED
    assert r.store.c["ack"] == 0


def test_the_store_rotates_only_acknowledged_segments(tmp_path):
    from pen.fsio import Fs

    st = Store(Fs(str(tmp_path)), seg_records=4, max_segments=3, reserve=0)
    for _ in range(12):
        st.append(wire.K_ARMED)
    with pytest.raises(LogFull):
        st.append(wire.K_SESSION_END)
    assert st.first_seq() == 1 and st.last_seq() == 12
    st.acknowledge(5)  # the first segment (1-4) is read; the second (5-8) is not all
    for _ in range(4):  # the freed segment's room, no more
        st.append(wire.K_SESSION_END)
    assert st.first_seq() == 5
    with pytest.raises(LogFull):
        st.append(wire.K_SESSION_END)
    assert [int.from_bytes(x[:4], "little") for x in st.read(0, 99)[2]] == list(range(5, 17))


def test_ordinary_records_leave_the_reserve_to_evidence(tmp_path):
    from pen.fsio import Fs

    st = Store(Fs(str(tmp_path)), seg_records=4, max_segments=3)
    assert st.reserve == 4
    for _ in range(8):
        st.append(wire.K_START_REFUSED, reserve=st.reserve)
    with pytest.raises(LogFull):
        st.append(wire.K_START_REFUSED, reserve=st.reserve)
    for _ in range(4):
        st.append(wire.K_FAULT)  # evidence takes the reserve
    assert st.free_slots() == 0


def test_refusals_that_find_no_room_are_counted_and_written_when_room_returns():
    r = Rig(MemFs())
    r.store.seg_records, r.store.max_segments, r.store.reserve = 8, 2, 4
    r.store.c["ack"] = 0
    n = 0
    while r.store.free_slots() > r.store.reserve:
        r.code(wire.T_SET_DEPTH, {"depth_um": 260 + n})  # a new kind each time
        n += 1
        r.idle(60)
    for i in range(20):
        r.code(wire.T_SET_DEPTH, {"depth_um": 900 + i})
        r.idle(60)
    assert r.store.c["unlogged"] > 0
    assert r.code(wire.T_LOG_ACK, signed_ack(r.store.last_seq())) == 0
    r.idle(60)
    rec = [x for x in r.log() if x["kind"] == wire.K_REFUSALS_REPEATED
           and x["code"] == wire.E_LOG_UNSYNCED]
    assert rec and rec[-1]["a"] >= 20
    assert r.store.c["unlogged"] == 0
