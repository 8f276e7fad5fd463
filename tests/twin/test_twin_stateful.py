"""A hypothesis state machine over the host and the twin, the sibling of
tests/e2e/test_stateful_host.py (which reaches inside the in-process firmware every
tick). Here the firmware is the bundle in MicroPython and every invariant is checked
from outside it: on the body after every control tick, and in the log the host syncs.

Rules: the host runs sessions through its policy (refusals are outcomes), stops,
syncs; virtual time passes; days pass with the pen off; the host's clock jumps; the
user lifts the pen or plugs the charger; the pen loses power or stops feeding its
watchdog; the link is lost. Invariants:

- needles move only after a START the pen acknowledged on this boot, under a permit
  the host issued through its policy, never deeper than it, never past its time;
  never on a charger; off the skin for at most one tick;
- every sync stores the pen's log once, with no gap;
- the pen's sessions (from its own log) keep rule 6's intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from scalppen import store as S
from scalppen.client import Pen, PenRefused
from scalppen.policy import PenLimits, issue_permit
from scalppen.workflows.logsync import sync_log
from scalppen.workflows.session import SessionPlan, decide
from scalppen_protocol.codes import PenState, RecordKind
from tests.e2e.stateful_host_model import interval_s
from tests.e2e.vpen_fixtures import radio_silence, wait_until, within
from tests.twin.twin_rig import TwinRig, twin_rig

EXAMPLES = int(os.environ.get("SCALPPEN_STATEFUL_EXAMPLES", "5"))
STEPS = int(os.environ.get("SCALPPEN_STATEFUL_STEPS", "8"))
DEPTH_TOLERANCE_UM = 150  # rule 3
CAM_COAST_MS = 300  # the cam stops within this after the drive is cut

pytestmark = pytest.mark.timeout(max(180, 60 * EXAMPLES))


class Session:
    def __init__(self, depth_um: int, duration_s: int, boot: int) -> None:
        self.depth_um = depth_um
        self.duration_s = duration_s
        # the first tick the needles were driven: the pen takes START at a tick of
        # its own, later than the host sent it, by however long the host took
        self.started_ms: float | None = None
        self.boot = boot


class HostAndTwin(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.tmp = Path(tempfile.mkdtemp(prefix="scalppen-twin-stateful-"))
        self.stack = contextlib.AsyncExitStack()
        self.client: Pen | None = None
        self.host_shift = 0.0
        self.session: Session | None = None
        self.violations: list[str] = []
        self.off_skin_ticks = 0
        self.charger_ticks = 0
        self.driven_ticks = 0  # ticks with the needles driven (the sessions really ran)
        self.stopped_at_ms: float | None = None
        self.history: list[str] = []  # rules and outcomes, for SCALPPEN_STATEFUL_TRACE
        try:
            self.r: TwinRig = self._run(self.stack.enter_async_context(
                twin_rig(self.tmp, speed=None)))
        except BaseException:
            self._close()
            raise
        self.r.twin.on_tick(self._observe)

    # ---- plumbing ---------------------------------------------------------------------
    def _run(self, coro: Any, timeout: float = 90.0) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        asyncio.set_event_loop(None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def teardown(self) -> None:
        if os.environ.get("SCALPPEN_STATEFUL_TRACE"):
            print("\nrules:", ", ".join(self.history))
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self._run(self.client.close(), 20.0)
            self._run(self.stack.aclose(), 30.0)
        finally:
            self._close()

    def host_now(self) -> datetime:
        return datetime.fromtimestamp(self.r.twin.clock.calendar() + self.host_shift, UTC)

    async def _client(self) -> Pen:
        if self.client is not None and self.client.connected:
            return self.client
        if self.client is not None:
            with contextlib.suppress(Exception):
                await within(self.client.close())
        self.client = await self.r.pen()
        return self.client

    # ---- the body, every tick -----------------------------------------------------------
    def _observe(self, hw: Any) -> None:
        now_ms = hw.clock.world_us / 1000
        s = self.session
        if s is not None and hw.motor.duty > 0.0 and s.started_ms is None:
            s.started_ms = now_ms
        if s is not None and (self.r.twin.boots != s.boot or (
                s.started_ms is not None
                and now_ms - s.started_ms > s.duration_s * 1000 + 1000)):
            self.session = s = None  # a reset, or its time is over: nothing may run now
            self.stopped_at_ms = now_ms
        if hw.motor.duty > 0.0:
            self.driven_ticks += 1
            if s is None:
                self.violations.append(f"needles driven without a session at {now_ms:.0f} ms")
            elif hw.depth_um > s.depth_um + DEPTH_TOLERANCE_UM:
                self.violations.append(f"needles at {hw.depth_um:.0f} um under a "
                                       f"{s.depth_um} um permit")
            # the world changes between ticks: the firmware sees it at its next tick
            # and stops in that tick (rules 10 and 11), so one tick is allowed
            self.charger_ticks = self.charger_ticks + 1 if hw.battery.plugged else 0
            if self.charger_ticks > 1:
                self.violations.append("needles driven on the charger for more than a tick")
            self.off_skin_ticks = 0 if hw.body.contact else self.off_skin_ticks + 1
            if self.off_skin_ticks > 1:
                self.violations.append("needles driven off the skin for more than a tick")
        else:
            self.off_skin_ticks = 0
            self.charger_ticks = 0

    # ---- rules ----------------------------------------------------------------------------
    @initialize(first_session=st.sampled_from([True, True, False]))
    def pair(self, first_session: bool = False) -> None:
        """Pair once per example; most examples then start a first session at once."""
        self.history.append("pair")
        self._run(self.r.pair())
        if first_session:
            self.host_runs_session(500, 1)

    @rule(depth=st.sampled_from([500, 250, 750, 1000]), minutes=st.sampled_from([1, 2]))
    def host_runs_session(self, depth: int, minutes: int) -> None:
        self.history.append("host_runs_session")
        self._run(self._session(depth, minutes * 60))

    async def _session(self, depth: int, duration_s: int) -> None:
        hw = self.r.twin.hw
        hw.plug_charger(False)
        hw.set_battery(90)
        hw.set_contact(True)
        if hw.cartridge is None or hw.cartridge.record.get("finished") or \
                hw.cartridge.strokes > 0:
            if hw.cartridge is not None:
                hw.remove_cartridge()
                await self.r.twin.run_for(300)
            hw.insert_cartridge("new")
        await self.r.twin.run_for(300)
        pen = await self._client()
        status = await within(pen.status())
        key = S.get_permit_key(self.r.db, self.r.serial)
        assert key is not None
        if not status.clock and status.state not in (PenState.RUNNING, PenState.PAUSED):
            # a power cut took the pen's clock: the host sets it first (signed)
            await within(pen.set_time(int(self.host_now().timestamp()), key))
            self.history.append("host set the pen's clock")
            status = await within(pen.status())
        last = None
        if status.last_session_end:
            last = (datetime.fromtimestamp(status.last_session_end, UTC),
                    status.last_session_depth_um)
        assert pen.info is not None and pen.info.limits is not None
        plan = SessionPlan(self.r.patient_id, depth, duration_s, attested=True)
        moment = self.host_now()
        lock_left = max(0, status.lockout_until - status.clock) if status.clock else 0
        decision = decide(self.r.db, self.r.serial, plan,
                          PenLimits.from_info(asdict(pen.info.limits)), moment, last, lock_left)
        if not decision.allowed:
            self.history.append(f"refused by rules {sorted({r.rule for r in decision.refusals})}")
            return
        permit = issue_permit(decision, key, moment)
        S.record_permit(self.r.db, self.r.serial, permit, profile_id=self.r.patient_id)
        try:
            await within(pen.set_time(int(moment.timestamp()), key))  # as run_session does
            await within(pen.arm(permit.as_dict()))
            await within(pen.set_depth(permit.max_depth_um))
        except PenRefused as exc:
            self.history.append(f"pen refused: {exc.code!r}")
            return
        before = self.session  # a session the pen may still be running
        self.session = Session(permit.max_depth_um, permit.max_duration_s, self.r.twin.boots)
        try:
            await within(pen.start())
            self.history.append(f"session {permit.max_depth_um} um")
        except PenRefused as exc:
            self.history.append(f"pen refused: {exc.code!r}")
            self.session = before
            return

    @rule()
    def host_stops(self) -> None:
        self.history.append("host_stops")
        async def stop() -> None:
            pen = await self._client()
            with contextlib.suppress(PenRefused):
                await within(pen.end_session())
            await self.r.twin.run_for(CAM_COAST_MS)
            self.session = None

        self._run(stop())

    @rule(seconds=st.sampled_from([1, 20, 120]))
    def time_passes(self, seconds: int) -> None:
        self.history.append(f"time_passes({seconds})")
        self._run(self.r.twin.run_for(seconds * 1000), 120.0)

    @rule(hours=st.sampled_from([24, 72, 192]))
    def days_pass_with_the_pen_off(self, hours: int) -> None:
        self.history.append(f"days_pass({hours} h)")
        async def off() -> None:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    await within(self.client.close())
                self.client = None
            twin = self.r.twin
            boots = twin.boots
            twin.clock.set_epoch(twin.clock.epoch_us() / 1e6 + hours * 3600)
            twin.clock.set_calendar(twin.clock.calendar() + hours * 3600)
            await twin.reboot()
            await wait_until(lambda: twin.boots > boots and twin.bridge is not None, 30.0,
                             "the pen to come back")
            await twin.run_for(1500)

        self._run(off())

    @rule(seconds=st.sampled_from([-3600, 240, 3600]))
    def host_clock_jumps(self, seconds: int) -> None:
        self.history.append(f"host_clock_jumps({seconds})")
        self.host_shift += seconds

    @rule(change=st.sampled_from(["contact_off", "contact_on", "charger_on", "charger_off"]))
    def body_changes(self, change: str) -> None:
        self.history.append(f"body_changes({change})")
        what, arg = change.split("_")
        hw = self.r.twin.hw
        if what == "contact":
            hw.set_contact(arg == "on")
        else:
            hw.plug_charger(arg == "on")
        self._run(self.r.twin.run_for(200))

    @rule(kind=st.sampled_from(["power_loss", "watchdog"]))
    def pen_resets(self, kind: str) -> None:
        self.history.append(f"pen_resets({kind})")
        async def reset() -> None:
            twin = self.r.twin
            boots = twin.boots
            if kind == "power_loss":
                twin.hw.inject("power_loss")
            else:
                await twin.probe("app.pen.broken = True\nresult = 1", exec_=True)
            await wait_until(lambda: twin.boots > boots and twin.bridge is not None, 30.0,
                             "the reset")
            await twin.run_for(1500)

        self._run(reset())

    @rule()
    def link_lost(self) -> None:
        self.history.append("link_lost")
        async def lose() -> None:
            radio_silence(self.r.twin, self.r.radio)
            await self.r.twin.run_for(500)

        self._run(lose())

    # ---- invariants --------------------------------------------------------------------------
    @invariant()
    def the_body_stayed_safe(self) -> None:
        assert not self.violations, "\n".join(self.violations[:5])

    @invariant()
    def the_log_syncs_once_without_gaps_and_keeps_rule_6(self) -> None:
        async def sync() -> list[tuple[int, int, int]]:
            pen = await self._client()
            result = await within(sync_log(pen, self.r.db, self.r.serial,
                                           now=self.host_now()), 60.0)
            assert result.gaps == [] and result.duplicates == 0, result
            rows = self.r.db.query(
                "SELECT seq, time, kind, depth_um FROM log_records WHERE pen_serial = ?"
                " ORDER BY seq", (self.r.serial,))
            seqs = [int(x["seq"]) for x in rows]
            assert seqs == list(range(1, len(seqs) + 1)), "the host's copy has holes"
            return [(int(x["time"]), int(x["kind"]), int(x["depth_um"])) for x in rows]

        log = self._run(sync())
        starts = [(t, d) for t, k, d in log if k == RecordKind.SESSION_START]
        ends = [(t, d) for t, k, d in log if k == RecordKind.SESSION_END]
        for (t_start, _d), (t_prev_end, d_prev) in zip(starts[1:], ends, strict=False):
            assert t_start - t_prev_end >= interval_s(d_prev) - 60, (
                f"a session started {t_start - t_prev_end} s after one at {d_prev} um")


HostAndTwin.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_host_and_twin_stateful = HostAndTwin.TestCase


def test_a_known_story_keeps_every_invariant() -> None:
    """Driven by hand: a session, a power cut in the next, days with the pen off, a
    refused early session, a clock jump, a lost link, the watchdog."""
    machine = HostAndTwin()
    try:
        machine.pair()
        machine.host_runs_session(500, 1)
        machine.time_passes(20)
        machine.the_body_stayed_safe()
        machine.the_log_syncs_once_without_gaps_and_keeps_rule_6()
        machine.time_passes(120)
        machine.days_pass_with_the_pen_off(72)
        machine.host_runs_session(500, 2)
        machine.time_passes(20)
        machine.pen_resets("power_loss")
        machine.the_body_stayed_safe()
        machine.the_log_syncs_once_without_gaps_and_keeps_rule_6()
        machine.host_runs_session(500, 1)  # rule 6: refused, the last session is recent
        machine.host_clock_jumps(3600)
        machine.link_lost()
        machine.pen_resets("watchdog")
        machine.days_pass_with_the_pen_off(192)
        machine.host_runs_session(500, 1)
        machine.time_passes(120)
        machine.the_body_stayed_safe()
        machine.the_log_syncs_once_without_gaps_and_keeps_rule_6()
        assert machine.driven_ticks > 100 * 100  # the sessions needled (100 s and more)
        started = [h for h in machine.history if h.startswith("session ")]
        assert len(started) >= 3, machine.history
        assert any(h.startswith("refused by rules") and "6" in h for h in machine.history), \
            machine.history
    finally:
        machine.teardown()


def test_the_body_monitor_catches_needles_without_a_session() -> None:
    machine = HostAndTwin()
    try:
        machine.pair()
        hw = machine.r.twin.hw
        hw.motor.duty = 0.5  # as if the firmware drove the motor on its own
        machine._observe(hw)
        with pytest.raises(AssertionError, match="without a session"):
            machine.the_body_stayed_safe()
    finally:
        machine.teardown()
