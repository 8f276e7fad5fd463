# The pen's pure core: the session state machine over the tick contract of
# docs/architecture.md. Pen(board, store[, clock, reset_code]); tick(now_ms, inp)
# -> Outputs at 100 Hz; request methods (arm, set_depth, set_speed, start, stop,
# set_time, set_key, ...) return an error code from wire.E_* (0 = OK).
#
# No machine, bluetooth, asyncio or wall clock here: now_ms is a monotonic,
# non-wrapping millisecond count from the shell; the pen's Unix clock is the
# base set by SET_TIME plus the monotonic offset since (0 = unset).
#
# A reset (power loss, watchdog) is a new Pen over the same store: it starts in
# HOMING with the motor off and the needles retracting, an interrupted session
# is closed in the log and counts for the interval lockout, and nothing runs
# again without a new permit and START (rule 21).
import binascii
import json

from pen import wire
from pen import safety
from pen import permit as _permit
from pen.depthctl import DepthCtl
from pen.io import Outputs
from pen.motorctl import MotorCtl
from pen.store import LogFull, log_id
from pen.wear import Wear, cart_hex, F_FINISHED

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

TELEMETRY_MS = const(500)
CHECKPOINT_MS = const(30000)  # counters and cartridge record while running
FAULT_HOLD_MS = const(500)  # FAULT is shown this long, then the pen re-homes
MAX_FAULTS = const(5)  # consecutive faults without a good start -> LOCKED until reset
PAIR_HOLD_MS = const(3000)  # button held this long opens pairing
PAIR_WINDOW_MS = const(120000)
SHORT_PRESS_MS = const(1000)
MAX_GAP_MS = const(100)  # a control loop this late while running is a fault
MAX_NONCES = const(32)
MAX_TIME_NONCES = const(8)  # SET_TIME nonces remembered (a replay is refused)
# Rule 6 by the pen's own running time: the interval still to serve (counters
# "lock") reaches flash this often, so a power cut lengthens it by at most this.
LOCK_SAVE_MS = const(300000)
# Refusals (bad permits, starts refused...) are evidence of attempts, not of
# treatment: the first of each kind in a window is written, the rest counted and
# written as one REFUSALS_REPEATED record per kind when the window closes.
REPEAT_WINDOW_MS = const(60000)
MAX_REPEAT_KINDS = const(8)  # kinds counted apart in a window; the rest share one count
# The log's reserve (Store.reserve, one segment: 128 records on the pen) is what
# ordinary records (refusals, plain boots) leave free for the records that are
# evidence of treatment and faults (sessions, faults, clock, link, cartridges): a
# START is refused (LOG_UNSYNCED) once only the reserve is left, until the host
# syncs and acknowledges (LOG_ACK). A session writes about ten.
# A session stopped in its first 30 s of needling (a slip of the finger, a Ctrl-C)
# pauses instead of ending: START (after a key holder's ARM on a new link) goes on
# under its permit, as one session. Any paused session that is not started again
# within 10 min ends (PAUSE_EXPIRED) and counts with its real depth and needling
# time; rule 6 runs from that end (issue 14 item 5; docs/sessions.md).
RESUME_NEEDLING_MS = const(30000)
PAUSE_WINDOW_MS = wire.PAUSE_WINDOW_S * 1000  # the protocol's (STATUS resume_left_s)
DISPLAY_MS = const(250)
FLAG_INTERRUPTED = const(1)  # SESSION_END flags: closed at boot after a reset
_U16 = const(0xFFFF)
_U32 = const(0xFFFFFFFF)

_ORDINARY = (wire.K_PERMIT_REFUSED, wire.K_START_REFUSED, wire.K_REFUSALS_REPEATED, wire.K_BOOT)
# START refusals that end the permit (the pen goes back to IDLE): they need a new
# decision, not a moment's fix. The others (no contact, no cartridge or one not
# read yet, charging, not homed, depth, the log) keep the pen ARMED and the
# display says what it waits for.
_DISARMING = (wire.E_CARTRIDGE_USED, wire.E_CARTRIDGE_WORN, wire.E_CARTRIDGE_EXPIRED,
              wire.E_CARTRIDGE_REINSERTED, wire.E_CARTRIDGE_INVALID,
              wire.E_CARTRIDGE_UNAUTHENTIC, wire.E_CARTRIDGE_UNDATED, wire.E_BATTERY_LOW,
              wire.E_BATTERY_UNKNOWN, wire.E_INTERVAL_LOCKOUT, wire.E_SESSION_CAP,
              wire.E_PATIENTS_FULL)
_NAMES = ("IDLE", "ARMED", "RUN", "PAUSE", "DONE", "FAULT", "LOCKED", "HOMING")


def _u16(v):
    return 0 if v < 0 else (v if v <= _U16 else _U16)


