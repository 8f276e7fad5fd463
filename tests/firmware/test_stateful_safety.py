"""Stateful safety model of the firmware core (hypothesis RuleBasedStateMachine).

The machine drives the real core (Pen + Handler + Store over a FaultyFs on disk)
against the Plant in virtual time, 10 ms ticks (100 ms ticks only while nothing
moves, which is within the core's own 100 ms loop-gap contract), with rules for
host commands (ARM with valid / forged / replayed / expired / over-limit /
wrong-key permits, SET_DEPTH, SET_SPEED, START, STOP, SET_KEY), body faults
(stall, charger, contact, cartridge pulled / reinserted / new / expired / worn /
used elsewhere, link, clock jumps) and power loss, either between two steps or
at a chosen storage write point with a torn write.

The model keeps its own account of permits, sessions, cartridges and needling
time, and checks at EVERY tick (the check_* methods of Machine, rule numbers of
SAFETY_RULES.md):

- check_no_needles_without_an_unused_issued_permit (rule 20)
- check_depth_within_ceiling_and_permit (rules 1, 2)
- check_needling_time_within_15_min_and_permit (rule 5)
- check_no_needles_while_charging_without_contact_or_link (rules 10, 11, 21)
- check_nothing_resumes_without_a_new_start (rules 10, 21)
- check_cartridge_single_use_not_worn (rules 13-15: used, reinserted, worn, expired)
- check_stall_and_overcurrent_stop_within_one_tick (rule 9)
- check_retracted_unless_running (rules 20, 21)

and after every step (invariants): log records read back through LOG_READ and
every acknowledged append stay readable with identical bytes (unless rotated
out), counters (log seq, handpiece strokes / punctures / sessions / run time,
cartridge used counts and flags, nonce floor) never go backwards in RAM or on
flash, and the core never trips its own internal-error path. At an acknowledged
START the model also checks the interval lockout (rule 6, its own table) and the
permit's expiry (rule 20); every ARM of a forged, replayed, expired, over-limit
or wrong-key permit must be refused with its exact code.
"""

import json
import shutil
import tempfile

import pytest
from faultyfs import FaultyFs, PowerLoss
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from pen import core, safety, wire
from pen import wear as pen_wear
from pen.board import Board
from pen.store import pack_record
from plant import cartridge
from rig import KEY, T0, board_doc, signed_time
from stateful_cartridge_auth import CartridgeAttacks
from stateful_idle_off import IdleOffRules
from stateful_links import LinkAttacks
from stateful_pauses import PauseRules
from stateful_sensors import SensorFaults
from stateful_support import (
    StatefulRig,
    assert_not_behind,
    committed,
    interval_s,
    snapshot,
)

OTHER_KEY = bytes(range(101, 133))
#: The patients permits name (opaque 8-byte references, issue 15 item 3).
PATIENTS = (b"patientA", b"patientB", b"patientC")
CEILING_UM = 1500  # rule 1: product ceiling of the home model
CAP_MS = 900_000  # rule 5: 15 minutes of needling
GRID_UM = 250  # rule 2
SLACK_S = core.CHECKPOINT_MS // 1000 + 1  # an interrupted session's end is its last checkpoint
EXPIRED_AT = 1_000_000_000  # long before any clock the machine sets
QUIET = (wire.S_IDLE, wire.S_ARMED, wire.S_FINISHED, wire.S_PAUSED, wire.S_LOCKED)
GATES = {wire.S_RUNNING: wire.E_ALREADY_RUNNING, wire.S_PAUSED: wire.E_ALREADY_RUNNING,
         wire.S_LOCKED: wire.E_LOCKED, wire.S_HOMING: wire.E_WRONG_STATE,
         wire.S_FAULT: wire.E_WRONG_STATE}
OPEN = (wire.S_RUNNING, wire.S_PAUSED)

depths = st.sampled_from([250, 500, 750, 1000, 1250, 1500])
durations = st.sampled_from([20, 60, 120, 600, 900])
CART_KINDS = ("fresh", "expired", "worn", "nearly_worn", "used_elsewhere", "finished")


def note(what):
    """A hypothesis event (coverage statistics), also outside a hypothesis run."""
    if currently_in_test_context():
        event(what)


class Cart:
    """The model's view of one cartridge: its EEPROM dict, budget and history."""

    def __init__(self, rec, rated, bad=None):
        self.rec = rec
        self.rated = rated
        self.used = rec["used"]
        self.bad = bad  # why it may never be used (rule 13/15), None if fresh
        self.sessions = 0


def act(**strategies):
    """A rule followed by 0-30 ticks: the world goes on while the host and the
    user act, so most steps let some time pass (the explicit advance_* rules add
    seconds and minutes)."""
    def deco(f):
        def run(self, *args, ticks=0, **kw):
            f(self, *args, **kw)
            for _ in range(ticks):
                self._tick(10)
        run.__name__ = f.__name__
        run.__doc__ = f.__doc__
        return rule(ticks=st.integers(0, 30), **strategies)(run)
    return deco


