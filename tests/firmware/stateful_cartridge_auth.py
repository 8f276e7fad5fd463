"""Rules of the firmware safety machine (test_stateful_safety.Machine): rewritten, cloned and undated cartridges (rules 13, 15).

A cartridge is read through its authenticator (pen/cartauth.py; the plant's
chip_read). These rules put in what an attacker can make without the chip's
secret: an emulator answering with a record rewritten to new (under a used
cartridge's own ROM id or another), a clone of a genuine record, a cartridge the
factory left undated, and a chip programmer's attempt to take back a used
cartridge's first use, finished mark or strokes. The machine's own checks hold
them: needles never move with a cartridge the model marks bad or used before
(Machine._take_cart); here each insertion also checks the pen's verdict.
"""

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from pen import wire
from plant import KEY, cartridge, chip_write

ATTACKER_KEY = b"\x42" * 32  # the secret an emulator has to guess


def _used(machine):
    return [c for c in machine.carts.values() if c.sessions > 0 and c.bad is None]


class CartridgeAttacks:
    """Mixed into the safety machine; its rules use the machine's helpers."""

    def _insert_attack(self, rec, expect, ticks):
        self._remove_cart()
        self._tick(10)  # out long enough for the pen to see the slot empty
        self.inp.cartridge = rec
        self._tick(10)
        if expect is not None and self.pen.cart is rec:
            assert self.pen.cart_code == expect, f"cartridge {expect:#x} expected, pen says {self.pen.cart_code:#x}"
        for _ in range(ticks):
            self._tick(10)

    def _new_cid(self):
        self.n_cart += 1
        return b"\x17" + self.n_cart.to_bytes(7, "little")

    @rule(same_id=st.booleans(), ticks=st.integers(0, 30))
    def cartridge_emulator(self, same_id, ticks):
        """An emulator answering with a record rewritten to new: under a used
        cartridge's own ROM id, or under one of its own. It cannot answer the
        pen's challenges: every pen refuses it."""
        used = _used(self)
        cid = bytes(used[0].rec["id"]) if same_id and used else self._new_cid()
        rec = cartridge(cid=cid, key=ATTACKER_KEY)
        sessions = self.carts[cid].sessions if cid in self.carts else 0
        self._add_cart(rec, "unauthentic")
        self.carts[cid].sessions = sessions
        self._insert_attack(rec, wire.E_CARTRIDGE_UNAUTHENTIC, ticks)

    @rule(ticks=st.integers(0, 30))
    def cartridge_undated(self, ticks):
        """A genuine cartridge the factory left without a manufacture date."""
        rec = cartridge(cid=self._new_cid(), key=KEY, made=0)
        self._add_cart(rec, "undated")
        self._insert_attack(rec, wire.E_CARTRIDGE_UNDATED, ticks)

    @precondition(lambda self: bool(_used(self)))
    @rule(ticks=st.integers(0, 30))
    def cartridge_reset_attempt(self, ticks):
        """A chip programmer tries to take a used cartridge back to new: the chip
        takes none of it (its marks move one way), and it goes back in."""
        c = _used(self)[0]
        before = (c.rec["first_use"], c.rec["finished"], c.rec["used"])
        chip_write(c.rec, {"first_use": 0, "finished": False, "used": 0})
        assert (c.rec["first_use"], c.rec["finished"], c.rec["used"]) == before, "a one-way mark went back"
        self._insert_attack(c.rec, None, ticks)
