# Cartridge and handpiece usage (rules 13-15): strokes x needles, single use,
# reinsertion, wear budget, expiry; handpiece lifetime counters. The records live
# in the store's counters (store.c), so they survive a reboot; the cartridge's own
# record (authenticated by its chip, pen/cartauth.py) is updated through
# Outputs.cartridge_write. The pen remembers MAX_CARTS cartridges; one it forgot
# is still refused by the chip's one-way first-use and finished marks.
import binascii

from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

F_USED = const(1)  # a session has started on it (needles touched skin)
F_FINISHED = const(2)  # used in a session that ended
F_REMOVED = const(4)  # taken out after use
MAX_CARTS = const(16)  # cartridges remembered by the pen
HP_STROKES = const(0)
HP_PUNCTURES = const(1)
HP_SESSIONS = const(2)
HP_RUN_S = const(3)
HP_FIRST = const(4)


_last = [None, ""]  # the last id seen and its hex (called every tick while running)


def cart_hex(cart):
    cid = cart["id"]
    if cid is not _last[0]:
        _last[1] = binascii.hexlify(bytes(cid)).decode()
        _last[0] = cid
    return _last[1]


class Wear:
    def __init__(self, board, store):
        self.board = board
        self.store = store
        self.session_strokes = 0  # strokes of the present session on this cartridge
        self.run_ms = 0  # needling ms not yet added to hp run_s

    def _rec(self, h):
        return self.store.c["carts"].get(h)

    def _remember(self, h, used, flags):
        c = self.store.c
        carts = c["carts"]
        if h not in carts:
            order = c["cart_order"]
            order.append(h)
            while len(order) > MAX_CARTS:
                carts.pop(order.pop(0), None)
        carts[h] = [used, flags]

    def rated(self, cart):
        r = cart.get("rated", 0)
        if r > self.board.cartridge_rated_strokes:
            r = self.board.cartridge_rated_strokes
        return r

    def used(self, cart):
        u = cart.get("used", 0)
        rec = self._rec(cart_hex(cart))
        if rec and rec[0] > u:
            u = rec[0]
        return u

    def left(self, cart):
        # Strokes left in the cartridge's wear budget (rule 14).
        n = self.rated(cart) - self.used(cart)
        return n if n > 0 else 0

    def code(self, cart, now):
        # Error code of an inserted cartridge (0 = usable).
        try:
            h = cart_hex(cart)
            if len(cart["id"]) != 8 or cart["needles"] <= 0 or self.rated(cart) <= 0:
                return wire.E_CARTRIDGE_INVALID
            expiry = cart["expiry"]
        except (KeyError, TypeError, ValueError):
            return wire.E_CARTRIDGE_INVALID
        if not expiry or not cart.get("valid"):
            return wire.E_CARTRIDGE_INVALID
        if cart.get("auth") is not True:
            # its chip failed the challenge (pen/cartauth.py): a copy or a rewrite
            return wire.E_CARTRIDGE_UNAUTHENTIC
        made = cart.get("made", 0)
        if not made:
            return wire.E_CARTRIDGE_UNDATED  # the shelf life cannot be checked
        if now and (expiry <= now or made + self.board.cartridge_shelf_life_s <= now):
            return wire.E_CARTRIDGE_EXPIRED
        rec = self._rec(h)
        flags = rec[1] if rec else 0
        if cart.get("finished") or flags & F_FINISHED:
            return wire.E_CARTRIDGE_USED
        if flags & F_REMOVED:
            return wire.E_CARTRIDGE_REINSERTED
        if cart.get("first_use") and not (flags & F_USED and self.store.c["cur"] == h):
            # used before, and not the one this pen had in when it last saw it
            return wire.E_CARTRIDGE_REINSERTED
        if self.used(cart) >= self.rated(cart):
            return wire.E_CARTRIDGE_WORN
        return 0

    def inserted(self, cart):
        self.session_strokes = 0
        h = cart_hex(cart)
        if self.store.c["cur"] != h:
            self.store.c["cur"] = h
            return True  # counters changed
        return False

    def removed(self, cart):
        # The cartridge came out: one that was used may never come back.
        self.store.c["cur"] = ""
        h = cart_hex(cart)
        rec = self._rec(h)
        if rec and rec[1] & F_USED:
            rec[1] |= F_REMOVED
        self.session_strokes = 0

    def begin(self, cart, now):
        # A session starts on the cartridge -> the EEPROM fields to write.
        h = cart_hex(cart)
        rec = self._rec(h)
        used = self.used(cart)
        self._remember(h, used, (rec[1] if rec else 0) | F_USED)
        first = cart.get("first_use") or now
        cart["first_use"] = first
        return {"first_use": first, "used": used}

    def count(self, cart, n):
        # n new strokes on the cartridge; -> True when the wear budget is reached.
        h = cart_hex(cart)
        rec = self._rec(h)
        if rec is None:
            self._remember(h, self.used(cart), F_USED)
            rec = self._rec(h)
        rec[0] += n
        self.session_strokes += n
        hp = self.store.c["hp"]
        hp[HP_STROKES] += n
        hp[HP_PUNCTURES] += n * cart.get("needles", 0)
        return rec[0] >= self.rated(cart)

    def add_run_ms(self, ms):
        self.run_ms += ms
        if self.run_ms >= 1000:
            s = self.run_ms // 1000
            self.store.c["hp"][HP_RUN_S] += s
            self.run_ms -= s * 1000

    def session_started(self, now):
        hp = self.store.c["hp"]
        hp[HP_SESSIONS] += 1
        if not hp[HP_FIRST]:
            hp[HP_FIRST] = now

    def write_back(self, cart, finished=False):
        # EEPROM fields to program now.
        h = cart_hex(cart)
        rec = self._rec(h)
        used = rec[0] if rec else cart.get("used", 0)
        w = {"used": used}
        if finished:
            if rec:
                rec[1] |= F_FINISHED
            w["finished"] = True
        if cart.get("first_use"):
            w["first_use"] = cart["first_use"]
        return w

    def wire_fields(self, cart, now):
        # The WEAR response.
        hp = self.store.c["hp"]
        f = {"cartridge": 0, "cart_id": bytes(8), "needles": 0, "strokes_used": 0,
             "strokes_rated": 0, "first_use": 0, "expiry": 0, "cart_state": 0,
             "hp_strokes": hp[HP_STROKES], "hp_punctures": hp[HP_PUNCTURES],
             "hp_sessions": hp[HP_SESSIONS], "hp_run_s": hp[HP_RUN_S],
             "hp_first_session": hp[HP_FIRST]}
        if cart is not None:
            f["cartridge"] = 1
            f["cart_state"] = self.code(cart, now) & 0xFF
            try:
                f["cart_id"] = bytes(cart["id"])
                f["needles"] = cart["needles"] & 0xFF
                f["strokes_used"] = self.used(cart)
                f["strokes_rated"] = self.rated(cart)
                f["first_use"] = cart.get("first_use", 0)
                f["expiry"] = cart["expiry"]
            except (KeyError, TypeError, ValueError):
                f["cart_state"] = wire.E_CARTRIDGE_INVALID
        return f
