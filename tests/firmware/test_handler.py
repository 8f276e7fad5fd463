"""Handler: decoded request -> core -> response; NACK codes; malformed frames change
nothing; events are encoded only after HELLO."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memfs import MemFs
from pen import wire
from pen.store import unpack_record
from rig import Rig


def test_hello_info_with_limits(r):
    t, _, f = r.req(wire.T_HELLO, {"proto_version": 1, "caps": 0})
    assert t == wire.T_INFO
    assert f["limits"]["ceiling_um"] == 1500 and f["limits"]["abs_depth_um"] == 2500
    assert f["limits"]["speed_levels"] == 4 and f["key_set"] == 1
    assert f["limits"]["standalone_depth_um"] == 0  # disabled on this board


def test_response_seq_and_type(r):
    frames = r.h.handle(wire.encode(wire.T_STOP, 4242, {}), True)
    t, seq, f = wire.decode(frames[0])
    assert (t, seq, f["req_type"]) == (wire.T_ACK, 4242, wire.T_STOP)


def test_unknown_type_not_supported(r):
    frame = bytes([wire.PROTOCOL_VERSION, 0x3A, 7, 0, 0, 0])
    t, seq, f = wire.decode(r.h.handle(frame, True)[0])
    assert (t, seq, f["req_type"], f["error"]) == (wire.T_NACK, 7, 0x3A, wire.E_NOT_SUPPORTED)
    t, _, f = wire.decode(r.h.handle(wire.encode(wire.T_ACK, 8, {"req_type": 1}), True)[0])
    assert f["error"] == wire.E_NOT_SUPPORTED


@pytest.mark.parametrize(("frame", "code"), [
    (b"\x01", wire.E_TRUNCATED),
    (b"\x09\x07\x01\x00\x00\x00", wire.E_BAD_VERSION),
    (bytes([wire.PROTOCOL_VERSION]) + b"\x05\x01\x00\x02\x00\x01", wire.E_TRUNCATED),
    (bytes([wire.PROTOCOL_VERSION]) + b"\x07\x01\x00\x00\x00\x00", wire.E_MALFORMED),
])
def test_malformed_nack_with_decoder_code_and_no_state_change(r, frame, code):
    assert r.arm() == 0
    before = r.status()
    n = r.store.last_seq()
    t, _, f = wire.decode(r.h.handle(frame, True)[0])
    assert t == wire.T_NACK and f["error"] == code
    assert r.status() == before and r.store.last_seq() == n


@given(st.binary(max_size=80))
@settings(max_examples=300, deadline=None)
def test_garbage_never_changes_state(data):
    r = _shared_rig()
    before = (r.pen.state, r.pen.permit, r.pen.depth.setting_um, r.store.c["key"])
    frames = r.h.handle(data, True)
    assert len(frames) == 1
    wire.decode(frames[0])
    try:
        wire.decode(data)
    except wire.WireError:
        assert (r.pen.state, r.pen.permit, r.pen.depth.setting_um, r.store.c["key"]) == before


_RIG = []


def _shared_rig():
    if not _RIG:
        _RIG.append(Rig(MemFs()))
    return _RIG[0]


def test_log_read_pages(r):
    t, _, f = r.req(wire.T_LOG_READ, {"from_seq": 0, "max_records": 255})
    assert t == wire.T_LOG_PAGE and f["first_seq"] == 1 and f["records"]
    assert len(f["records"]) <= wire.MAX_PAGE_RECORDS
    last = f["records"][-1]["seq"]
    assert f["last_seq"] == last
    _, _, f2 = r.req(wire.T_LOG_READ, {"from_seq": last + 1, "max_records": 10})
    assert f2["records"] == []
    assert f["records"][0]["kind"] == wire.K_BOOT


def test_get_wear(r):
    t, _, f = r.req(wire.T_GET_WEAR)
    assert t == wire.T_WEAR and f["cartridge"] == 1 and f["needles"] == 14
    assert f["strokes_rated"] == 150000 and f["cart_state"] == 0


def test_status_fields(r):
    t, _, f = r.req(wire.T_GET_STATUS)
    assert t == wire.T_STATUS and f["state"] == wire.S_IDLE and f["clock"] > 0


def test_events_only_after_hello():
    r = Rig(MemFs())
    r.h.hello = False
    assert r.start_session() == 0
    out = r.run(600)
    assert r.h.event_frames([(wire.T_EV_NOTICE, {"code": 1, "value": 2})]) == []
    r.req(wire.T_HELLO, {"proto_version": 1, "caps": 0})
    frames = r.h.event_frames([(wire.T_EV_NOTICE, {"code": 1, "value": 2})])
    assert wire.decode(frames[0])[0] == wire.T_EV_NOTICE
    assert out is not None


def test_telemetry_every_500ms_while_running(r):
    assert r.start_session() == 0
    r.events.clear()
    r.run(5000)
    tel = [f for t, f in r.events if t == wire.T_EV_TELEMETRY]
    assert 9 <= len(tel) <= 11
    for f in tel:
        wire.encode(wire.T_EV_TELEMETRY, 0, f)  # every event encodes
    for t, f in r.events:
        wire.encode(t, 0, f)


def test_log_records_are_wire_records(r):
    _, _, f = r.req(wire.T_LOG_READ, {"from_seq": 0, "max_records": 5})
    raw = r.store.read(0, 5)[2]
    assert [unpack_record(x) for x in raw] == f["records"]


def test_log_read_pages_are_short_while_needles_move(r):
    # A full page is about ten control ticks of work on the pen; while a session runs
    # the page is capped so that a log read cannot stretch a tick (hazard: flood).
    for i in range(200):
        r.store.append(wire.K_BOOT, 0, 0, 0, i, i)
    req = {"from_seq": 1, "max_records": wire.MAX_PAGE_RECORDS}
    assert len(r.req(wire.T_LOG_READ, req)[2]["records"]) == wire.MAX_PAGE_RECORDS
    assert r.start_session(1000, 600) == 0
    r.run(1500)
    assert r.pen.state == wire.S_RUNNING
    t, _, f = r.req(wire.T_LOG_READ, req)
    assert t == wire.T_LOG_PAGE and len(f["records"]) == wire.RUNNING_PAGE_RECORDS
    assert [x["seq"] for x in f["records"]] == list(range(1, 1 + wire.RUNNING_PAGE_RECORDS))
    assert r.end_session() == 0
    r.run(500)
    assert len(r.req(wire.T_LOG_READ, req)[2]["records"]) == wire.MAX_PAGE_RECORDS


# ---- a heap with no room (a fragmented MicroPython heap, found in the twin) ----------


def test_a_full_log_page_that_finds_no_heap_becomes_a_short_page(r, monkeypatch):
    for i in range(40):
        r.pen.store.append(wire.K_BOOT, 1_750_000_000 + i, 0, 0, i, i)
    read = r.pen.store.read
    sizes = []

    def tight(from_seq, n):
        sizes.append(n)
        if n > 8:
            raise MemoryError("memory allocation failed, allocating 4161 bytes")
        return read(from_seq, n)

    monkeypatch.setattr(r.pen.store, "read", tight)
    t, _, f = r.req(wire.T_LOG_READ, {"from_seq": 1, "max_records": 160})
    assert t == wire.T_LOG_PAGE and len(f["records"]) == 8 and sizes[-1] == 8


def test_a_read_with_no_heap_at_all_is_answered_busy_and_changes_nothing(r, monkeypatch):
    def no_heap(*_a):
        raise MemoryError("memory allocation failed")

    monkeypatch.setattr(r.pen.store, "read", no_heap)
    last = r.pen.store.last_seq()
    t, _, f = r.req(wire.T_LOG_READ, {"from_seq": 1, "max_records": 160})
    assert t == wire.T_NACK and f["error"] == wire.E_BUSY
    monkeypatch.setattr(r.pen, "status", no_heap)
    t, _, f = r.req(wire.T_GET_STATUS, {})
    assert t == wire.T_NACK and f["error"] == wire.E_BUSY
    assert r.pen.store.last_seq() == last  # nothing logged, nothing changed


def test_a_change_that_finds_no_heap_is_not_answered_the_fail_safe_takes_over(r, monkeypatch):
    def no_heap(*_a):
        raise MemoryError("memory allocation failed")

    monkeypatch.setattr(r.pen, "stop", no_heap)
    with pytest.raises(MemoryError):
        r.h.handle(wire.encode(wire.T_STOP, 5, {}), True)