class Machine(SensorFaults, CartridgeAttacks, LinkAttacks, PauseRules, IdleOffRules,
              RuleBasedStateMachine):
    """The pen, its body and flash, and the model of what the test allowed."""

    def __init__(self):
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="pen-sm-")
        self.fs = FaultyFs(self.root)
        self.acked = set()  # log seqs whose append returned
        self.rig = StatefulRig(self.fs, self.acked, home=False, board=self.make_board())
        self.inp = self.rig.plant.inp
        self.board = self.rig.board
        self.offset = 0  # host clock = T0 + offset + t // 1000
        self.n_nonce = 0
        self.n_cart = 0
        self.spent = set()  # nonces of permits the pen acknowledged (ARM)
        self.issued = {}  # nonce -> permit, every permit this test signed with KEY
        self.nonce_sessions = {}
        self.armed = None  # the permit of the last acknowledged ARM, until used
        self.sess = None  # the open session: see _open_session
        self.last = None  # the last closed session
        # rule 6's subject -> its last closed session: the pen on a home pen (b""),
        # each patient on a clinic pen (the permit's patient reference)
        self.lasts = {}
        self.patient = PATIENTS[0]  # whom the next permits name
        self.carts = {}
        self.pulled = None
        self.since_start = set()  # interruptions since the last acknowledged START
        self.stall_ticks = 0
        self.events = 0
        self.read_back = {}
        self.hall_seen = self.inp.hall_count
        self._add_cart(self.inp.cartridge)
        self._rebase()
        self.disk = snapshot(committed(self.fs))
        self._advance(1500)

    def teardown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def make_board(self):
        return None  # the rig's home board

    def subject(self, permit):
        """Whom rule 6 follows for a session under `permit`: the pen (home)."""
        return b""

    # ---- helpers: clock, carts, requests ----------------------------------------
    @property
    def pen(self):
        return self.rig.pen

    def host_now(self):
        return T0 + self.offset + self.rig.t // 1000

    def _rebase(self):
        self.mem = snapshot(self.pen.store.c)
        self.last_seq = self.pen.store.last_seq()

    def _add_cart(self, rec, bad=None):
        rated = min(rec["rated"], self.board.cartridge_rated_strokes)
        self.carts[bytes(rec["id"])] = Cart(rec, rated, bad)

    def _cur(self):
        c = self.inp.cartridge
        return None if c is None else bytes(c["id"])

    def _req(self, t, fields=None, auth=True):
        # -> 0 (ACK), the NACK code, or None: not delivered (no link) or power lost
        if not self.inp.link_up:
            return None
        self.events += 1
        try:
            code = self.rig.code(t, fields, auth)
        except PowerLoss:
            self._power_cycle(True)
            return None
        self._sync()
        return code

    def _sync(self):
        # The pen left the session (stop, end, fault): the model closes it too.
        if self.sess is not None and self.pen.state not in OPEN:
            self._close_session(False)
        if self.sess is None and self.pen.state not in (wire.S_ARMED, *OPEN):
            self.armed = None  # dropped by a fault or STOP (a START consumes it in _started)

    # ---- the tick and its checks ---------------------------------------------------
    def _quiet(self):
        p = self.rig.plant
        return (self.pen.state in QUIET and self.pen.out.motor_duty == 0 and p.pos == 0
                and p.speed < 0.5)

    def _advance(self, ms):
        while ms > 0:
            dt = 100 if self._quiet() and ms >= 100 else 10
            self._tick(dt)
            ms -= dt

    def _tick(self, dt):
        self._count_strokes()
        self._observe_interruptions()
        ma_in = self.inp.motor_ma
        self.rig.t += dt
        self.events += 1
        out = self.pen.tick(self.rig.t, self.inp)
        self.check_tick(out, ma_in, dt)
        self._sync()
        self.rig.plant.step(out, dt)
        if self.fs.dead:
            self._power_cycle(True)

    def _observe_interruptions(self):
        # What the pen will see in this tick and must not needle through until a
        # new START (a change that comes and goes between two ticks is not seen).
        s = self.sess
        if s is None:
            return
        i = self.inp
        for why, cond in (("contact", not i.contact), ("charging", i.charging),
                          ("link", not i.link_up)):
            if cond:
                self.since_start.add(why)
        if s["cart"] is not None and self._cur() != s["cart"] and not s["cart_removed"]:
            s["cart_removed"] = True  # for good: only another cartridge may take over
            self.since_start.add("cartridge")

    def _count_strokes(self):
        n = self.inp.hall_count - self.hall_seen
        self.hall_seen = self.inp.hall_count
        cid = self._cur()
        if self.sess is not None and cid is not None:
            self.carts[cid].used += n

    def check_tick(self, out, ma_in, dt):
        self.check_sensor_crosschecks(out)
        self.check_pause_window()
        self.check_stall_and_overcurrent_stop_within_one_tick(out, ma_in)
        self.check_retracted_unless_running(out)
        if out.motor_duty <= 0 and out.depth_target_um <= 0:
            return
        s = self.check_no_needles_without_an_unused_issued_permit()
        self.check_depth_within_ceiling_and_permit(out, s)
        self.check_needling_time_within_15_min_and_permit(s, dt)
        self.check_no_needles_while_charging_without_contact_or_link()
        self.check_nothing_resumes_without_a_new_start()
        self.check_cartridge_single_use_not_worn(s)
        s["last_active"] = self.pen.clock()

    def check_stall_and_overcurrent_stop_within_one_tick(self, out, ma_in):
        if ma_in > self.board.overcurrent_ma:
            assert out.motor_duty == 0, "rule 9: motor driven in the tick that read overcurrent"
        if self.rig.plant.stall and out.motor_duty > 0:
            self.stall_ticks += 1
            assert self.stall_ticks <= 1, "rule 9: motor driven more than one tick into a stall"

    def check_retracted_unless_running(self, out):
        if self.pen.state != wire.S_RUNNING:
            assert out.motor_duty == 0 and out.depth_target_um == 0, \
                f"rule 21: needles out in state {self.pen.state}"

    def check_no_needles_without_an_unused_issued_permit(self):
        s = self.sess
        assert s is not None, "rule 20: needles moved outside a session the test started"
        nonce = s["permit"]["nonce"]
        assert nonce in self.issued, "rule 20: permit not issued by the test"
        assert self.nonce_sessions[nonce] == 1, "rule 20: a permit backs a second session"
        assert self.pen.permit is not None and not self.pen.permit["standalone"]
        return s

    def check_depth_within_ceiling_and_permit(self, out, s):
        um = out.depth_target_um
        limit = min(CEILING_UM, self.board.ceiling_um, s["permit"]["max_depth_um"])
        assert um <= limit, f"rule 1/20: depth target {um} above {limit}"
        assert um % GRID_UM == 0, f"rule 2: depth target {um} off the grid"
        s["max_depth"] = max(s["max_depth"], um)

    def check_needling_time_within_15_min_and_permit(self, s, dt):
        s["active_ms"] += dt
        limit = min(CAP_MS, s["permit"]["max_duration_s"] * 1000)
        assert s["active_ms"] <= limit, f"rule 5/20: {s['active_ms']} ms needled, limit {limit}"

    def check_no_needles_while_charging_without_contact_or_link(self):
        i = self.inp
        assert not i.charging, "rule 11: needles out while charging"
        assert i.contact, "rule 10: needles out without skin contact"
        assert i.link_up, "rule 21: needles out with the link lost"

    def check_nothing_resumes_without_a_new_start(self):
        assert not self.since_start, \
            f"rules 10/21: needles resumed after {sorted(self.since_start)} without a START"

    def check_cartridge_single_use_not_worn(self, s):
        # The session takes the cartridge the needles first move with (the pen
        # checks the cartridge it has polled, which may differ for one tick).
        cid = self._cur()
        assert cid is not None, "needles out without a cartridge"
        if cid != s["cart"] or s["cart_removed"]:
            assert cid != s["cart"], "rule 13: needles out with a cartridge pulled mid-session"
            self._take_cart(cid)
            s["cart"] = cid
            s["cart_removed"] = False
        c = self.carts[cid]
        assert c.used < c.rated, f"rule 14: {c.used} strokes on a cartridge rated {c.rated}"

    # ---- sessions --------------------------------------------------------------------
    def _take_cart(self, cid):
        c = self.carts[cid]
        assert c.bad is None, f"rules 13/15: needles out with a cartridge that is {c.bad}"
        assert c.sessions == 0, "rule 13: needles out with a cartridge used in another session"
        assert c.used < c.rated, "rule 14: needles out with a worn-out cartridge"
        c.sessions += 1
        note("needles out")

    def _check_interval(self):
        last = self.lasts.get(self.subject(self.armed))
        if last is None or (last["interrupted"] and last["clock_changed"]):
            return  # a clock set mid-session and then a reset: the host's time is trusted
        slack = SLACK_S if last["interrupted"] else 0
        lift = last["end"] + interval_s(last["depth"]) - slack
        assert self.pen.clock() >= lift, \
            f"rule 6: session started {lift - self.pen.clock()} s before the interval lifts"

    def _open_session(self):
        p = self.armed
        assert p is not None, "rule 20: START acknowledged without an armed permit"
        assert self.pen.clock() < p["expires_at"], "rule 20: START on an expired permit"
        self._check_interval()
        self.check_interval_in_running_time()
        self.nonce_sessions[p["nonce"]] = self.nonce_sessions.get(p["nonce"], 0) + 1
        self.armed = None
        note("session started")
        self.sess = {"permit": p, "cart": None, "cart_removed": False, "active_ms": 0,
                     "max_depth": 0, "last_active": self.pen.clock(), "clock_changed": False}

    def _close_session(self, interrupted):
        s = self.sess
        self.sess = None
        note(f"session closed after {'>0' if s['active_ms'] else 'no'} needling")
        self.last = {"end": s["last_active"], "depth": s["max_depth"], "event": self.events,
                     "interrupted": interrupted, "clock_changed": s["clock_changed"],
                     "t": self.rig.t}
        self.lasts[self.subject(s["permit"])] = self.last

    def _started(self):
        i = self.inp
        assert not i.charging and i.contact, "rules 10/11: START acknowledged"
        if self.sess is None:
            self._open_session()
        self.since_start = set()
        self.stall_ticks = 0

    # ---- power ---------------------------------------------------------------------------
    def _power_cycle(self, resync, reset_code=0):
        if self.sess is not None:
            self._close_session(True)
        elif self.last is not None and self.last["event"] == self.events:
            self.last["interrupted"] = True  # closed in the step the power died
        self.armed = None
        note("power lost at a write point" if self.fs.dead else "power lost between steps")
        disk = snapshot(committed(self.fs))
        assert_not_behind(disk, self.disk, "flash before reboot")
        for _ in range(8):
            self.fs.dead = False
            try:
                self.rig.boot(reset_code)
                break
            except PowerLoss:
                continue
        self._after_boot(disk, resync)

    def _after_boot(self, disk, resync):
        pen = self.pen
        assert pen.state == wire.S_HOMING and pen.permit is None, "rule 21: reboot not safe"
        assert_not_behind(snapshot(pen.store.c), disk, "counters after reboot")
        assert pen.store.last_seq() >= max(self.acked), "log seq went back over a reboot"
        self.disk = disk
        self._rebase()
        self.hall_seen = self.inp.hall_count
        self.stall_ticks = 0
        self.since_start.add("reboot")
        if resync:
            self._req(wire.T_SET_TIME, signed_time(self.host_now()))

    @initialize(begin=st.booleans(), depth=depths, duration=durations)
    def ready(self, begin, depth, duration):
        """Half of the runs start with a session under way."""
        if begin:
            self.begin_session(depth, duration, 1)

    # ---- rules: permits -----------------------------------------------------------------
    def _permit(self, depth, duration, key=KEY, expires_in=3600, age=10):
        self.n_nonce += 1
        now = self.pen.clock() or T0
        p = self.rig.permit(depth=depth, duration=duration, issued=now - age,
                            expires=now + expires_in, key=key,
                            nonce=b"S" + self.n_nonce.to_bytes(7, "little"),
                            patient=self.patient)
        if key == KEY:
            self.issued[p["nonce"]] = p
        return p

    def _arm(self, p, expect):
        gate = GATES.get(self.pen.state)
        held = self.pen.permit
        if (self.pen.state == wire.S_PAUSED and held is not None and not held["standalone"]
                and held["link"] != self.inp.link_epoch):
            gate = None  # a paused session whose link is gone: the key holder arms it again
        unset = not self.pen.clock()
        if (gate is None and held is not None and self.pen.state == wire.S_PAUSED
                and self.sess is not None and expect == 0
                and self.subject(p) != self.subject(self.sess["permit"])):
            expect = wire.E_PERMIT_OTHER_PATIENT  # a paused session goes on for its patient only
        code = self._req(wire.T_ARM, p)
        if code is None:
            return None
        if gate:
            assert code == gate, f"ARM in state gate: {code} != {gate}"
        elif expect == wire.E_PERMIT_BAD_TAG or expect == wire.E_PERMIT_REPLAYED:
            assert code == expect, f"ARM: {code} != {expect}"
        else:
            assert code == (wire.E_PERMIT_CLOCK_UNSET if unset else expect), f"ARM: {code}"
        if code == 0:
            assert p["nonce"] not in self.spent, "rule 20: a used permit was armed again"
            self.spent.add(p["nonce"])
            if self.sess is not None:  # armed again on a new link: both permits bind
                self.sess["permit"] = dict(self.sess["permit"], max_depth_um=min(
                    p["max_depth_um"], self.sess["permit"]["max_depth_um"]),
                    max_duration_s=min(p["max_duration_s"],
                                       self.sess["permit"]["max_duration_s"]))
                # (self.issued keeps the permit as it was signed: a replay of it must
                # read as a replay, not as a bad tag)
            else:
                self.armed = p
        return code

    @act(depth=depths, duration=durations, expires_in=st.sampled_from([30, 3600]))
    def arm_valid_permit(self, depth, duration, expires_in):
        self._arm(self._permit(depth, duration, expires_in=expires_in), 0)

    @act(i=st.integers(0, len(PATIENTS) - 1))
    def next_patient(self, i):
        """The next permits name another patient (a home pen ignores whom)."""
        self.patient = PATIENTS[i]

    @act(tag=st.binary(min_size=32, max_size=32))
    def arm_forged_tag(self, tag):
        p = self._permit(500, 60)
        p["tag"] = tag
        self._arm(p, wire.E_PERMIT_BAD_TAG)

    @act()
    def arm_wrong_key_permit(self):
        self._arm(self._permit(500, 60, key=OTHER_KEY), wire.E_PERMIT_BAD_TAG)

    @precondition(lambda self: self.spent)
    @act(i=st.integers(0, 10_000))
    def arm_replayed_permit(self, i):
        nonce = sorted(self.spent)[i % len(self.spent)]
        self._arm(self.issued[nonce], wire.E_PERMIT_REPLAYED)

    @act(age=st.sampled_from([1, 60, 86400]))
    def arm_expired_permit(self, age):
        self._arm(self._permit(500, 60, expires_in=-age, age=age + 600), wire.E_PERMIT_EXPIRED)

    @act(limits=st.sampled_from([(1750, 60), (2500, 60), (1000, 901), (1000, 3600), (0, 60)]))
    def arm_permit_above_hard_limits(self, limits):
        self._arm(self._permit(*limits), wire.E_PERMIT_OVER_LIMIT)

    @act(key=st.sampled_from([OTHER_KEY, bytes(32)]), auth=st.booleans())
    def set_key_outside_pairing(self, key, auth):
        old = self.pen.store.c["key"]
        code = self._req(wire.T_SET_KEY, {"key": key}, auth)
        assert code != 0 and self.pen.store.c["key"] == old, "key replaced outside pairing"

    # ---- rules: commands ---------------------------------------------------------------------
    @act(um=st.sampled_from([0, 100, 250, 500, 600, 750, 1000, 1250, 1500, 1750, 2500]))
    def set_depth(self, um):
        p = self.sess["permit"] if self.sess else self.armed
        code = self._req(wire.T_SET_DEPTH, {"depth_um": um})
        if code == 0:
            pmax = p["max_depth_um"] if p else CEILING_UM
            assert um % GRID_UM == 0 and GRID_UM <= um <= min(pmax, CEILING_UM), \
                f"rules 1/2/20: depth {um} accepted (permit {pmax})"

    @act(level=st.integers(0, 5))
    def set_speed(self, level):
        code = self._req(wire.T_SET_SPEED, {"level": level})
        if code is not None:
            assert (code == 0) == (level < len(self.board.speed_levels_sps))

    @act()
    def start(self):
        if self._req(wire.T_START) == 0:
            self._started()

    @act()
    def stop(self):
        before, s = self.pen.state, self.sess
        code = self._req(wire.T_STOP)
        if code is not None:
            assert code == 0 and self.pen.state not in (wire.S_RUNNING, wire.S_ARMED)
            self.check_stop_pause(before, s)

    @act(depth=depths, setting=depths, duration=durations, level=st.integers(0, 3))
    def begin_session(self, depth, duration, level, setting=None):
        if self._arm(self._permit(depth, duration), 0) != 0:
            return
        self._req(wire.T_SET_DEPTH, {"depth_um": min(depth, setting or depth)})
        self._req(wire.T_SET_SPEED, {"level": level})
        self.start()

    # ---- rules: body faults ----------------------------------------------------------------
    @act(on=st.booleans())
    def motor_stall(self, on):
        self.rig.plant.stall = on
        self.stall_ticks = 0

    @act(on=st.booleans())
    def charger(self, on):
        self.inp.charging = on

    @act(on=st.booleans())
    def skin_contact(self, on):
        self.inp.contact = on

    @act(on=st.booleans())
    def link(self, on):
        self.inp.link_up = on

    def _remove_cart(self):
        cid = self._cur()
        if cid is None:
            return
        self.pulled = self.inp.cartridge
        self.inp.cartridge = None

    @precondition(lambda self: self.inp.cartridge is not None)
    @act()
    def cartridge_pulled(self):
        self._remove_cart()

    @precondition(lambda self: self.pulled is not None)
    @act()
    def cartridge_reinserted(self):
        rec = self.pulled
        self._remove_cart()
        self.inp.cartridge = rec

    @act(kind=st.sampled_from(CART_KINDS))
    def cartridge_new(self, kind):
        self.n_cart += 1
        cid = b"\x2d" + self.n_cart.to_bytes(7, "little")
        recs = {"fresh": {}, "expired": {"expiry": EXPIRED_AT}, "worn": {"rated": 1000, "used": 1000},
                "nearly_worn": {"rated": 1000, "used": 700},
                "used_elsewhere": {"first_use": T0 - 100, "used": 500},
                "finished": {"first_use": T0 - 5000, "used": 2000, "finished": True}}
        rec = cartridge(cid=cid, **recs[kind])
        bad = kind if kind in ("expired", "used_elsewhere", "finished") else None
        self._add_cart(rec, bad)
        self._remove_cart()
        self.inp.cartridge = rec

    @act(delta=st.sampled_from([-60 * 86400, -3600, -60, 60, 3600, 25 * 3600, 73 * 3600,
                                 8 * 86400]))
    def clock_jump(self, delta):
        self.offset += delta
        if self._req(wire.T_SET_TIME, signed_time(self.host_now())) == 0 and self.sess is not None:
            self.sess["clock_changed"] = True

    # ---- rules: power ----------------------------------------------------------------------
    @act(resync=st.booleans(), reset_code=st.sampled_from([0, wire.E_FAULT_WATCHDOG]))
    def power_loss_reboot(self, resync, reset_code):
        self._power_cycle(resync, reset_code)

    @act(k=st.integers(1, 12), torn=st.sampled_from([0, 1, -1]))
    def power_loss_at_next_write_point(self, k, torn):
        self.fs.fail_at = self.fs.points + k
        self.fs.torn = torn

    # ---- rules: time and reads -------------------------------------------------------------
    @rule(n=st.integers(1, 60))
    def advance_ticks(self, n):
        for _ in range(n):
            self._tick(10)

    @rule(s=st.integers(1, 90))
    def advance_seconds(self, s):
        self._advance(s * 1000)

    @rule(m=st.integers(1, 8))
    def advance_minutes(self, m):
        self._advance(m * 60_000)

    @rule(where=st.sampled_from(["start", "next", "first", "last"]))
    def log_read(self, where):
        st_ = self.pen.store
        frm = {"start": 0, "next": max(self.read_back, default=0) + 1, "first": st_.first_seq(),
               "last": st_.last_seq()}[where]
        _rt, _, f = self.rig.req(wire.T_LOG_READ, {"from_seq": frm, "max_records": 160})
        seqs = [r["seq"] for r in f["records"]]
        assert seqs == sorted(set(seqs)), "LOG_READ: seqs repeat or go back"
        for r in f["records"]:
            raw = pack_record(r["seq"], r["time"], r["kind"], r["flags"], r["code"],
                              r["depth_um"], r["a"], r["b"])
            assert self.read_back.setdefault(r["seq"], raw) == raw, f"record {r['seq']} changed"

    # ---- invariants (after every step) ------------------------------------------------------
    @invariant()
    def log_records_read_back_and_acknowledged_stay_intact(self):
        st_ = self.pen.store
        first = st_.first_seq()
        got = {int.from_bytes(r[:4], "little"): r for r in st_.read(first, 10_000)[2]}
        for seq, raw in self.read_back.items():
            if seq >= first:
                assert got.get(seq) == raw, f"record {seq} read back earlier is lost or changed"
        lost = sorted(s for s in self.acked if s >= first and s not in got)
        assert not lost, f"acknowledged records lost: {lost}"

    @invariant()
    def counters_never_go_backwards(self):
        mem = snapshot(self.pen.store.c)
        assert_not_behind(mem, self.mem, "counters in RAM")
        seq = self.pen.store.last_seq()
        assert seq >= self.last_seq, "log last seq went back"
        disk = snapshot(committed(self.fs))
        assert_not_behind(disk, self.disk, "counters on flash")
        self.mem, self.last_seq, self.disk = mem, seq, disk

    @invariant()
    def core_never_hit_an_internal_error(self):
        assert not self.pen.broken, f"core failed safe on {self.pen.last_error!r}"


