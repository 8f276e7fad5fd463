"""Rules 13 and 15 rest on the cartridge's authenticator (pen/cartauth.py): a
rewritten, cloned or undated cartridge is refused by every pen, and used/finished
cannot be undone (issue 12, finding 7)."""

from memfs import MemFs
from pen import cartauth, wire
from plant import KEY, cartridge, chip_write
from rig import Rig

CID = b"\x17\x31\x32\x33\x34\x35\x36\x37"
ATTACKER_KEY = b"\x42" * 32  # an emulator's secret: the real one is never readable


def fresh_pen():
    return Rig(MemFs())


def start_code(r):
    # START's answer on this pen (interval and lock taken out of the picture).
    r.pen.store.c["last_end"] = 0
    r.pen.store.c["lock"] = 0
    assert r.arm(depth=250) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 250}) == 0
    return r.code(wire.T_START)


def insert(r, rec):
    r.plant.inp.cartridge = None
    r.run(50)
    r.plant.inp.cartridge = rec
    r.run(50)


def used_cartridge():
    # A cartridge used in a finished session on pen A: its record and pen A.
    a = fresh_pen()
    rec = cartridge(cid=CID)
    insert(a, rec)
    assert start_code(a) == 0
    a.run(1500)
    a.end_session()
    a.run(100)
    assert rec["finished"] and rec["first_use"] and rec["used"] > 0
    return a, rec


def test_used_cartridge_rewritten_is_refused_by_another_pen():
    a, rec = used_cartridge()
    # 1. The chip itself cannot be talked back: its usage page and counter move one way.
    back = dict(rec)
    chip_write(back, {"first_use": 0, "finished": False, "used": 0})
    assert back["finished"] and back["first_use"] == rec["first_use"] and back["used"] == rec["used"]
    # 2. An emulator with the record rewritten to new, under the same ROM id: it
    # cannot answer the challenges (it does not hold the chip's secret).
    fake = cartridge(cid=CID, key=ATTACKER_KEY)
    assert fake["used"] == 0 and not fake["finished"] and fake["auth"] is False
    for pen in (a, fresh_pen()):
        insert(pen, dict(back))
        assert start_code(pen) in (wire.E_CARTRIDGE_USED, wire.E_CARTRIDGE_REINSERTED)
        insert(pen, dict(fake))
        assert pen.pen.cart_code == wire.E_CARTRIDGE_UNAUTHENTIC
        assert start_code(pen) == wire.E_CARTRIDGE_UNAUTHENTIC
        assert wire.E_CARTRIDGE_UNAUTHENTIC in [x["code"] for x in pen.log(wire.K_START_REFUSED)]


def test_clone_of_a_new_cartridge_is_refused_by_every_pen():
    genuine = cartridge(cid=CID)
    # the clone answers under another ROM id with the genuine pages and a guessed secret
    for cid, key in ((b"\x17\x99" + CID[2:], ATTACKER_KEY), (CID, ATTACKER_KEY)):
        clone = cartridge(cid=cid, key=key)
        assert clone["auth"] is False
        for _ in range(2):
            pen = fresh_pen()
            insert(pen, clone)
            assert start_code(pen) == wire.E_CARTRIDGE_UNAUTHENTIC
    assert genuine["auth"] is True


def test_macs_replayed_to_a_new_challenge_fail():
    pages = [cartauth.encode_factory(14, 100000, 1900000000, 1740000000), cartauth.encode_usage(),
             cartauth.encode_counter(100000)]
    secret = cartauth.device_secret(KEY, CID)
    old = [bytes([p]) * 32 for p in range(3)]
    macs = [cartauth.page_mac(secret, CID, p, pages[p], old[p]) for p in range(3)]
    assert cartauth.check(KEY, CID, pages, macs, old) == cartauth.OK
    new = [bytes([p + 7]) * 32 for p in range(3)]
    assert cartauth.check(KEY, CID, pages, macs, new) == cartauth.UNAUTHENTIC
    # a page changed after its MAC was made (a record rewritten in transit)
    bad = [pages[0], cartauth.encode_usage(), cartauth.encode_counter(100000 + 1)]
    assert cartauth.check(KEY, CID, bad, macs, old) == cartauth.UNAUTHENTIC


def test_undated_cartridge_is_refused():
    r = fresh_pen()
    insert(r, cartridge(cid=CID, made=0))
    assert r.pen.cart_code == wire.E_CARTRIDGE_UNDATED
    assert start_code(r) == wire.E_CARTRIDGE_UNDATED


def test_cartridge_without_a_checked_record_is_refused():
    r = fresh_pen()
    rec = cartridge(cid=CID)
    del rec["auth"]  # a driver that did not check it
    insert(r, rec)
    assert start_code(r) == wire.E_CARTRIDGE_UNAUTHENTIC


def test_a_forgotten_used_cartridge_is_still_refused():
    # The pen remembers 16 cartridges; the chip's one-way marks outlast its memory.
    a, rec = used_cartridge()
    insert(a, cartridge(cid=b"\x17\x50" + bytes(6)))
    a.pen.store.c["carts"].clear()  # sixteen other cartridges since: this one is forgotten
    a.pen.store.c["cart_order"][:] = []
    insert(a, rec)
    assert start_code(a) in (wire.E_CARTRIDGE_USED, wire.E_CARTRIDGE_REINSERTED)
