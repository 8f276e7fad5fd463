"""What ``test_stateful_host.py`` knows and checks about the pen, tick by tick.

:class:`Monitor` is hooked into the firmware's control tick (``app.step``, re-hooked
on every boot) and watches the virtual body against the host's permits. It never
raises inside the firmware's tick (that would look like a firmware crash and reboot
the pen): every broken rule is appended to :attr:`Monitor.violations`, which the
state machine asserts empty after each rule.

Everything here counts virtual time only (control ticks of the pen); host times are
the host's clock readings (Unix seconds, float) at the moment a tick was seen.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scalppen.policy.permits import PermitFields
from scalppen_hardware.models.cartridge import RecordError, VirtualCartridge
from scalppen_hardware.virtual_pen import VirtualPen
from scalppen_protocol.codes import PenState
from tests.e2e.vpen_fixtures import STATE, Tick

TICK_MS = 10
DAY_S = 86_400
#: Rule 5: the hard stop, in ms of needling.
SESSION_CAP_MS = 900_000
#: Rule 1: the product ceiling of the board (pen-s3-revb) and rule 3's tolerance.
CEILING_UM = 1500
DEPTH_TOL_UM = 150
#: Needles this shallow count as retracted.
HOME_UM = 100
#: Ticks a condition may have been true before the motor must be off: one tick of
#: reaction (contact, charger), the cartridge driver's presence polling (two missed
#: pulses, 20 ms apart), the stall detector's 30 ms without a hall pulse.
REACT_TICKS = {"contact lost": 2, "charger plugged": 2, "cartridge out": 8, "motor stalled": 6}
#: Ticks not RUNNING after which the needles must be home (1.5 mm at 125 um/tick is
#: 12 ticks), and after a boot (homing seeks at 50 um/tick).
RETRACT_TICKS = 30
HOMING_TICKS = 80
#: Ticks with the motor undriven after which the cam must have stopped (it coasts).
COAST_TICKS = 40
#: Slack for rule 6 comparisons: whole-second clocks and the pen's 30 s checkpoint.
SLACK_S = 60.0
#: The pen keeps its counters in RAM between 30 s checkpoints: what a reset may lose.
CHECKPOINT_S = 30
MAX_STROKES_PER_S = 160
LOSS_STROKES = CHECKPOINT_S * MAX_STROKES_PER_S + 200
#: The wire LogRecord: seq, time, kind, flags, code, depth_um, a, b.
LOG_FMT = "<IIBBHHII"


def interval_s(depth_um: int) -> int:
    """Rule 6: the wait after a session at ``depth_um``."""
    if depth_um >= 1000:
        return 7 * DAY_S
    if depth_um >= 500:
        return 3 * DAY_S
    return DAY_S


def pen_log(app: Any) -> dict[int, tuple[int, ...]]:
    """The pen's usage log straight from its flash store: seq -> record fields."""
    _first, _last, recs = app.store.read(1, 1_000_000)
    out: dict[int, tuple[int, ...]] = {}
    for raw in recs:
        fields = struct.unpack(LOG_FMT, bytes(raw))
        out[fields[0]] = fields
    return out


@dataclass
class Seen:
    """One session the monitor saw the pen open."""

    nonce: str | None
    permit_depth_um: int
    permit_s: int
    start_host: float
    start_skew: float | None
    cart: bytes | None
    depth_um: int = 0
    needling_ms: int = 0
    end_host: float | None = None  # host time of the last tick the motor was driven
    end_skew: float | None = None
    open: bool = True


@dataclass(frozen=True)
class Counters:
    """The pen's persistent counters as its store holds them (RAM)."""

    last_seq: int
    hp: tuple[int, ...]  # strokes, punctures, sessions, run_s, first session
    carts: dict[str, int]  # cartridge id -> strokes used
    nonces: dict[str, int]  # used nonce -> issued_at
    nfloor: int

    @classmethod
    def of(cls, app: Any) -> Counters:
        c = app.store.c
        return cls(int(app.store.last_seq()), tuple(int(v) for v in c["hp"]),
                   {k: int(v[0]) for k, v in c["carts"].items()},
                   {n[0]: int(n[1]) for n in c["nonces"]}, int(c["nfloor"]))