Machine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestFirmwareSafetyMachine = Machine.TestCase


class ClinicMachine(Machine):
    """The same machine on a clinic pen (issue 15 item 3): rule 6 follows the
    permit's patient; each acknowledged START is judged against that patient's
    last session only, and a paused session goes on only for its own patient."""

    def make_board(self):
        doc = json.loads(json.dumps(board_doc()))
        doc["use"] = "clinic"
        doc["limits"]["patient_slots"] = 8
        return Board(doc)

    def subject(self, permit):
        return bytes(permit["patient"])


ClinicMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestClinicPenSafetyMachine = ClinicMachine.TestCase


# ---- directed sequences ------------------------------------------------------------------------
@pytest.fixture
def machine():
    m = Machine()
    yield m
    m.teardown()


def running(m, depth=500, duration=120, level=1):
    m.begin_session(depth, duration, level)
    m.advance_ticks(50)
    assert m.pen.state == wire.S_RUNNING and m.sess is not None


def test_machine_checks_a_full_15_minute_session(machine):
    """Rule 5: a 900 s permit at 100 strokes/s runs to the cap, and the per-tick
    check saw the whole session (so the cap check is not vacuous)."""
    running(machine, 500, 900, 0)
    for _ in range(4):
        machine.advance_minutes(4)
    assert machine.pen.state == wire.S_FINISHED and machine.sess is None
    assert machine.last["depth"] == 500
    assert 899_000 <= machine.pen.elapsed_ms <= CAP_MS
    assert wire.E_SESSION_CAP in [r["code"] for r in machine.rig.log(wire.K_SESSION_END)]