class Pen:
    def __init__(self, board, store, clock=0, reset_code=0):
        self.board = board
        self.store = store
        self.now_ms = 0
        self._clk_base = 0
        self._clk_ms = 0
        self.serial = ""
        # the last firmware update over SMP, as INFO reports it: (outcome U_*, version
        # tried); set by the app from pen/bootok.py
        self.update = (wire.U_NONE, "")
        self.state = wire.S_HOMING
        self.fault = 0
        self.motor = MotorCtl(board)
        self.depth = DepthCtl(board)
        self.wear = Wear(board, store)
        self.permit = None  # dict of the armed permit (or the standalone limits)
        self.session_open = False
        self.session_depth = 0
        self.elapsed_ms = 0
        self.strokes = 0
        self.warned = False
        self.link_session = False
        self.cart = None
        self.cart_code = 0
        self.start_detail = 0  # the last refused START's NACK detail (pen/safety.py)
        self._cart_id = None
        self.inp = None
        self.out = Outputs()
        self._events = []
        self._handed = 0  # events of _events already handed out in Outputs
        self.store_ok = True
        self.broken = False  # an internal error happened: stop feeding the watchdog
        self.last_error = None
        self._faults = 0
        self._fault_t0 = 0
        self._btn = False
        self._btn_t0 = 0
        self._btn_long = False
        self._pair_until = 0
        self._t_tel = 0
        self._t_ckpt = 0
        self._t_disp = -DISPLAY_MS
        self._disp_state = -1
        self._write = None  # cartridge fields waiting for the next tick's outputs
        self._write_cart = ""  # hex id of the cartridge those fields belong to
        self._finish_cart = ""  # cartridge of an interrupted session, to mark finished
        self._ticked = False
        self._reps = {}  # refusal key -> repeats counted in this window
        self._rep_t0 = 0
        self._lock_ms = 0  # running time not yet taken off counters "lock", ms
        self._lock_unsaved = 0  # ms taken off "lock" since it was last committed
        self._pause_t0 = 0  # when the open session paused (now_ms)
        # rule 6 per patient on a clinic pen (pen/patients.py, imported only there: a
        # home pen keeps its heap); None on a home pen
        self.patients = None
        if board.patient_slots:
            from pen.patients import Patients

            self.patients = Patients(store.c, board.patient_slots)
        self.depth.setting_um = board.min_depth_um
        self.depth.start_homing(0)
        if clock:
            self._clk_base = clock
            self._credit_time_off(clock)
        self._log(wire.K_BOOT, reset_code, 0, log_id(store.c))  # a: the log's id
        self._close_interrupted(reset_code)

    # ---- clock, log, counters -------------------------------------------------
    def clock(self):
        if not self._clk_base:
            return 0
        return self._clk_base + (self.now_ms - self._clk_ms) // 1000

    def _log(self, kind, code=0, depth=0, a=0, b=0, flags=0):
        # Ordinary records leave the store's reserve free; evidence may use them.
        # Neither ever overwrites a record the host has not acknowledged.
        reserve = 0
        if kind in _ORDINARY and not (kind == wire.K_BOOT and code):
            reserve = self.store.reserve
        try:
            self.store.append(kind, self.clock() & _U32, code & _U16, _u16(depth), a & _U32,
                              b & _U32, flags & 0xFF, reserve)
        except LogFull:
            c = self.store.c
            c["unlogged"] = c.get("unlogged", 0) + 1  # written as a count when room returns
        except OSError:
            self.store_ok = False

    def _commit(self):
        try:
            self.store.commit()
            return True
        except OSError:
            self.store_ok = False
            return False

    def _event(self, msg_type, fields):
        self._events.append((msg_type, fields))

    def _notice(self, code, value=0):
        self._event(wire.T_EV_NOTICE, {"code": code, "value": value & _U32})

    def _refuse(self, kind, req, code, detail=0):
        self._refusal(kind, code, self.depth.setting_um, detail, self.state, req)
        return code

    def _refusal(self, kind, code, depth, a, b, req):
        # The first refusal of its kind in the window is written; repeats are counted.
        key = (kind << 24) | ((code & _U16) << 8) | (req & 0xFF)
        reps = self._reps
        if not reps:
            self._rep_t0 = self.now_ms
        if key in reps:
            reps[key] += 1
            return
        if len(reps) >= MAX_REPEAT_KINDS:
            reps[0] = reps.get(0, 0) + 1
            return
        reps[key] = 0
        self._log(kind, code, depth, a, b, req)

    def _flush_refusals(self):
        # One REFUSALS_REPEATED record per counted kind: code, a = count, b = record
        # kind, flags = request type (kind 0: kinds beyond MAX_REPEAT_KINDS).
        reps = self._reps
        self._reps = {}
        for key in reps:
            n = reps[key]
            if n:
                self._log(wire.K_REFUSALS_REPEATED, (key >> 8) & _U16, 0, n, key >> 24, key & 0xFF)
        c = self.store.c
        n = c.get("unlogged", 0)
        if n and self.store.free_slots() > self.store.reserve + 1:
            c["unlogged"] = 0
            self._log(wire.K_REFUSALS_REPEATED, wire.E_LOG_UNSYNCED, 0, n, 0, 0)

    def _count_lock(self, gap):
        # Rule 6 by running time: take the time the pen ran off the interval still
        # to serve (never by the clock, which a central or a host could move).
        # A clinic pen counts every patient's interval the same way.
        if not self._counting():
            return
        c = self.store.c
        self._lock_ms += gap
        if self._lock_ms < 1000:
            return
        sec = self._lock_ms // 1000
        self._lock_ms -= sec * 1000
        c["lock"] = c["lock"] - sec if c["lock"] > sec else 0
        if self.patients is not None:
            self.patients.count_down(sec)
        self._lock_unsaved += sec * 1000
        if not self._counting() or self._lock_unsaved >= LOCK_SAVE_MS:
            self._lock_unsaved = 0
            c["lock_at"] = self.clock()
            self._commit()

    def _counting(self):
        # Some interval is still to serve (the pen's, or a clinic pen's patient's).
        if self.store.c.get("lock", 0) > 0:
            return True
        return self.patients is not None and self.patients.counting()

    def _credit_time_off(self, rtc):
        # At boot with an RTC that kept running while the pen was off (deep sleep
        # on its cell): the time since the running count was last stored is served
        # too, measured in the RTC's own frame (lock_at is the clock when "lock" was
        # stored; nobody sets the RTC while the pen is off). After a real power loss
        # the RTC is unset and nothing is credited: the stored count, the later answer.
        c = self.store.c
        at = c.get("lock_at", 0)
        if self._counting() and at and rtc > at:
            off = rtc - at
            c["lock"] = c["lock"] - off if c["lock"] > off else 0
            if self.patients is not None:
                self.patients.count_down(off)
            c["lock_at"] = rtc

    def _set_lock(self, depth, ref="", end=0):
        # The interval of a session that ended at `end` at `depth`: the pen's on a
        # home pen, the patient's (ref) on a clinic pen.
        # A clinic pen's session that names nobody (one open before the pen became a
        # clinic pen) locks the whole pen, as on a home pen.
        c = self.store.c
        if self.patients is not None and ref:
            self.patients.close(ref, end, depth)
        else:
            s = safety.interval_s(depth)
            if s > c.get("lock", 0):
                c["lock"] = s
        c["lock_at"] = self.clock()
        # count in step with the clock's seconds: clock() + lock stays the clock's lift
        self._lock_ms = (self.now_ms - self._clk_ms) % 1000
        self._lock_unsaved = 0

    def _close_interrupted(self, reset_code):
        c = self.store.c
        s = c.get("sess")
        if not s:
            return
        # [start, depth, checkpoint, strokes, elapsed_ms, patient (hex, "" = none)]
        c["last_end"] = s[2] or s[0]
        c["last_depth"] = s[1]
        c["sess"] = None
        self._set_lock(s[1], s[5] if len(s) > 5 else "", c["last_end"])
        rec = c["carts"].get(c["cur"]) if c["cur"] else None
        if rec:
            rec[1] |= F_FINISHED
            self._finish_cart = c["cur"]
        self._log(wire.K_SESSION_END, reset_code, s[1], s[4], s[3], FLAG_INTERRUPTED)
        self._commit()

    # ---- requests (the handler calls these) -----------------------------------
    def set_time(self, f):
        # SET_TIME: only with the permit key's tag and a fresh nonce, and never while
        # a session is open. Whatever it sets, rule 6 also runs on the pen's own
        # running time (counters "lock"), so a clock moved forward shortens nothing.
        c = self.store.c
        code = _permit.check_time(f, self.key(), c["tnonces"])
        if not code and (self.session_open or self.state in (wire.S_RUNNING, wire.S_PAUSED)):
            code = wire.E_WRONG_STATE
        if code:
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_SET_TIME, code, f["unix"])
        undo = (list(c["tnonces"]), c.get("lock_at", 0), self._clk_base, self._clk_ms)
        c["tnonces"].append(_permit.nonce_hex(f["nonce"]))
        while len(c["tnonces"]) > MAX_TIME_NONCES:
            c["tnonces"].pop(0)
        old = self.clock()
        self._clk_base = f["unix"] & _U32
        self._clk_ms = self.now_ms
        if self._counting():
            c["lock_at"] = self.clock()  # the running count's reference moves with the clock
        # the nonce is spent, and the new reference stored, in one commit
        if not self._commit():
            c["tnonces"], c["lock_at"], self._clk_base, self._clk_ms = undo
            return wire.E_STORAGE_FULL
        self._clock_moved(old)
        return 0

    def _clock_moved(self, old):
        unix = self.clock()
        self._log(wire.K_TIME_SET, 0, 0, unix, old)
        if self.cart is not None:
            self.cart_code = self.wear.code(self.cart, self.clock())

    def log_ack(self, f):
        # LOG_ACK: the host stored the log up to f["up_to_seq"]; tagged with the
        # permit key (a bonded phone cannot free the space of unread evidence).
        code = _permit.check_ack(f, self.key())
        if code:
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_LOG_ACK, code, f["up_to_seq"])
        old = self.store.c.get("ack", 0)
        if self.store.acknowledge(f["up_to_seq"]):
            if not self._commit():
                self.store.c["ack"] = old
                return wire.E_STORAGE_FULL
            self._flush_refusals()  # the counts of what found no room, now there is
        return 0

    def key(self):
        h = self.store.c["key"]
        return binascii.unhexlify(h) if h else None

    def pairing_open(self):
        return self.now_ms < self._pair_until

    def open_pairing(self, ms=PAIR_WINDOW_MS):
        self._pair_until = self.now_ms + ms

    def set_key(self, key, authenticated):
        if not authenticated:
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_SET_KEY, wire.E_NOT_AUTHORIZED)
        if self.store.c["key"] and not self.pairing_open():
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_SET_KEY, wire.E_KEY_ALREADY_SET)
        if self.state in (wire.S_RUNNING, wire.S_PAUSED):
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_SET_KEY, wire.E_WRONG_STATE)
        if len(key) != 32 or key == bytes(32):
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_SET_KEY, wire.E_MALFORMED)
        old = self.store.c["key"]
        self.store.c["key"] = binascii.hexlify(key).decode()
        if not self._commit():
            self.store.c["key"] = old
            return wire.E_STORAGE_FULL
        self._pair_until = 0
        self._log(wire.K_KEY_SET)
        return 0

    def arm(self, p):
        # p: the decoded ARM fields (a Permit).
        st = self.state
        link = self.inp.link_epoch if self.inp is not None else 0
        old = self.permit
        # A paused session whose permit belongs to a link that is gone is bound to
        # this one by a new permit (the key holder is here again); otherwise an
        # open session takes no ARM.
        rebind = (st == wire.S_PAUSED and old is not None and not old["standalone"]
                  and old["link"] != link)
        if st == wire.S_RUNNING or (st == wire.S_PAUSED and not rebind):
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_ARM, wire.E_ALREADY_RUNNING)
        if st == wire.S_LOCKED:
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_ARM, wire.E_LOCKED)
        if st in (wire.S_HOMING, wire.S_FAULT):
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_ARM, wire.E_WRONG_STATE)
        c = self.store.c
        used = [n[0] for n in c["nonces"]]
        code = _permit.check(p, self.key(), self.clock(), used, c["nfloor"], self.board)
        # the table's key: the permit's patient bytes in hex (a clinic pen refused
        # all-zero ones in _permit.check)
        ref = _permit.nonce_hex(p["patient"]) if self.patients is not None else ""
        if not code and rebind and old is not None and ref != old["patient"]:
            code = wire.E_PERMIT_OTHER_PATIENT  # a paused session goes on for its patient only
        if code:
            self._refusal(wire.K_PERMIT_REFUSED, code, p["max_depth_um"], p["issued_at"],
                          p["expires_at"], wire.T_ARM)
            return code
        # the nonce is spent before the permit is accepted (persisted first)
        c["nonces"].append([_permit.nonce_hex(p["nonce"]), p["issued_at"]])
        while len(c["nonces"]) > MAX_NONCES:
            old = c["nonces"].pop(0)
            if old[1] > c["nfloor"]:
                c["nfloor"] = old[1]
        if not self._commit():
            return self._refuse(wire.K_PERMIT_REFUSED, wire.T_ARM, wire.E_STORAGE_FULL)
        depth = p["max_depth_um"]
        secs = p["max_duration_s"]
        if rebind and old is not None:  # the session goes on within both permits
            depth = depth if depth < old["depth"] else old["depth"]
            secs = secs if secs < old["s"] else old["s"]
        self.permit = {"depth": depth, "s": secs, "expires": p["expires_at"],
                       "standalone": False, "link": link, "patient": ref}
        if self.depth.setting_um > depth:
            self.depth.setting_um = self.board.min_depth_um
        if not rebind:
            self.state = wire.S_ARMED
        self._log(wire.K_ARMED, 0, depth, secs, p["expires_at"], 2 if rebind else 0)
        return 0

    def set_depth(self, um):
        st = self.state
        if st in (wire.S_HOMING, wire.S_FAULT, wire.S_LOCKED):
            return self._refuse(wire.K_START_REFUSED, wire.T_SET_DEPTH,
                                wire.E_LOCKED if st == wire.S_LOCKED else wire.E_WRONG_STATE)
        pmax = self.permit["depth"] if self.permit else self.board.ceiling_um
        code = safety.check_depth(um, self.board, pmax)
        if code:
            self._refusal(wire.K_START_REFUSED, code, um, 0, st, wire.T_SET_DEPTH)
            return code
        if st == wire.S_RUNNING and um > self.session_depth:
            code = self._persist_session(um, wire.T_SET_DEPTH)
            if code:
                return code
        self.depth.setting_um = um
        if st == wire.S_RUNNING:
            self.depth.set_target(um, self.now_ms)
        return 0

    def set_speed(self, level):
        code = self.motor.set_level(level)
        if code:
            return self._refuse(wire.K_START_REFUSED, wire.T_SET_SPEED, code, level)
        return 0

    def battery_needed(self):
        return safety.battery_needed(self.board, self.remaining_s())

    def remaining_s(self):
        if self.permit is None:
            return 0
        lim = self.permit["s"]
        if lim > self.board.session_cap_s:
            lim = self.board.session_cap_s
        if not self.session_open:
            return lim  # a new session: the last one's needling time does not count
        rem = lim - self.elapsed_ms // 1000
        return rem if rem > 0 else 0

    def start(self, req=wire.T_START):
        st = self.state
        if st == wire.S_RUNNING:
            return self._refuse(wire.K_START_REFUSED, req, wire.E_ALREADY_RUNNING)
        if st == wire.S_LOCKED:
            return self._refuse(wire.K_START_REFUSED, req, wire.E_LOCKED)
        if st in (wire.S_HOMING, wire.S_FAULT):
            return self._refuse(wire.K_START_REFUSED, req, wire.E_WRONG_STATE)
        if st not in (wire.S_ARMED, wire.S_PAUSED) or self.permit is None:
            return self._refuse(wire.K_START_REFUSED, req, wire.E_NOT_ARMED)
        now = self.clock()
        p = self.permit
        if not p["standalone"] and not self.session_open and now and p["expires"] <= now:
            return self._refuse(wire.K_START_REFUSED, req, wire.E_PERMIT_EXPIRED)
        if not self.store_ok:
            return self._refuse(wire.K_START_REFUSED, req, wire.E_STORAGE_FULL)
        if not self.session_open and self.store.free_slots() < self.store.reserve:
            # the session's records could not all be written without losing unread ones
            return self._refuse(wire.K_START_REFUSED, req, wire.E_LOG_UNSYNCED,
                                self.store.free_slots())
        inp = self.inp
        if inp is None:
            return self._refuse(wire.K_START_REFUSED, req, wire.E_WRONG_STATE)
        if not p["standalone"] and not inp.link_up:
            # A START that was queued before the link went: nobody would be watching.
            return self._refuse(wire.K_START_REFUSED, req, wire.E_FAULT_LINK_LOST)
        if not p["standalone"] and p["link"] != inp.link_epoch:
            # The permit was armed on a link that is gone: START only from the link
            # (or with the button, under the eyes of the link) that armed it.
            return self._refuse(wire.K_START_REFUSED, req, wire.E_NOT_ARMED)
        c = self.store.c
        if inp.cartridge is not None and self.cart is not None:
            self.cart_code = self.wear.code(self.cart, now)
        left = -1
        if not self.session_open and self.cart is not None and not self.cart_code:
            left = self.wear.left(self.cart)  # rule 14: the budget for the whole permit
        last_end, last_depth, lock = self._interval_of(p)
        code, detail = safety.check_start(
            self.board, inp, now, self.depth.homed, self.depth.setting_um, p["depth"],
            self.remaining_s(), self.cart_code, last_end, last_depth, lock, left)
        if not code and not self.session_open and self.patients is not None:
            code, detail = self.patients.room(p["patient"], now)
        if not code and self.cart is None:
            code = wire.E_NO_CARTRIDGE  # inserted since the last tick: not checked yet
        if code:
            self.start_detail = detail
            self._refuse(wire.K_START_REFUSED, req, code, detail)
            if st == wire.S_ARMED and code in _DISARMING:
                # the permit was decided for a pen that could start: what is wrong
                # now needs a new decision (a new cartridge, a charge, the interval)
                self._log(wire.K_DISARMED, code, p["depth"], p["s"], detail)
                self.permit = None
                self.state = wire.S_IDLE
            return code
        um = self.depth.setting_um
        if not self.session_open:
            self.session_open = True
            self.session_depth = um
            self.elapsed_ms = 0
            self.strokes = 0
            self.warned = False
            # what the start changes in RAM, put back if it cannot reach flash
            cart = self.cart
            assert cart is not None  # refused above (NO_CARTRIDGE)
            undo = (json.dumps(c), cart.get("first_use"), self._write, self._write_cart)
            self._merge_write(cart, self.wear.begin(cart, now))
            self.wear.session_started(now)
            ref = p.get("patient", "")
            c["sess"] = [now, um, now, 0, 0, ref]
            if self.patients is not None:
                self.patients.open(ref)  # committed with the session
            if not self._commit():  # no needling on a session the pen could not record
                self.store.c = json.loads(undo[0])
                cart["first_use"] = undo[1]
                self._write, self._write_cart = undo[2], undo[3]
                self.session_open = False
                return self._refuse(wire.K_START_REFUSED, req, wire.E_STORAGE_FULL)
            self._log(wire.K_SESSION_START, 0, um, self.remaining_s(), self.motor.target_sps)
        else:
            code = self._persist_session(um, req)
            if code:
                return code
            self._notice(wire.N_RESUMED, self.elapsed_ms)
        self._faults = 0
        self.fault = 0
        self.link_session = bool(inp.link_up) and not p["standalone"]
        self.motor.start(self.now_ms, inp.hall_count)
        self.depth.set_target(um, self.now_ms)
        self.state = wire.S_RUNNING
        self._t_tel = self.now_ms
        self._t_ckpt = self.now_ms
        return 0

    def stop(self):
        # Always allowed, always safe: motor off, needles retract.
        st = self.state
        if st == wire.S_RUNNING and self.elapsed_ms < RESUME_NEEDLING_MS:
            self._halt()
            self._checkpoint()
            self._log(wire.K_SESSION_STOPPED, 0, self.session_depth, self.elapsed_ms, self.strokes)
            self._paused()
            self._notice(wire.N_PAUSED_STOPPED, PAUSE_WINDOW_MS // 1000)
        elif st in (wire.S_RUNNING, wire.S_PAUSED):
            self._halt()
            self._end_session(0)
            self.state = wire.S_FINISHED
        elif st == wire.S_ARMED:
            self.permit = None
            self.state = wire.S_IDLE
        return 0

    # ---- internal transitions -------------------------------------------------
    def _merge_write(self, cart, w):
        # Pending EEPROM fields stay bound to their cartridge: a write for one that
        # was swapped out before the next tick is never programmed into another.
        h = cart_hex(cart)
        if self._write is None or self._write_cart != h:
            self._write = w
            self._write_cart = h
        else:
            for k in w:
                self._write[k] = w[k]

    def _checkpoint(self):
        # Persist the open session's record (rule 6 after a reset: its last needling
        # time and deepest depth; strokes and needling time for the log).
        s = self.store.c["sess"]
        if s:
            s[2] = self.clock()
            s[1] = self.session_depth
            s[3] = self.strokes
            s[4] = self.elapsed_ms
        return self._commit()

    def _persist_session(self, um, req):
        # Rule 6: the session is as deep as its deepest part, and a reset ends it no
        # earlier than now. Both reach flash before the needles move at depth um;
        # if they cannot, the request is refused and nothing changes.
        old = self.session_depth
        if um > old:
            self.session_depth = um
        if self._checkpoint():
            return 0
        self.session_depth = old
        return self._refuse(wire.K_START_REFUSED, req, wire.E_STORAGE_FULL)

    def _halt(self):
        hall = self.inp.hall_count if self.inp is not None else 0
        self.motor.stop(self.now_ms, hall)
        self.depth.retract(self.now_ms)

    def _pause(self, notice):
        self._halt()
        self._paused()
        self._notice(notice, self.elapsed_ms)

    def _paused(self):
        self.state = wire.S_PAUSED
        self._pause_t0 = self.now_ms

    def resume_left_ms(self):
        # How long a paused session may still be started again (0: not paused).
        if self.state != wire.S_PAUSED or not self.session_open:
            return 0
        left = PAUSE_WINDOW_MS - (self.now_ms - self._pause_t0)
        return left if left > 0 else 0

    def _end_session(self, code):
        # Close the open session: log, counters, interval, cartridge finished.
        ref = self.permit.get("patient", "") if self.permit is not None else ""
        self.permit = None
        if not self.session_open:
            return
        self.session_open = False
        c = self.store.c
        now = self.clock()
        c["last_end"] = now
        c["last_depth"] = self.session_depth
        if ref == "" and c["sess"] and len(c["sess"]) > 5:
            ref = c["sess"][5]
        c["sess"] = None
        self._set_lock(self.session_depth, ref, now)
        self.wear.add_run_ms(0)
        if self.cart is not None:
            self._merge_write(self.cart, self.wear.write_back(self.cart, True))
            self.cart_code = self.wear.code(self.cart, now)
        self._log(wire.K_SESSION_END, code, self.session_depth, self.elapsed_ms, self.strokes)
        self._commit()
        self._notice(wire.N_SESSION_FINISHED, self.elapsed_ms // 1000)
        self._notice(wire.N_PERMIT_USED, 0)

    def _enter_fault(self, code):
        prev = self.state
        self._halt()
        self.fault = code
        self._faults += 1
        self._log(wire.K_FAULT, code, self.depth.target_um, prev, self.elapsed_ms)
        if self.session_open:
            self._end_session(code)
        self.permit = None
        locked = self._faults >= MAX_FAULTS
        self.state = wire.S_LOCKED if locked else wire.S_FAULT
        self._fault_t0 = self.now_ms
        self._event(wire.T_EV_FAULT, {"code": code, "state": self.state, "lockout": 1 if locked else 0})

    # ---- the tick ---------------------------------------------------------------
    def tick(self, now_ms, inp):
        out = self.out
        if self._ticked:
            gap = now_ms - self.now_ms
        else:
            # the first tick fixes the monotonic origin (the shell's clock may start anywhere)
            self._ticked = True
            gap = 0
            self._clk_ms = now_ms
            self.depth.start_homing(now_ms)
        self.now_ms = now_ms
        self.inp = inp
        # Events handed out by the last tick were sent; those raised by requests since
        # (STOP's SESSION_FINISHED, START's RESUMED...) go out with this tick's.
        if self._handed:
            self._events = self._events[self._handed:]
        out.events = self._events
        out.cartridge_write = None
        try:
            if self.broken:
                raise RuntimeError("core stopped after an internal error")
            self._tick(now_ms, inp, out, gap)
            self._gate(out, inp)
        except Exception as e:  # fail safe (rule 21): motor off, retract, no watchdog
            self.last_error = e
            self.broken = True
            out.motor_duty = 0
            out.depth_target_um = 0
            out.home_seek = False
            self.motor.duty = 0
            self.motor.running = False
            if self.state != wire.S_LOCKED:
                self.state = wire.S_FAULT
                self.fault = wire.E_FAULT_WATCHDOG
        out.feed_wdt = not self.broken
        self._handed = len(self._events)
        return out

    def _gate(self, out, inp):
        # Last line (rules 1, 10, 11, 20): whatever the state machine decided, the
        # motor runs only in RUNNING, with a permit, contact, no charger, a
        # cartridge and the depth within the permit and the ceiling.
        if out.motor_duty > 0:
            p = self.permit
            if (self.state != wire.S_RUNNING or p is None or not inp.contact or inp.charging
                    or inp.cartridge is None or not self.depth.homed
                    or out.depth_target_um > p["depth"] or out.depth_target_um > self.board.ceiling_um):
                out.motor_duty = 0
                raise RuntimeError("interlock gate: motor demanded outside a valid session")
        if self.state != wire.S_RUNNING and out.depth_target_um != 0:
            out.depth_target_um = 0
            raise RuntimeError("interlock gate: depth out while not running")

    def _watch_link(self, inp):
        # Any change of the link an armed permit came on disarms it (rule 20/21):
        # a central that connects after the host's link dropped finds nothing armed.
        p = self.permit
        if (p is not None and not p["standalone"] and p["link"] != inp.link_epoch
                and self.state == wire.S_ARMED):
            self.permit = None
            self.state = wire.S_IDLE
            self._log(wire.K_DISARMED, 0, p["depth"], p["s"], inp.link_epoch)

    def _tick(self, now_ms, inp, out, gap):
        b = self.board
        self._watch_link(inp)
        self._count_lock(gap)
        if self._reps and now_ms - self._rep_t0 >= REPEAT_WINDOW_MS:
            self._flush_refusals()
        self._cartridge(inp)
        self._button(now_ms, inp)
        # strokes counted while a session is open (the cam coasts after a stop), the
        # higher of the hall count and the motor's back-EMF estimate (rule 14)
        n = self.motor.count(inp.hall_count)
        st = self.state
        if st == wire.S_HOMING:
            r = self.depth.homing_step(now_ms, inp)
            if r == -1:
                self.state = wire.S_IDLE
            elif r:
                self._enter_fault(r)
        elif st == wire.S_FAULT:
            if now_ms - self._fault_t0 >= FAULT_HOLD_MS:
                self.state = wire.S_HOMING
                self.depth.start_homing(now_ms)
        elif st == wire.S_PAUSED and self.session_open and not self.resume_left_ms():
            self._end_session(wire.E_PAUSE_EXPIRED)  # not started again in time
            self.state = wire.S_FINISHED
        elif st == wire.S_RUNNING:
            if gap > MAX_GAP_MS:
                self._enter_fault(wire.E_FAULT_WATCHDOG)
            else:
                self._run(now_ms, inp, gap)
        if self.session_open and n > 0 and self.cart is not None:
            self.strokes += n
            if self.wear.count(self.cart, n) and self.state == wire.S_RUNNING:
                self._halt()
                self._end_session(wire.E_CARTRIDGE_WORN)
                self.state = wire.S_FINISHED
        if self.state != wire.S_RUNNING:
            self.depth.retract(now_ms)
        if self.depth.homed and self.state != wire.S_HOMING:
            code = self.depth.verify(now_ms, inp)
            if code and self.state not in (wire.S_FAULT, wire.S_LOCKED):
                self._enter_fault(code)
        # the motor last, so any stop found above gives duty 0 in this tick
        duty, code = self.motor.update(now_ms, inp)
        if code:
            self._enter_fault(code)
            duty = 0
        if self.state != wire.S_RUNNING:
            duty = 0
            if self.motor.running:
                self._halt()
        out.motor_duty = duty
        homing = self.state == wire.S_HOMING
        out.home_seek = homing
        # The driver holds the carriage only while it has work: homing, a session, or
        # the way back home. Retracted and idle it is off: its holding current (the
        # board's stepper_ma) would drain the cell in hours on the shelf; the lead
        # screw does not back-drive, and the depth check still watches the sensor.
        out.stepper_enable = homing or (self.depth.homed and (
            self.state == wire.S_RUNNING or inp.depth_moving or inp.depth_cmd_um > 0))
        out.depth_target_um = self.depth.target_um if self.state == wire.S_RUNNING else 0
        if (self._write is not None and self.cart is not None and self._cart_id
                and cart_hex(self.cart) == self._write_cart):
            out.cartridge_write = self._write
            self._write = None
        if self.state != self._disp_state or now_ms - self._t_disp >= DISPLAY_MS:
            out.display = self._display(inp)
            self._disp_state = self.state
            self._t_disp = now_ms

    def _run(self, now_ms, inp, gap):
        b = self.board
        code = safety.check_run(b, inp)
        if code:
            self._enter_fault(code)
            return
        if not inp.contact:
            self._pause(wire.N_PAUSED_NO_CONTACT)  # rule 10: only a new START resumes
            return
        p = self.permit
        if p is None:  # an inconsistent state: the fail-safe takes over (rule 21)
            raise RuntimeError("interlock: a session running without its permit")
        if self.link_session and (not inp.link_up or p["link"] != inp.link_epoch):
            # rule 21: a lost link pauses (motor off, retract); only a new START resumes
            self._log(wire.K_LINK_LOST, wire.E_FAULT_LINK_LOST, self.depth.target_um, self.elapsed_ms)
            self._halt()
            self._paused()
            self._event(wire.T_EV_FAULT, {"code": wire.E_FAULT_LINK_LOST, "state": wire.S_PAUSED,
                                          "lockout": 0})
            return
        self.elapsed_ms += gap
        self.wear.add_run_ms(gap)
        if not self.warned and self.elapsed_ms >= b.session_warn_s * 1000:
            self.warned = True
            self._notice(wire.N_SESSION_WARN, self.elapsed_ms // 1000)
            self._log(wire.K_SESSION_WARN, 0, self.depth.target_um, self.elapsed_ms, self.strokes)
        if self.elapsed_ms >= b.session_cap_s * 1000:
            self._halt()
            self._notice(wire.N_SESSION_CAP, self.elapsed_ms // 1000)
            self._end_session(wire.E_SESSION_CAP)
            self.state = wire.S_FINISHED
            return
        if self.permit is not None and self.elapsed_ms >= self.permit["s"] * 1000:
            self._halt()
            self._end_session(0)
            self.state = wire.S_FINISHED
            return
        if now_ms - self._t_tel >= TELEMETRY_MS:
            self._t_tel = now_ms
            self._event(wire.T_EV_TELEMETRY, self.telemetry(inp))
        if now_ms - self._t_ckpt >= CHECKPOINT_MS:
            self._t_ckpt = now_ms
            self._checkpoint()
            if self.cart is not None:
                self._merge_write(self.cart, self.wear.write_back(self.cart))

    def _cartridge(self, inp):
        cart = inp.cartridge
        cid = None
        if cart is not None:
            try:
                cid = bytes(cart["id"])
            except (KeyError, TypeError, ValueError):
                cid = b""
        if cid == self._cart_id:
            self.cart = cart
            return
        now = self.clock()
        dirty = False
        if self.state == wire.S_RUNNING and cart is not None and self.cart is not None:
            # swapped for another between two polls: the new one was never checked
            # (rules 13-15), so the session stops as if the old one was pulled
            self._enter_fault(wire.E_FAULT_CARTRIDGE_PULLED)
        if self.cart is not None and self._cart_id:
            self.wear.removed(self.cart)
            self._log(wire.K_CARTRIDGE_OUT, 0, 0, 0, 0)
            self._event(wire.T_EV_CARTRIDGE, {"inserted": 0, "cart_id": self._cart_id, "cart_state": 0})
            dirty = True
        self._cart_id = cid
        self.cart = cart
        self.cart_code = 0
        if cart is not None:
            self.cart_code = self.wear.code(cart, now)
            if cid:
                dirty = self.wear.inserted(cart) or dirty
                if self._finish_cart and self._finish_cart == cart_hex(cart):
                    self._merge_write(cart, self.wear.write_back(cart, True))
                    self._finish_cart = ""
            self._log(wire.K_CARTRIDGE_IN, self.cart_code, 0, cart.get("used", 0) if cid else 0,
                      cart.get("rated", 0) if cid else 0)
            self._event(wire.T_EV_CARTRIDGE, {"inserted": 1, "cart_id": (cid or bytes(8))[:8],
                                              "cart_state": self.cart_code & 0xFF})
        if dirty:
            self._commit()

    def _button(self, now_ms, inp):
        pressed = bool(inp.button)
        if pressed and not self._btn:
            self._btn_t0 = now_ms
            self._btn_long = False
            if self.state == wire.S_RUNNING:
                self.stop()  # a press stops at once
                self._btn_long = True  # swallow the release
        elif pressed and not self._btn_long and now_ms - self._btn_t0 >= PAIR_HOLD_MS:
            self._btn_long = True
            if self.state not in (wire.S_RUNNING, wire.S_PAUSED):
                self.open_pairing()
        elif not pressed and self._btn and not self._btn_long:
            if now_ms - self._btn_t0 < SHORT_PRESS_MS:
                self._short_press()
        self._btn = pressed

    def _short_press(self):
        st = self.state
        if st in (wire.S_ARMED, wire.S_PAUSED):
            self.start(0)
        elif st in (wire.S_IDLE, wire.S_FINISHED) and self.board.standalone_enabled:
            b = self.board
            self.permit = {"depth": b.standalone_depth_um, "s": b.standalone_s, "expires": 0,
                           "standalone": True, "link": 0}
            if self.depth.setting_um > b.standalone_depth_um:
                self.depth.setting_um = b.standalone_depth_um
            self.state = wire.S_ARMED
            self._log(wire.K_ARMED, 0, b.standalone_depth_um, b.standalone_s, 0, 1)
            if self.start(0):
                self.permit = None
                self.state = wire.S_IDLE

    # ---- views --------------------------------------------------------------------
    def _interval_of(self, p):
        # (last end, last depth, interval left s) rule 6 applies to a session under
        # permit p: the pen's own on a home pen; on a clinic pen the permit's
        # patient's, and an interval the pen still counts from before it was a
        # clinic pen (never set on a clinic pen).
        c = self.store.c
        if self.patients is None:
            return c["last_end"], c["last_depth"], c.get("lock", 0)
        e = self.patients.entry(p.get("patient", "")) if p is not None else None
        lock = c.get("lock", 0)
        if e is None:
            return 0, 0, lock
        return e[0], e[1], e[2] if e[2] > lock else lock

    def lockout_until(self):
        # When rule 6 lets the next session start: on a clinic pen, for the patient
        # of the permit armed or the session open (else only the pen's own count).
        last_end, last_depth, lock = self._interval_of(self.permit)
        return safety.lockout_until(last_end, last_depth, self.clock(), lock)

    def telemetry(self, inp):
        t = inp.temp_c10
        return {"elapsed_ms": self.elapsed_ms & _U32, "strokes": self.strokes & _U32,
                "depth_um": _u16(inp.depth_um), "rate_x10": _u16(self.motor.rate_x10),
                "motor_ma": _u16(inp.motor_ma),
                "temp_c10": -32768 if t < -32768 else (32767 if t > 32767 else t),
                "battery_pct": _u16(inp.battery_pct) & 0xFF, "contact": 1 if inp.contact else 0,
                "state": self.state}

    def status(self):
        inp = self.inp
        c = self.store.c
        p = self.permit
        return {
            "state": self.state, "fault": self.fault, "clock": self.clock() & _U32,
            "depth_set_um": _u16(self.depth.setting_um),
            "depth_actual_um": _u16(inp.depth_um) if inp else 0,
            "speed_level": self.motor.level, "elapsed_ms": self.elapsed_ms & _U32,
            "strokes": self.strokes & _U32,
            "battery_pct": min(100, max(0, inp.battery_pct)) if inp else 0,
            "charging": 1 if inp and inp.charging else 0,
            "contact": 1 if inp and inp.contact else 0,
            "cartridge": 1 if self.cart is not None else 0,
            "permit_depth_um": p["depth"] if p else 0, "permit_s": p["s"] if p else 0,
            "last_session_end": c["last_end"] & _U32, "last_session_depth_um": _u16(c["last_depth"]),
            "lockout_until": self.lockout_until() & _U32,
            "resume_left_s": _u16((self.resume_left_ms() + 999) // 1000),
        }

    def wear_fields(self):
        return self.wear.wire_fields(self.cart, self.clock())

    def waiting_for(self, inp):
        # What an ARMED pen waits for before a START can pass ("" = nothing known).
        if self.state != wire.S_ARMED or inp is None:
            return ""
        if inp.charging:
            return "unplug charger"
        if inp.cartridge is None or self.cart is None:
            return "no cartridge"
        if not self.depth.homed:
            return "homing"
        if not inp.contact:
            return "no contact"
        return ""

    def _display(self, inp):
        um = self.depth.setting_um
        s = self.elapsed_ms // 1000
        text = "%s %d.%02dmm L%d\n%02d:%02d bat %d%%" % (
            _NAMES[self.state], um // 1000, (um % 1000) // 10, self.motor.level + 1,
            s // 60, s % 60, inp.battery_pct)
        wait = self.waiting_for(inp)
        return text + "\nwaits: " + wait if wait else text