def forgotten_nonces(before: Counters, after: Counters) -> list[str]:
    """Used nonces the pen no longer refuses (not kept and not under the floor)."""
    return [n for n, issued in before.nonces.items()
            if n not in after.nonces and issued > after.nfloor]


@dataclass
class Monitor:
    """Per-tick watch over the pen's body, and the host-side oracles.

    Args:
        vpen: the virtual pen (its ``app`` and ``hw`` change at every boot).
        host_time: the host's clock (Unix s).
    """

    vpen: VirtualPen
    host_time: Callable[[], float]
    issued: dict[str, PermitFields] = field(default_factory=dict)
    sessions: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    tainted: set[bytes] = field(default_factory=set)  # used, then out: never again
    used: set[bytes] = field(default_factory=set)
    losses: dict[str, int] = field(default_factory=dict)  # worst RAM loss at a reset
    rule: str = "setup"
    app: Any = None
    cur: Seen | None = None
    recent: deque[Tick] = field(default_factory=lambda: deque(maxlen=6))
    _bad: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REACT_TICKS, 0))
    _slot: VirtualCartridge | None = None
    _not_running: int = 0
    _undriven: int = 0
    _boot_ticks: int = 0
    _last_permit_um: int = 0
    _counters: Counters | None = None
    _carts_seen: dict[bytes, VirtualCartridge] = field(default_factory=dict)
    _eeprom: dict[bytes, tuple[int, bool]] = field(default_factory=dict)

    # ---- hooking the firmware --------------------------------------------------------
    def attach(self) -> None:
        """Watch the running boot and every later one."""
        vpen = self.vpen
        boot = vpen._boot

        def booted() -> None:
            old = self.app
            boot()
            self._on_boot(old, vpen.app)

        vpen._boot = booted  # type: ignore[method-assign]
        self._hook(vpen.app)
        self._counters = Counters.of(vpen.app)

    def _hook(self, app: Any) -> None:
        self.app = app
        step = app.step

        def traced(now_ms: int) -> Any:
            out = step(now_ms)
            try:
                self._observe(app, now_ms)
            except Exception as exc:  # never into the firmware: that would reboot it
                self.fail(f"monitor error {exc!r}")
            return out

        app.step = traced

    def fail(self, what: str) -> None:
        ticks = "; ".join(f"{t.ms}ms {STATE.get(t.state, t.state)} duty={t.duty:.2f} "
                          f"rate={t.rate:.0f} depth={t.depth_um:.0f}" for t in self.recent)
        self.violations.append(f"[after rule {self.rule}] {what} (last ticks: {ticks})")

    # ---- one tick ----------------------------------------------------------------------
    def _observe(self, app: Any, now_ms: int) -> None:
        body = self.vpen.hw.body
        pen = app.pen
        duty, rate = float(body.motor.duty), float(body.motor.speed)
        depth = float(body.stepper.actual_um)
        self.recent.append(Tick(now_ms, bool(app.ble.link_up), int(pen.state), duty, rate, depth))
        self._boot_ticks += 1
        cart = body.cartridge
        self._track_cartridge(cart)
        bad = self._bad
        contact = body.contact and "contact_lost" not in body.faults
        for name, now_bad in (("contact lost", not contact),
                              ("charger plugged", bool(body.battery.plugged)),
                              ("cartridge out", cart is None),
                              ("motor stalled", bool(body.motor.stalled))):
            bad[name] = bad[name] + 1 if now_bad else 0
        running = int(pen.state) == PenState.RUNNING
        self._not_running = 0 if running else self._not_running + 1
        self._undriven = self._undriven + 1 if duty <= 0 else 0
        self._track_session(app, cart)
        if duty > 0:
            self._check_drive(pen, running, cart)
        self._check_depth(depth, running)
        if self._undriven >= COAST_TICKS and rate >= 1.0:
            self.fail(f"the cam still turns ({rate:.0f}/s) {self._undriven} ticks after the "
                      "motor was switched off")
        if pen.elapsed_ms > SESSION_CAP_MS + TICK_MS:
            self.fail(f"session elapsed {pen.elapsed_ms} ms, past the 15 min hard stop")

    def _track_cartridge(self, cart: VirtualCartridge | None) -> None:
        old = self._slot
        if cart is old:
            return
        if old is not None and (old.rom in self.used or old.strokes > 0):
            self.tainted.add(old.rom)  # used, then out of the slot (rule 13)
        if cart is not None:
            self._carts_seen[cart.rom] = cart
        self._slot = cart

    def _track_session(self, app: Any, cart: VirtualCartridge | None) -> None:
        pen = app.pen
        if pen.session_open and self.cur is None:
            self._open(app, cart)
        elif not pen.session_open and self.cur is not None:
            self._close()
        if self.cur is not None:
            self.cur.depth_um = max(self.cur.depth_um, int(pen.session_depth))

    def _skew(self, pen: Any, host: float) -> float | None:
        clock = int(pen.clock())
        return host - clock if clock else None

    def _open(self, app: Any, cart: VirtualCartridge | None) -> None:
        pen = app.pen
        nonces = app.store.c["nonces"]
        nonce = nonces[-1][0] if nonces else None
        permit = pen.permit or {}
        issued = self.issued.get(nonce) if nonce else None
        host = self.host_time()
        if not permit or permit.get("standalone"):
            self.fail("a session opened without a host permit")
        if issued is None:
            self.fail(f"a session opened under nonce {nonce}, which the host never issued")
        elif (permit.get("depth"), permit.get("s")) != (issued.max_depth_um,
                                                         issued.max_duration_s):
            self.fail(f"the pen's permit {permit} is not the one the host issued {issued}")
        if any(s.nonce == nonce for s in self.sessions):
            self.fail(f"permit {nonce} opened a second session")
        if [n[0] for n in nonces].count(nonce) != 1:
            self.fail(f"nonce {nonce} is not recorded exactly once as used")
        if cart is not None and cart.rom in self.tainted:
            self.fail("a session opened on a used or reinserted cartridge")
        seen = Seen(nonce, int(permit.get("depth", 0)), int(permit.get("s", 0)), host,
                    self._skew(pen, host), cart.rom if cart is not None else None)
        self._check_pen_interval(seen)
        if cart is not None:
            self.used.add(cart.rom)
        self._last_permit_um = seen.permit_depth_um
        self.sessions.append(seen)
        self.cur = seen

    def _close(self) -> None:
        cur = self.cur
        assert cur is not None
        cur.open = False
        if cur.cart is not None:
            self.tainted.add(cur.cart)  # used in a finished session (rule 13)
        self.cur = None

    def _check_drive(self, pen: Any, running: bool, cart: VirtualCartridge | None) -> None:
        cur = self.cur
        if not running or cur is None or pen.permit is None:
            self.fail("the motor was driven outside a session the host armed")
        for name, ticks in self._bad.items():
            if ticks >= REACT_TICKS[name]:
                self.fail(f"the motor was driven {ticks} ticks after: {name}")
        if cart is not None and cart.rom in self.tainted:
            self.fail("the motor was driven with a used or reinserted cartridge")
        if cur is None:
            return
        cur.needling_ms += TICK_MS
        cur.end_host = self.host_time()
        cur.end_skew = self._skew(pen, cur.end_host)
        limit = min(cur.permit_s * 1000, SESSION_CAP_MS) + 5 * TICK_MS
        if cur.needling_ms > limit:
            self.fail(f"{cur.needling_ms} ms of needling under a {cur.permit_s} s permit")

    def _check_depth(self, depth: float, running: bool) -> None:
        if depth > CEILING_UM + DEPTH_TOL_UM:
            self.fail(f"needles at {depth:.0f} um, past the ceiling")
        if running and self.cur is not None:
            limit = self.cur.permit_depth_um + DEPTH_TOL_UM
        elif self._not_running >= RETRACT_TICKS and self._boot_ticks >= HOMING_TICKS:
            limit = HOME_UM
        else:  # still retracting (or homing after a reset)
            limit = max(self._last_permit_um + DEPTH_TOL_UM, HOME_UM)
        if depth > limit:
            self.fail(f"needles at {depth:.0f} um, allowed {limit} um here")

    # ---- rule 6, both sides -----------------------------------------------------------
    def _check_pen_interval(self, new: Seen) -> None:
        """The pen opened ``new``: every earlier needled session's wait is over."""
        for old in self.sessions:
            if old.end_host is None:
                continue
            slack = SLACK_S + abs((new.start_skew or 0.0) - (old.end_skew or 0.0))
            lift = old.end_host + interval_s(old.depth_um)
            if new.start_host < lift - slack:
                self.fail(f"the pen opened a session {(lift - new.start_host) / 3600:.2f} h "
                          f"before the rule-6 wait after a {old.depth_um} um session was over")

    def check_issue(self, permit: PermitFields, host: float, screened_at: float,
                    ramp_cap_um: int) -> list[str]:
        """The host signed ``permit`` at host time ``host``: would its rules allow it?"""
        wrong: list[str] = []
        for old in self.sessions:
            if old.open or old.end_host is None:
                continue
            slack = SLACK_S + abs(old.end_skew or 0.0)
            lift = old.end_host + interval_s(old.depth_um)
            if host < lift - slack:
                wrong.append(f"rule 6: permit {(lift - host) / 3600:.2f} h before the wait "
                             f"after a {old.depth_um} um session was over")
        if host - screened_at > 30 * DAY_S:
            wrong.append("rule 17: permit with a screening older than 30 days")
        if permit.max_depth_um > min(ramp_cap_um, CEILING_UM):
            wrong.append(f"rule 4/1: permit depth {permit.max_depth_um} um above "
                         f"{min(ramp_cap_um, CEILING_UM)} um")
        if not 0 < permit.max_duration_s <= SESSION_CAP_MS // 1000:
            wrong.append(f"rule 5: permit for {permit.max_duration_s} s")
        self.issued[permit.nonce.hex()] = permit
        return wrong

    # ---- counters ---------------------------------------------------------------------
    def _on_boot(self, old: Any, new: Any) -> None:
        if old is not None:
            self._check_reset(Counters.of(old), Counters.of(new))
        if self.cur is not None:
            self._close()  # the new firmware closes it as interrupted
        self._boot_ticks = 0
        self._counters = Counters.of(new)
        self._hook(new)

    def _lost(self, name: str, amount: int, bound: int) -> None:
        if amount > 0:
            self.losses[name] = max(self.losses.get(name, 0), amount)
        if amount > bound:
            self.fail(f"a reset lost {amount} of {name} (more than one checkpoint's worth)")

    def _check_reset(self, before: Counters, after: Counters) -> None:
        """Across a reset: the log and what was committed never go back."""
        if after.last_seq < before.last_seq:
            self.fail(f"log seq went back across a reset: {before.last_seq} -> {after.last_seq}")
        if after.hp[2] < before.hp[2] or (before.hp[4] and after.hp[4] != before.hp[4]):
            self.fail(f"handpiece sessions went back across a reset: {before.hp} -> {after.hp}")
        if forgotten_nonces(before, after):
            self.fail(f"used nonces forgotten at a reset: {forgotten_nonces(before, after)}")
        self._lost("handpiece strokes", before.hp[0] - after.hp[0], LOSS_STROKES)
        self._lost("handpiece run s", before.hp[3] - after.hp[3], CHECKPOINT_S + 1)
        for cid, used in before.carts.items():
            if cid in after.carts:
                self._lost("cartridge strokes", used - after.carts[cid], LOSS_STROKES)

    def check_counters(self) -> None:
        """Within one boot the pen's counters only grow; cartridge EEPROMs too."""
        now = Counters.of(self.app)
        before = self._counters
        if before is not None:
            grew = (now.last_seq >= before.last_seq and now.nfloor >= before.nfloor
                    and all(a >= b for a, b in zip(now.hp, before.hp, strict=True))
                    and all(now.carts.get(k, v) >= v for k, v in before.carts.items()))
            if not grew:
                self.fail(f"the pen's counters went back: {before} -> {now}")
            if forgotten_nonces(before, now):
                self.fail(f"used nonces forgotten: {forgotten_nonces(before, now)}")
        self._counters = now
        for rom, cart in self._carts_seen.items():
            try:
                rec = cart.record
            except RecordError:
                continue  # a write in progress (one EEPROM row per tick)
            used, finished = int(rec["used"]), bool(rec["finished"])
            was_used, was_finished = self._eeprom.get(rom, (0, False))
            if used < was_used or (was_finished and not finished):
                self.fail(f"cartridge {rom.hex()} EEPROM went back: "
                          f"{(was_used, was_finished)} -> {(used, finished)}")
            self._eeprom[rom] = (max(used, was_used), finished or was_finished)