def test_machine_power_loss_at_write_point_mid_session_is_safe(machine):
    """Rules 13, 20, 21: power lost at the next storage write (a torn checkpoint)
    while running: the pen comes back homing, the permit and cartridge stay used."""
    running(machine)
    nonce = machine.sess["permit"]["nonce"]
    machine.power_loss_at_next_write_point(1, -1)
    machine.advance_seconds(40)  # the 30 s checkpoint is the next write point
    assert machine.fs.fail_at and machine.fs.points >= machine.fs.fail_at
    assert machine.pen.state == wire.S_IDLE and machine.sess is None
    assert machine.last["interrupted"]
    machine.arm_replayed_permit(sorted(machine.spent).index(nonce))
    assert machine.pen.state == wire.S_IDLE
    machine.log_records_read_back_and_acknowledged_stay_intact()
    machine.counters_never_go_backwards()


def _without_contact(fn):
    def patched(self, *args):
        inp = args[-1] if fn.__name__ == "_gate" else args[1]
        saved = inp.contact
        inp.contact = True
        try:
            return fn(self, *args)
        finally:
            inp.contact = saved
    return patched


def test_machine_catches_contact_gating_removed(machine, monkeypatch):
    """Sanity (rule 10): with the firmware's contact checks taken out, the per-tick
    check fails as soon as contact is lost while running."""
    monkeypatch.setattr(core.Pen, "_run", _without_contact(core.Pen._run))
    monkeypatch.setattr(core.Pen, "_gate", _without_contact(core.Pen._gate))
    running(machine)
    machine.skin_contact(False)
    with pytest.raises(AssertionError, match="rule 10"):
        machine.advance_ticks(5)


