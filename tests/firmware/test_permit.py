"""Permits (rule 20): HMAC-SHA256 by hand equals CPython's hmac; every refusal has
its code and is logged; nonces are single use, persistent and bounded."""

import hashlib
import hmac
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from memfs import MemFs
from pen import wire
from pen.permit import body, equal, hmac_sha256
from rig import KEY, T0, Rig, signed_time


@given(st.binary(max_size=200), st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_hmac_equals_cpython(key, msg):
    assert hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_tag_over_the_packed_body():
    p = {"max_depth_um": 500, "max_duration_s": 900, "issued_at": 1, "expires_at": 2,
         "nonce": b"12345678", "patient": b"patient1"}
    assert body(p) == struct.pack("<HHII8s8s", 500, 900, 1, 2, b"12345678", b"patient1")
    assert len(body(p)) == 28


@given(st.binary(min_size=1, max_size=40), st.binary(min_size=1, max_size=40))
def test_equal_matches_eq(a, b):
    assert equal(a, b) == (a == b)


def _host_permit(key=KEY, **kw):
    # signed with CPython's hmac, as the host does
    p = {"max_depth_um": 1000, "max_duration_s": 600, "issued_at": T0 - 5,
         "expires_at": T0 + 600, "nonce": b"host0001", "patient": bytes(8)}
    p.update(kw)
    p["tag"] = hmac.new(key, body(p), hashlib.sha256).digest()
    return p


def refusals(r):
    return r.refused(wire.K_PERMIT_REFUSED, wire.T_ARM)


def test_host_signed_permit_accepted(r):
    assert r.code(wire.T_ARM, _host_permit()) == 0
    assert r.status()["state"] == wire.S_ARMED
    assert r.log(wire.K_ARMED)


def test_replay_refused_and_persisted():
    fs = MemFs()
    r = Rig(fs)
    p = _host_permit()
    assert r.code(wire.T_ARM, p) == 0
    assert r.code(wire.T_ARM, p) == wire.E_PERMIT_REPLAYED
    r.boot()
    r.run(1500)
    r.req(wire.T_SET_TIME, signed_time(T0 + 1))
    assert r.code(wire.T_ARM, p) == wire.E_PERMIT_REPLAYED
    assert wire.E_PERMIT_REPLAYED in refusals(r)


def test_nonce_memory_bounded_and_old_permits_refused(r):
    for i in range(40):
        assert r.code(wire.T_ARM, _host_permit(nonce=b"n%07d" % i, issued_at=T0 - 100 + i)) == 0
    assert len(r.pen.store.c["nonces"]) == 32
    # the first nonces are forgotten, but a permit that old is still refused
    assert r.code(wire.T_ARM, _host_permit(nonce=b"n%07d" % 0, issued_at=T0 - 100)) == \
        wire.E_PERMIT_REPLAYED


def test_forged_refused(r):
    p = _host_permit()
    p["max_depth_um"] = 1500
    assert r.code(wire.T_ARM, p) == wire.E_PERMIT_BAD_TAG
    assert r.code(wire.T_ARM, _host_permit(key=bytes(32))) == wire.E_PERMIT_BAD_TAG
    assert refusals(r) == [wire.E_PERMIT_BAD_TAG] * 2
    assert r.status()["state"] == wire.S_IDLE


def test_no_key_refused():
    r = Rig(MemFs(), key=None)
    assert r.code(wire.T_ARM, _host_permit()) == wire.E_PERMIT_NO_KEY
    assert refusals(r) == [wire.E_PERMIT_NO_KEY]


def test_clock_unset_refused():
    r = Rig(MemFs(), clock=0)
    assert r.code(wire.T_ARM, _host_permit()) == wire.E_PERMIT_CLOCK_UNSET
    assert refusals(r) == [wire.E_PERMIT_CLOCK_UNSET]


def test_expired_and_not_yet_valid(r):
    assert r.code(wire.T_ARM, _host_permit(expires_at=T0 - 1)) == wire.E_PERMIT_EXPIRED
    assert r.code(wire.T_ARM, _host_permit(nonce=b"x2", issued_at=T0 + 3600,
                                           expires_at=T0 + 7200)) == wire.E_PERMIT_NOT_YET_VALID


def test_over_limit(r):
    assert r.code(wire.T_ARM, _host_permit(max_depth_um=1750)) == wire.E_PERMIT_OVER_LIMIT
    assert r.code(wire.T_ARM, _host_permit(max_duration_s=901)) == wire.E_PERMIT_OVER_LIMIT
    assert r.code(wire.T_ARM, _host_permit(max_depth_um=0)) == wire.E_PERMIT_OVER_LIMIT
    assert refusals(r) == [wire.E_PERMIT_OVER_LIMIT] * 3


def test_validity_window_longer_than_two_hours_refused(r):
    # Only the key holder can sign, yet a permit valid for days would outlive the
    # decision it stands for: the pen caps the window (the host issues one hour).
    long = _host_permit(issued_at=T0 - 5, expires_at=T0 - 5 + 7201)
    assert r.code(wire.T_ARM, long) == wire.E_PERMIT_OVER_LIMIT
    assert refusals(r) == [wire.E_PERMIT_OVER_LIMIT]
    ok = _host_permit(issued_at=T0 - 5, expires_at=T0 - 5 + 7200, nonce=b"host0002")
    assert r.code(wire.T_ARM, ok) == 0


def test_set_key_rules():
    r = Rig(MemFs(), key=None)
    assert r.code(wire.T_SET_KEY, {"key": KEY}, auth=False) == wire.E_NOT_AUTHORIZED
    assert r.code(wire.T_SET_KEY, {"key": KEY}) == 0
    assert r.code(wire.T_SET_KEY, {"key": bytes(range(32))}) == wire.E_KEY_ALREADY_SET
    r.pen.open_pairing()  # long button press
    assert r.code(wire.T_SET_KEY, {"key": bytes(range(2, 34))}) == 0
    assert r.code(wire.T_SET_KEY, {"key": KEY}) == wire.E_KEY_ALREADY_SET
    assert r.log(wire.K_KEY_SET)


def test_long_press_opens_pairing(r):
    r.plant.inp.button = True
    r.run(3100)
    r.plant.inp.button = False
    r.run(20)
    assert r.pen.pairing_open()
    r.run(121000)
    assert not r.pen.pairing_open()
