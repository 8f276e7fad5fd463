"""A hypothesis state machine over the host and the full virtual pen together.

The pen is the real firmware (``firmware/pen/app.py``) on the virtual body and a
bumble radio; the host is the real host stack: ``Radio``, the ``Pen`` client, the
SQLite store, the safety policy and the pairing, session and log-sync workflows.
Each example pairs once, then interleaves what people and the world do: the host
runs sessions through its policy (a refusal by the policy or a NACK by the pen is a
legitimate outcome), stops, resumes and syncs the log; virtual time passes (seconds
to 16 minutes), days pass with the pen switched off, the host's clock jumps; the
body loses skin contact, is charged, has its cartridge pulled, put back or replaced,
stalls, runs low, loses power, crashes or stops feeding its watchdog; the link is
lost and comes back.

The machine owns one event loop per example and drives the pen's time itself: the
pen's own pacing task is parked, a pump ticks the pen while the host talks to it,
and time steps run exact virtual milliseconds. A per-tick monitor
(:mod:`tests.e2e.stateful_host_model`), re-hooked on every boot, checks the safety
rules on the body (needles move only under a permit the host issued through its
policy, used once; within its depth and 15 minutes; never charging, off the skin or
with a used cartridge) and rule 6 on both sides; after every rule the host's store
is compared with the pen's own log and the pen's counters with their past.

Under ``CI`` the examples are few and derandomized (``tests/conftest.py``); for a
soak set ``SCALPPEN_STATEFUL_EXAMPLES`` (and ``SCALPPEN_STATEFUL_STEPS``)::

    SCALPPEN_STATEFUL_EXAMPLES=30 .venv/bin/pytest tests/e2e/test_stateful_host.py \
        --hypothesis-show-statistics

(``SCALPPEN_STATEFUL_TRACE=1`` with ``-s`` prints each example's rules and outcomes.)
The tests after the machine drive it by hand: one known story, and sabotaged pens,
policies and stores that each invariant must catch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from scalppen import store as S
from scalppen.client import Pen, PenRefused
from scalppen.policy import CONTRAINDICATIONS, PenLimits, issue_permit
from scalppen.workflows.logsync import sync_log
from scalppen.workflows.pairing import pair_pen
from scalppen.workflows.session import SessionPlan, decide
from scalppen_hardware.models.cartridge import VirtualCartridge
from scalppen_protocol.codes import ErrorCode, PenState, RecordKind
from tests.e2e.stateful_host_model import DAY_S, Monitor, pen_log
from tests.e2e.vpen_fixtures import Rig, radio_silence, rig, wait_until, within

T = TypeVar("T")

EXAMPLES = int(os.environ.get("SCALPPEN_STATEFUL_EXAMPLES", "8"))
STEPS = int(os.environ.get("SCALPPEN_STATEFUL_STEPS", "15"))

pytestmark = pytest.mark.timeout(max(120, 30 * EXAMPLES * max(1, STEPS // 5)))

#: The pen's RTC at power-up in the rig (``vpen_fixtures.rig``): the host's clock too.
EPOCH = 1_780_000_000
#: Virtual ms the pump runs between two turns of the event loop.
PUMP_MS = 20
#: Wall seconds one rule may take before it counts as hung.
RULE_TIMEOUT = 90.0


def _code(exc: PenRefused) -> str:
    return exc.code.name if isinstance(exc.code, ErrorCode) else f"0x{int(exc.code):02x}"


def _request(exc: PenRefused) -> str:
    return getattr(exc.request, "name", str(exc.request))


class HostAndPen(RuleBasedStateMachine):
    """The host (policy, store, workflows) and the virtual pen over the virtual link."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.tmp = Path(tempfile.mkdtemp(prefix="scalppen-stateful-"))
        self.stack = contextlib.AsyncExitStack()
        self.client: Pen | None = None
        self.host_shift = 0.0
        self.serial = ""
        self.profile_id = 0
        self.screened_at = 0.0
        self.hand: VirtualCartridge | None = None  # a cartridge pulled out, in the hand
        self.cart_serial = 0
        self.crashes = 0  # firmware errors this machine injected on purpose
        self.stored_seqs: set[int] = set()
        self.notes: list[str] = []
        self.history: list[str] = []  # the rules run, for SCALPPEN_STATEFUL_TRACE
        try:
            self.r: Rig = self._run(self.stack.enter_async_context(rig(self.tmp, speed=None)))
            self._run(self._park_pen_task())
        except BaseException:
            self._close_loop()
            raise
        self.monitor = Monitor(self.r.vpen, self.host_time)
        self.monitor.attach()

    # ---- plumbing ---------------------------------------------------------------------
    def _begin(self, rule: str) -> None:
        self.monitor.rule = rule
        self.history.append(rule)

    def _note(self, what: str) -> None:
        """Count an outcome (``--hypothesis-show-statistics``); kept for direct runs."""
        self.notes.append(what)
        with contextlib.suppress(InvalidArgument):  # driven outside a hypothesis test
            event(what)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = RULE_TIMEOUT) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    async def _park_pen_task(self) -> None:
        """Stop the pen's own pacing: from now on this machine moves its time."""
        self.r.vpen.pause()
        for _ in range(3):
            await asyncio.sleep(0)

    async def _pumped(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` while the pen ticks (20 virtual ms per turn of the loop)."""
        stop = False

        async def pump() -> None:
            while not stop:
                await self.r.vpen.run_for(PUMP_MS)

        task = asyncio.ensure_future(pump())
        try:
            return await aw
        finally:
            stop = True
            await task

    def _act(self, name: str, coro: Coroutine[Any, Any, Any], *, pumped: bool = True) -> None:
        """Run one rule's coroutine on the machine's loop (with the pen ticking)."""
        self._begin(name)
        self._run(self._pumped(coro) if pumped else coro)

    async def _run_pen_until(self, predicate: Callable[[], bool], what: str,
                             max_ms: int = 5_000) -> None:
        """Tick the pen (no pump running) until ``predicate``; bounded in virtual time."""
        done = 0
        while not predicate():
            assert done < max_ms, f"{what}: not within {max_ms} virtual ms"
            await self.r.vpen.run_for(PUMP_MS)
            done += PUMP_MS

    def teardown(self) -> None:
        if os.environ.get("SCALPPEN_STATEFUL_TRACE"):
            print("\nrules:", ", ".join(self.history), "\nnotes:", ", ".join(self.notes))
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self._run(self._pumped(self.client.close()), 20.0)
            self._run(self.stack.aclose(), 30.0)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        asyncio.set_event_loop(None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the host's clock and connection --------------------------------------------------
    def host_time(self) -> float:
        """The host's clock: the world's virtual time plus every jump the host made."""
        return EPOCH + self.r.vpen.clock.world_us / 1e6 + self.host_shift

    def host_now(self) -> datetime:
        return datetime.fromtimestamp(self.host_time(), UTC)

    @property
    def app(self) -> Any:
        return self.r.vpen.app

    @property
    def hw(self) -> Any:
        return self.r.vpen.hw

    async def _client(self) -> Pen:
        """The host's connection, reconnected (HELLO) if it was lost."""
        if self.client is not None and self.client.connected:
            return self.client
        if self.client is not None:
            await within(self.client.close())
            self._note("host: reconnected after the link was lost")
        self.client = None
        self.client = await self.r.pen(attempts=3)
        return self.client

    async def _drop_client(self) -> None:
        if self.client is not None:
            await within(self.client.close())
            self.client = None

    def _screen(self) -> None:
        S.record_screening(self.r.db, self.profile_id,
                           dict.fromkeys(CONTRAINDICATIONS, False), now=self.host_now())
        self.screened_at = self.host_time()

    # ---- pairing -------------------------------------------------------------------------
    @initialize(first_session=st.sampled_from([True, True, False]))
    def pair(self, first_session: bool = False) -> None:
        """Pair once per example; most examples then start a first session at once."""
        self._act("pair", self._pair())
        if first_session:
            self._act("first session", self._session(500, 600, True, True))

    async def _pair(self) -> None:
        db = self.r.db
        self.profile_id = S.add_profile(db, "Stateful patient", birth_year=1985).id
        self._screen()
        paired = await within(pair_pen(self.r.radio, db, self.r.address,
                                       self.r.passkey_provider(), self.host_now,
                                       self.profile_id), 20.0)
        self.serial = self.r.serial = paired.info.serial
        assert paired.new_key and self.app.pen.key() == S.get_permit_key(db, self.serial)
        assert abs(self.app.pen.clock() - self.host_time()) <= 2  # pairing set its clock

    # ---- the host: sessions through the policy ---------------------------------------------
    @rule(depth=st.sampled_from([500, 250, 500, 750, 500, 1000, 1500]),
          minutes=st.sampled_from([10, 1, 5, 10, 15, 16]),
          set_clock=st.booleans(), prepare=st.sampled_from([True, True, True, False]))
    def host_runs_session(self, depth: int, minutes: int, set_clock: bool,
                          prepare: bool) -> None:
        self._act("host_runs_session", self._session(depth, minutes * 60, set_clock, prepare))

    async def _session(self, depth: int, duration_s: int, set_clock: bool,
                       prepare: bool) -> None:
        if prepare:
            await self._prepare_body()
        pen = await self._client()
        status = await within(pen.status())
        last = None
        if status.last_session_end:
            last = (datetime.fromtimestamp(status.last_session_end, UTC),
                    status.last_session_depth_um)
        assert pen.info is not None and pen.info.limits is not None
        limits = PenLimits.from_info(asdict(pen.info.limits))
        moment = self.host_now()
        plan = SessionPlan(self.profile_id, depth, duration_s, attested=True)
        decision = decide(self.r.db, self.serial, plan, limits, moment, last)
        if {r.rule for r in decision.refusals} == {4}:  # the user takes the depth offered
            self._note("policy: rule 4 lowered the depth")
            depth = plan.depth_um = decision.ramp_limit_um
            decision = decide(self.r.db, self.serial, plan, limits, moment, last)
        if not decision.allowed:
            self._note(f"policy refused: rules {sorted({r.rule for r in decision.refusals})}")
            return
        key = S.get_permit_key(self.r.db, self.serial)
        assert key is not None
        permit = issue_permit(decision, key, moment)
        S.record_permit(self.r.db, self.serial, permit, profile_id=self.profile_id)
        wrong = self.monitor.check_issue(permit, moment.timestamp(), self.screened_at,
                                         self._ramp_cap(status.last_session_depth_um))
        assert not wrong, f"the host issued a permit its policy should refuse: {wrong}"
        if status.state in (PenState.RUNNING, PenState.PAUSED):
            self._note("host: permit issued while the pen had a session open")
        try:
            if set_clock:
                await within(pen.set_time(int(moment.timestamp()), key))
            await within(pen.arm(permit.as_dict()))
            await within(pen.set_depth(depth))
            await within(pen.start())
        except PenRefused as exc:
            self._note(f"pen refused {_request(exc)}: {_code(exc)}")
            # as run_session does: STOP, and a permit the idle pen dropped is void
            await within(pen.stop())
            if (await within(pen.status())).state == PenState.IDLE:
                S.void_permit(self.r.db, permit.nonce, at=self.host_now())
            return
        self._note("session started")
        status = await within(pen.status())
        if status.state in (PenState.RUNNING, PenState.PAUSED):  # not faulted since
            assert status.permit_depth_um == permit.max_depth_um
            assert status.depth_set_um <= permit.max_depth_um

    def _ramp_cap(self, pen_last_depth: int) -> int:
        """Rule 4 at its loosest: 0.5 mm, a tolerated depth + 0.25 mm, or a past depth."""
        cap = max(500, pen_last_depth)
        for s in S.list_sessions(self.r.db, pen_serial=self.serial):
            cap = max(cap, s.depth_um + (250 if s.tolerated else 0))
        return cap

    async def _prepare_body(self) -> None:
        """The user gets ready: charger off, a usable cartridge, the pen on the skin."""
        hw = self.hw
        hw.plug_charger(False)
        hw.clear("stall")
        if hw.battery.soc < 60:
            hw.set_battery(90)
        cart = hw.cartridge
        if cart is not None and cart.rom in self.monitor.tainted:
            hw.remove_cartridge()
            await wait_until(lambda: self.app.pen.cart is None, 15.0, "the cartridge out")
            cart = None
        if cart is None:
            hw.insert_cartridge(self._new_cartridge())
        hw.set_contact(True)
        # (wall seconds: the cartridge's authentication takes about 12 ticks; a busy
        # machine stretches them)
        await wait_until(lambda: self.app.pen.cart is not None and self.app.inp.contact,
                         15.0, "the pen to see its cartridge and the skin")

    def _new_cartridge(self) -> VirtualCartridge:
        """A new cartridge, dated by the host's calendar (not the pen's RTC)."""
        self.cart_serial += 1
        return VirtualCartridge.make("new", now=int(self.host_time()), serial=self.cart_serial)

    @rule(depth=st.sampled_from([250, 500, 750, 1000, 1500]))
    def host_sets_depth(self, depth: int) -> None:
        """The user turns the depth dial (during a session: within the permit)."""
        self._act("host_sets_depth", self._set_depth(depth))

    async def _set_depth(self, depth: int) -> None:
        pen = await self._client()
        try:
            await within(pen.set_depth(depth))
        except PenRefused as exc:
            self._note(f"pen refused SET_DEPTH: {_code(exc)}")
            return
        permit = self.app.pen.permit
        assert permit is None or depth <= permit["depth"], "a depth above the permit taken"

    @rule()
    def host_stops(self) -> None:
        self._act("host_stops", self._stop())

    async def _stop(self) -> None:
        pen = await self._client()
        status = await within(pen.end_session())
        assert status.state not in (PenState.RUNNING, PenState.PAUSED, PenState.ARMED)

    @rule()
    def host_resumes(self) -> None:
        self._act("host_resumes", self._resume())

    async def _resume(self) -> None:
        pen = await self._client()
        was = self.app.pen.state
        try:
            await within(pen.start())
        except PenRefused as exc:
            self._note(f"pen refused resume: {_code(exc)}")
            return
        assert was in (PenState.PAUSED, PenState.ARMED), "START accepted from a bad state"
        self._note("session resumed" if was == PenState.PAUSED else "armed session started")

    @rule()
    def host_syncs_log(self) -> None:
        self._act("host_syncs_log", self._sync())

    async def _sync(self) -> None:
        pen = await self._client()
        summary = await within(sync_log(pen, self.r.db, self.serial, now=self.host_now()), 20.0)
        if summary.last_seq:
            assert S.last_synced_seq(self.r.db, self.serial) == summary.last_seq
        wear = await within(pen.wear())
        S.record_wear(self.r.db, self.serial, asdict(wear), at=self.host_now())
        hp = self.app.store.c["hp"]
        assert (wear.hp_sessions, wear.hp_first_session) == (hp[2], hp[4])
        self._note(f"log sync: {'new records' if summary.new else 'nothing new'}")

    @rule(what=st.sampled_from(["tolerated", "rescreen", "set_clock"]))
    def host_admin(self, what: str) -> None:
        """The user records a tolerated session, answers the screening, syncs the clock."""
        if what == "tolerated":
            self._begin("host_admin(tolerated)")
            sessions = S.list_sessions(self.r.db, pen_serial=self.serial)
            if sessions:
                S.set_tolerated(self.r.db, sessions[-1].id, True)
            self._note("host: tolerated" if sessions else "host: no session to mark tolerated")
        elif what == "rescreen":
            self._begin("host_admin(rescreen)")
            self._screen()
        else:
            self._act("host_admin(set_clock)", self._set_clock())

    async def _set_clock(self) -> None:
        pen = await self._client()
        key = S.get_permit_key(self.r.db, self.serial)
        assert key is not None
        if self.app.pen.session_open:  # no clock change while a session is open
            before = self.app.pen.clock()
            with pytest.raises(PenRefused) as refused:
                await within(pen.set_time(int(self.host_time()), key))
            assert refused.value.code == ErrorCode.WRONG_STATE
            assert abs(self.app.pen.clock() - before) <= 2
            return
        await within(pen.set_time(int(self.host_time()), key))
        assert abs(self.app.pen.clock() - self.host_time()) <= 2

    # ---- time and clocks -----------------------------------------------------------------
    @rule(seconds=st.sampled_from([1, 5, 20, 60, 120, 300, 600, 960]))
    def time_passes(self, seconds: int) -> None:
        """The pen runs ``seconds`` of virtual time (the host stays connected)."""
        self._act(f"time_passes({seconds})", self.r.vpen.run_for(seconds * 1000), pumped=False)

    @rule(hours=st.sampled_from([24, 72, 192, 23.8, 71.8, 167.8]))
    def days_pass_with_the_pen_off(self, hours: float) -> None:
        """The pen is switched off for days (its RTC runs on) and on again; the
        odd amounts end 12 minutes before a rule-6 wait would."""
        self._act(f"days_pass_with_the_pen_off({hours} h)", self._days_pass(hours * 3600),
                  pumped=False)

    async def _days_pass(self, seconds: float) -> None:
        await self._drop_client()
        vpen = self.r.vpen
        vpen.clock.set_epoch(vpen.clock.epoch_us() / 1e6 + seconds)
        self.host_shift += seconds
        await within(vpen.reboot())
        await self._run_pen_until(lambda: self.app.pen.state != PenState.HOMING, "homing")

    @rule(seconds=st.sampled_from([-3600, -240, 240, 3600, DAY_S + 600]))
    def host_clock_jumps(self, seconds: int) -> None:
        """Only the host's clock jumps (NTP, a user changing the time)."""
        self._begin("host_clock_jumps")
        self.host_shift += seconds

    # ---- the body ----------------------------------------------------------------------
    @rule(change=st.sampled_from(["contact_off", "contact_on", "charger_on", "charger_off",
                                  "stall_on", "stall_off", "battery_5", "battery_15",
                                  "battery_30", "battery_90"]))
    def body_changes(self, change: str) -> None:
        """The user lifts the pen or puts it back, plugs the charger; the cam jams..."""
        what, arg = change.split("_")
        hw = self.hw
        if what == "contact":
            hw.set_contact(arg == "on")
        elif what == "charger":
            hw.plug_charger(arg == "on")
        elif what == "stall":
            (hw.inject if arg == "on" else hw.clear)("stall")
        else:
            hw.set_battery(int(arg))
        self._act(f"body_changes({change})", self.r.vpen.run_for(200), pumped=False)

    @rule(what=st.sampled_from(["pull", "reinsert", "new"]))
    def cartridge(self, what: str) -> None:
        """The cartridge is pulled out, put back (the same one) or replaced by a new one."""
        self._act(f"cartridge({what})", self._cartridge(what), pumped=False)

    async def _cartridge(self, what: str) -> None:
        hw = self.hw
        if what == "pull" and hw.cartridge is not None:
            self.hand = hw.remove_cartridge()
            await self._run_pen_until(lambda: self.app.pen.cart is None, "the cartridge out")
        elif what == "reinsert" and self.hand is not None and hw.cartridge is None:
            cart, self.hand = self.hand, None
            hw.insert_cartridge(cart)
            await self._run_pen_until(lambda: self.app.pen.cart is not None, "the cartridge in")
        elif what == "new":
            if hw.cartridge is not None:
                hw.remove_cartridge()
                await self._run_pen_until(lambda: self.app.pen.cart is None, "the cartridge out")
            self.hand = None
            hw.insert_cartridge(self._new_cartridge())
            await self._run_pen_until(lambda: self.app.pen.cart is not None, "the cartridge in")
        else:
            self._note(f"cartridge({what}): nothing to do")

    @rule(kind=st.sampled_from(["power_loss", "brownout", "watchdog", "crash"]))
    def pen_resets(self, kind: str) -> None:
        self._act("pen_resets", self._reset(kind), pumped=False)

    async def _reset(self, kind: str) -> None:
        vpen = self.r.vpen
        boots = vpen.boots
        if kind in ("power_loss", "brownout"):
            self.hw.inject(kind)
        elif kind == "watchdog":
            self.app.pen.broken = True  # the core stops feeding the watchdog
        else:

            def broken(*_: Any) -> None:
                raise RuntimeError("injected firmware crash")

            self.app.pen.tick = broken
            self.crashes += 1
        lost = dict(self.monitor.losses)
        await self._run_pen_until(lambda: vpen.boots > boots, f"a reboot after {kind}")
        await self._run_pen_until(lambda: self.app.pen.state != PenState.HOMING, "homing")
        self._note(f"pen reset: {kind}")
        if self.monitor.losses != lost:  # bounded by the monitor: one checkpoint's worth
            self._note("pen reset lost counters not yet checkpointed")

    # ---- the link ------------------------------------------------------------------------
    @rule(what=st.sampled_from(["lost", "reconnect"]))
    def link(self, what: str) -> None:
        """Out of range (the supervision timer expires), or the host connects again."""
        self._act(f"link({what})", self._silence() if what == "lost" else self._client())

    async def _silence(self) -> None:
        radio_silence(self.r.vpen, self.r.radio)
        await wait_until(lambda: not self.app.ble.link_up, 5.0, "the pen to see the link go")
        client = self.client
        if client is not None:
            await wait_until(lambda: not client.connected, 5.0, "the host to see the link go")

    # ---- invariants ----------------------------------------------------------------------
    @invariant()
    def pen_stayed_safe(self) -> None:
        assert not self.monitor.violations, "\n".join(self.monitor.violations)

    @invariant()
    def pen_counters_never_go_back(self) -> None:
        self.monitor.check_counters()
        assert not self.monitor.violations, "\n".join(self.monitor.violations)
        assert len(self.r.vpen.errors) == self.crashes, \
            f"firmware errors nobody injected: {self.r.vpen.errors}"

    @invariant()
    def store_log_is_the_pens_log(self) -> None:
        """Stored records never vanish or duplicate, and equal the pen's own."""
        if not self.serial:
            return
        db = self.r.db
        dup = db.query("SELECT seq FROM log_records WHERE pen_serial = ? GROUP BY seq"
                       " HAVING COUNT(*) > 1", (self.serial,))
        assert not dup, f"log records stored twice: {[r[0] for r in dup]}"
        rows = {int(r[0]): tuple(int(v) for v in r) for r in db.query(
            "SELECT seq, time, kind, flags, code, depth_um, a, b FROM log_records"
            " WHERE pen_serial = ?", (self.serial,))}
        lost = self.stored_seqs - rows.keys()
        assert not lost, f"stored log records disappeared: {sorted(lost)}"
        self.stored_seqs = set(rows)
        on_pen = pen_log(self.app)
        for seq, row in rows.items():
            assert on_pen.get(seq) == row, f"record {seq}: stored {row}, pen {on_pen.get(seq)}"
        assert S.list_gaps(db, self.serial) == []
        self._sessions_match_log(rows)

    def _sessions_match_log(self, rows: dict[int, tuple[int, ...]]) -> None:
        sessions = S.list_sessions(self.r.db, pen_serial=self.serial)
        ends = sorted(s for s, r in rows.items() if r[2] == RecordKind.SESSION_END)
        assert sorted(s.end_seq for s in sessions if s.end_seq is not None) == ends
        starts = [s.start_seq for s in sessions if s.start_seq is not None]
        assert len(starts) == len(set(starts)), f"a session start stored twice: {starts}"


HostAndPen.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHostAndPenStateful = HostAndPen.TestCase


# ---- the same machine driven by hand: a known story, and invariants that bite ---------------


def _drive(story: Callable[[HostAndPen], None]) -> None:
    """Pair a fresh machine, run ``story`` on it, tear it down."""
    machine = HostAndPen()
    try:
        machine.pair()
        story(machine)
    finally:
        machine.teardown()


def _invariants(m: HostAndPen) -> None:
    m.pen_stayed_safe()
    m.pen_counters_never_go_back()
    m.store_log_is_the_pens_log()


def _started(m: HostAndPen, depth: int = 500, minutes: int = 1) -> None:
    """A prepared body, a session through the policy, needling for a second."""
    m.host_runs_session(depth, minutes, set_clock=True, prepare=True)
    assert m.notes[-1] == "session started", m.notes
    m.time_passes(1)
    assert m.app.pen.state == PenState.RUNNING and m.hw.stroke_rate > 90
    _invariants(m)


def test_a_session_lifecycle_keeps_every_invariant() -> None:
    """Needle, finish, sync; the policy then waits 72 h; days later a new cartridge."""

    def story(m: HostAndPen) -> None:
        _started(m, 500, minutes=1)
        m.time_passes(60)  # the permitted minute runs out
        assert m.app.pen.state == PenState.FINISHED
        m.host_syncs_log()
        _invariants(m)
        (session,) = S.list_sessions(m.r.db, pen_serial=m.serial)
        assert session.complete and session.depth_um == 500
        assert 59 <= session.duration_s <= 61
        assert m.monitor.sessions[0].needling_ms <= 60_000 + 50
        m.host_runs_session(500, 1, set_clock=True, prepare=False)
        assert m.notes[-1] == "policy refused: rules [6]"  # 72 h after 0.5 mm
        m.days_pass_with_the_pen_off(72)
        m.host_runs_session(500, 1, set_clock=True, prepare=False)
        assert m.notes[-1] == "pen refused START: CARTRIDGE_USED"  # rule 13 on the pen
        _started(m, 500)  # prepared: a new cartridge
        m.host_syncs_log()
        _invariants(m)
        assert len(m.monitor.sessions) == 2 and not m.monitor.violations

    _drive(story)


def test_a_blind_contact_sensor_is_caught() -> None:
    """A firmware that reads contact while the pen is off the skin breaks rule 10."""

    def story(m: HostAndPen) -> None:
        _started(m)
        read = m.app.drivers.read

        def blind(inp: Any) -> Any:
            inp = read(inp)
            inp.contact = True
            return inp

        m.app.drivers.read = blind
        m.body_changes("contact_off")
        with pytest.raises(AssertionError, match="ticks after: contact lost"):
            m.pen_stayed_safe()

    _drive(story)


def test_a_pen_that_accepts_a_used_cartridge_is_caught() -> None:
    """A firmware that forgets cartridge use breaks rule 13: the monitor says so."""

    def story(m: HostAndPen) -> None:
        _started(m, 250)
        m.host_stops()
        m.days_pass_with_the_pen_off(24)
        m.app.pen.wear.code = lambda cart, now: 0  # every cartridge looks new
        m.host_runs_session(250, 1, set_clock=True, prepare=False)
        with pytest.raises(AssertionError, match="used or reinserted cartridge"):
            m.pen_stayed_safe()

    _drive(story)


def test_a_host_policy_without_rule_6_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that forgets the interval issues a permit the oracle refuses."""
    from scalppen.policy import interval
    from scalppen.policy.outcome import RuleResult

    def story(m: HostAndPen) -> None:
        _started(m, 250)
        m.host_stops()
        monkeypatch.setattr(interval, "check_interval", lambda *_: RuleResult())
        with pytest.raises(AssertionError, match=r"rule 6: permit 2[34]\.\d+ h before"):
            m.host_runs_session(250, 1, set_clock=True, prepare=True)

    _drive(story)


def test_a_pen_that_forgets_spent_permits_is_caught() -> None:
    """Used nonces are the replay guard (rule 20): losing them is a counter going back."""

    def story(m: HostAndPen) -> None:
        m.host_runs_session(500, 1, set_clock=True, prepare=True)
        m.pen_counters_never_go_back()
        m.app.store.c["nonces"].clear()
        with pytest.raises(AssertionError, match="used nonces forgotten"):
            m.pen_counters_never_go_back()

    _drive(story)


def test_a_store_that_loses_a_record_is_caught() -> None:
    def story(m: HostAndPen) -> None:
        m.host_syncs_log()
        m.store_log_is_the_pens_log()
        m.r.db.execute("DELETE FROM log_records WHERE seq = (SELECT MAX(seq) FROM log_records)")
        with pytest.raises(AssertionError, match="disappeared"):
            m.store_log_is_the_pens_log()

    _drive(story)