def finished(m):
    """STOP until the session is over (a first STOP in its first 30 s only pauses)."""
    m.stop()
    if m.pen.state == wire.S_PAUSED:
        m.stop()


def test_machine_catches_replay_check_removed(machine, monkeypatch):
    """Sanity (rule 20): with the used-nonce check taken out, replaying a spent
    permit is caught at the ARM."""
    check = core._permit.check
    monkeypatch.setattr(core._permit, "check", lambda p, k, now, used, fl, b: check(p, k, now, [], 0, b))
    running(machine)
    finished(machine)
    with pytest.raises(AssertionError, match="ARM"):
        machine.arm_replayed_permit(0)


def test_machine_catches_reinsertion_check_removed(machine, monkeypatch):
    """Sanity (rule 13): with REINSERTED taken out of the cartridge check, resuming a
    paused session with its pulled-and-reinserted cartridge is caught."""
    code = pen_wear.Wear.code
    monkeypatch.setattr(pen_wear.Wear, "code", lambda self, c, now: (
        0 if code(self, c, now) == wire.E_CARTRIDGE_REINSERTED else code(self, c, now)))
    running(machine)
    machine.skin_contact(False)
    machine.advance_ticks(5)
    machine.cartridge_pulled()
    machine.advance_ticks(5)
    machine.cartridge_reinserted()
    machine.skin_contact(True)
    machine.advance_ticks(5)
    machine.start()
    with pytest.raises(AssertionError, match="rule 13"):
        machine.advance_ticks(5)


