# Permits inside MicroPython: HMAC against CPython hmac vectors, constant-time
# compare, and every refusal code of pen.permit.check.
import json

from pen import wire
from pen.permit import check, equal, hmac_sha256, sign
from rig import board_doc, make_board

board_doc("/boards/pen-s3-revb.json")
KEY = bytes(range(1, 33))
NOW = 1750000000


def _permit(**kw):
    p = {"max_depth_um": 1000, "max_duration_s": 600, "issued_at": NOW - 10,
         "expires_at": NOW + 3600, "nonce": b"abcdefgh", "patient": bytes(8)}
    for k in kw:
        p[k] = kw[k]
    p["tag"] = sign(KEY, p)
    return p


def test_hmac_matches_cpython_vectors():
    with open("/data/hmac.json") as f:
        vectors = json.load(f)
    assert len(vectors) >= 5
    for key, msg, mac in vectors:
        got = hmac_sha256(bytes.fromhex(key), bytes.fromhex(msg))
        assert got == bytes.fromhex(mac), (key, msg)


def test_equal():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")


def test_valid_permit_accepted():
    assert check(_permit(), KEY, NOW, [], 0, make_board()) == 0


def test_refusals():
    b = make_board()
    p = _permit()
    assert check(p, None, NOW, [], 0, b) == wire.E_PERMIT_NO_KEY
    forged = dict(p)
    forged["max_depth_um"] = 1500
    assert check(forged, KEY, NOW, [], 0, b) == wire.E_PERMIT_BAD_TAG
    assert check(p, KEY, NOW, ["6162636465666768"], 0, b) == wire.E_PERMIT_REPLAYED
    assert check(p, KEY, 0, [], 0, b) == wire.E_PERMIT_CLOCK_UNSET
    assert check(_permit(expires_at=NOW - 1), KEY, NOW, [], 0, b) == wire.E_PERMIT_EXPIRED
    assert check(_permit(max_depth_um=1750), KEY, NOW, [], 0, b) == wire.E_PERMIT_OVER_LIMIT
    assert check(_permit(max_duration_s=901), KEY, NOW, [], 0, b) == wire.E_PERMIT_OVER_LIMIT
    assert check(_permit(issued_at=NOW + 4000, expires_at=NOW + 9000), KEY, NOW, [], 0, b) == \
        wire.E_PERMIT_NOT_YET_VALID