def test_machine_catches_interval_check_removed(machine, monkeypatch):
    """Sanity (rule 6): with the interval lockout taken out, a second session the
    next minute on a fresh cartridge is caught at the START."""
    monkeypatch.setattr(safety, "check_interval", lambda now, end, depth, lock_s=0: (0, 0))
    running(machine, 1000, 60)
    finished(machine)
    machine.advance_ticks(10)
    machine.cartridge_new("fresh")
    machine.advance_seconds(60)
    with pytest.raises(AssertionError, match="rule 6"):
        machine.begin_session(500, 60, 1)


# ---- regressions: firmware bugs this machine found (fixed in pen/core.py) -----------------------
def _refused_for_interval(m):
    m.cartridge_new("fresh")
    m.advance_ticks(10)
    m.begin_session(250, 60, 1)  # the model's rule 6 check runs at an acknowledged START
    assert m.sess is None
    assert m.rig.log(wire.K_START_REFUSED)[-1]["code"] == wire.E_INTERVAL_LOCKOUT


def test_machine_rule06_deeper_setting_on_resume_counts_for_the_interval(machine):
    """Rule 6: 0.25 mm, paused, set to 1.5 mm, resumed: the 7-day interval applies."""
    machine.arm_valid_permit(1500, 600, 3600)
    machine.set_depth(250)
    machine.start()
    machine.advance_ticks(50)
    machine.skin_contact(False)
    machine.advance_ticks(5)
    machine.set_depth(1500)
    machine.skin_contact(True)
    machine.start()
    machine.advance_seconds(5)
    finished(machine)
    assert machine.pen.store.c["last_depth"] == 1500
    machine.clock_jump(25 * 3600)
    _refused_for_interval(machine)


def test_machine_rule06_depth_raised_while_running_survives_a_reset(machine):
    """Rule 6: a deeper setting while running is on flash before a reset can lose it."""
    machine.arm_valid_permit(1500, 600, 3600)
    machine.set_depth(250)
    machine.start()
    machine.advance_ticks(50)
    machine.set_depth(1500)
    machine.advance_seconds(5)  # before the 30 s checkpoint
    machine.power_loss_reboot(True, 0)
    machine.advance_seconds(3)
    assert machine.pen.store.c["last_depth"] == 1500
    machine.clock_jump(25 * 3600)
    _refused_for_interval(machine)


def test_machine_rule06_reset_after_a_long_pause_keeps_the_interval(machine):
    """Rule 6: a resume refreshes the session's end time on flash, so a reset after
    a long pause does not date the session back to the last checkpoint before it."""
    machine.begin_session(250, 600, 1)
    machine.advance_seconds(40)
    machine.skin_contact(False)
    machine.advance_minutes(8)
    machine.advance_minutes(8)  # paused longer than the 10 min the clock falls short below
    machine.skin_contact(True)
    machine.start()
    machine.advance_seconds(20)
    machine.power_loss_reboot(True, 0)
    machine.advance_seconds(3)
    machine.clock_jump(24 * 3600 - 600)
    _refused_for_interval(machine)


def test_machine_cartridge_swapped_while_running_stops_the_session(machine):
    """Rules 13-15: a cartridge swapped for another between two polls (never seen
    out) stops the session before the needles move with the unchecked one."""
    running(machine)
    machine.cartridge_new("expired")  # no tick with the slot empty
    machine.advance_ticks(5)
    assert machine.pen.state in (wire.S_FAULT, wire.S_HOMING)
    assert machine.rig.log(wire.K_FAULT)[-1]["code"] == wire.E_FAULT_CARTRIDGE_PULLED


def test_machine_start_before_a_new_cartridge_is_polled_is_refused(machine):
    """Rules 13-15: a START between the insertion and the pen's next poll is refused
    (it used to reach wear.begin with no cartridge and raise out of the handler)."""
    machine.cartridge_pulled()
    machine.advance_ticks(5)
    machine.cartridge_reinserted()
    machine.arm_valid_permit(500, 60, 3600)
    assert machine.armed is not None
    assert machine._req(wire.T_START) == wire.E_NO_CARTRIDGE


def test_machine_pending_cartridge_write_stays_with_its_cartridge(machine):
    """Rule 13: the 'finished' EEPROM write of a session stopped just before a swap
    is not programmed into the next cartridge, which stays usable."""
    running(machine)
    old = machine.inp.cartridge
    finished(machine)
    machine.cartridge_new("fresh")  # before the tick that would program the write
    new = machine.inp.cartridge
    machine.advance_seconds(1)
    assert not new["finished"] and not new["first_use"] and new["used"] == 0
    assert machine.pen.wear.code(new, machine.pen.clock()) == 0
    assert machine.pen.wear.code(old, machine.pen.clock()) == wire.E_CARTRIDGE_USED


def test_machine_catches_a_pause_that_never_ends(machine, monkeypatch):
    """Sanity (issue 14 item 5, rule 6): with the pause window taken out, a session
    stopped early stays open and the machine's window check fails."""
    monkeypatch.setattr(core.Pen, "resume_left_ms", lambda self: 1)
    running(machine)
    machine.stop()
    assert machine.pen.state == wire.S_PAUSED
    with pytest.raises(AssertionError, match="paused for"):
        machine.advance_minutes(11)


def test_machine_catches_a_late_stop_that_only_pauses(machine, monkeypatch):
    """Sanity: with the 30 s limit taken out, a STOP after a minute of needling
    pauses instead of ending, and the machine catches it."""
    monkeypatch.setattr(core, "RESUME_NEEDLING_MS", 10**9)
    running(machine, 500, 600)
    machine.advance_seconds(60)
    with pytest.raises(AssertionError, match="after 30 s"):
        machine.stop()


def test_machine_early_stop_resumes_as_one_session_and_a_late_one_ends(machine):
    """Issue 14 item 5: a STOP 1 s in pauses; START goes on under the same permit
    (one session); a STOP after 30 s of needling ends it."""
    running(machine, 500, 600)
    machine.stop()
    assert machine.pen.state == wire.S_PAUSED and machine.sess is not None
    machine.start()
    machine.advance_seconds(40)
    assert machine.pen.state == wire.S_RUNNING
    machine.stop()
    assert machine.pen.state == wire.S_FINISHED and machine.sess is None
    assert len(machine.rig.log(wire.K_SESSION_START)) == 1
    assert len(machine.rig.log(wire.K_SESSION_END)) == 1


# ---- the clinic pen: rule 6 per patient (issue 15 item 3) ---------------------------------------
@pytest.fixture
def clinic_machine():
    m = ClinicMachine()
    yield m
    m.teardown()


def test_clinic_machine_treats_another_patient_at_once_and_refuses_the_first(clinic_machine):
    m = clinic_machine
    running(m, 1000, 60)
    finished(m)
    m.cartridge_new("fresh")
    m.advance_seconds(60)
    m.next_patient(1)
    running(m, 500, 60)  # patient B right after A: the model judged it by B's history
    finished(m)
    assert set(m.lasts) == {PATIENTS[0], PATIENTS[1]}
    m.next_patient(0)
    _refused_for_interval(m)  # A again, within A's 7 days


def test_clinic_machine_catches_a_pen_that_forgets_its_patients(clinic_machine, monkeypatch):
    """Sanity: with the patient table read as empty, A's early return is caught."""
    # through the pen the machine runs (a virtual pen elsewhere in the run may have
    # imported the firmware afresh)
    monkeypatch.setattr(type(clinic_machine.pen.patients), "entry", lambda self, ref: None)
    m = clinic_machine
    running(m, 1000, 60)
    finished(m)
    m.cartridge_new("fresh")
    m.advance_seconds(60)
    with pytest.raises(AssertionError, match="rule 6"):
        m.begin_session(500, 60, 1)


def test_clinic_machine_catches_a_pen_that_locks_per_pen_as_at_home(clinic_machine, monkeypatch):
    """Sanity the other way: the home rule on a clinic pen refuses patient B, which
    the directed test above would see (B's session never opens)."""
    monkeypatch.setattr(core.Pen, "_interval_of", lambda self, p: (
        self.store.c["last_end"], self.store.c["last_depth"], 7 * 86400
        if self.store.c["last_end"] else 0))
    m = clinic_machine
    running(m, 1000, 60)
    finished(m)
    m.cartridge_new("fresh")
    m.advance_seconds(60)
    m.next_patient(1)
    m.begin_session(500, 60, 1)
    assert m.sess is None  # refused: the clinic test above fails on such a pen
    assert m.rig.log(wire.K_START_REFUSED)[-1]["code"] == wire.E_INTERVAL_LOCKOUT
