"""``session start`` (live timer and telemetry, the 10-minute warning), ``resume``, ``stop``."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation

import typer
from rich.live import Live
from rich.text import Text

from scalppen import store as S
from scalppen.cli import session_list
from scalppen.cli.common import UsageError, console, handle_errors, refused, run
from scalppen.cli.connect import Target, connected_pen, resolve_pen, target_for
from scalppen.cli.context import Options, options
from scalppen.cli.storage import open_db, resolve_profile
from scalppen.client import Pen
from scalppen.policy.outcome import Refusal
from scalppen.results import FaultEvent, NoticeEvent, PenEvent, TelemetryEvent
from scalppen.workflows.session import (
    SessionOutcome,
    SessionPlan,
    SessionRefused,
    run_resume,
    run_session,
)
from scalppen_protocol.codes import Notice, PenState

session_app = typer.Typer(help="Run a needling session.", no_args_is_help=True)

GRID_UM = 250
ABS_CEILING_UM = 2500
DEFAULT_CEILING_UM = 1500
CAP_MIN = 15


def parse_depth(text: str, ceiling_um: int = DEFAULT_CEILING_UM) -> int:
    """Depth in mm (e.g. ``0.5``) -> micrometres, on the 0.25 mm grid, within the ceiling."""
    try:
        mm = Decimal(text.strip().removesuffix("mm").strip())
    except InvalidOperation:
        raise UsageError(f"depth {text!r} is not a number", "give millimetres, e.g. 0.5") from None
    um = mm * 1000
    if um != um.to_integral_value() or int(um) % GRID_UM or um < GRID_UM:
        raise UsageError(
            f"depth {text} mm is not on the 0.25 mm grid",
            "use 0.25, 0.5, 0.75, 1.0, ... mm",
        )
    if um > min(ceiling_um, ABS_CEILING_UM):
        raise UsageError(
            f"depth {text} mm is above this pen's ceiling of {ceiling_um / 1000:.2f} mm",
            "choose a shallower depth",
        )
    return int(um)


def refusal_lines(refusals: tuple[Refusal, ...] | list[Refusal]) -> list[str]:
    lines = []
    for r in refusals:
        lifts = ""
        if r.lifts_at is not None:
            lifts = f"; lifts {r.lifts_at.astimezone().strftime('%Y-%m-%d %H:%M')}"
        elif r.clearable_by_clinician:
            lifts = "; a clinician can clear it (scalppen clear)"
        lines.append(f"rule {r.rule}: {r.reason.rstrip('.')}{lifts}")
    return lines


class LiveView:
    """The live timer line: elapsed, strokes, rate, depth, battery, warnings."""

    def __init__(self, planned_s: int) -> None:
        self.planned_s = planned_s
        self.line = Text("arming...")
        self.notes: list[str] = []

    def update(self, event: PenEvent) -> None:
        if isinstance(event, TelemetryEvent):
            s = event.elapsed_ms // 1000
            self.line = Text(
                f"{s // 60:02d}:{s % 60:02d} / {self.planned_s // 60:02d}:{self.planned_s % 60:02d}"
                f"  strokes {event.strokes:,}  {event.rate_x10 / 10:.0f}/s"
                f"  depth {event.depth_um / 1000:.2f} mm  battery {event.battery_pct} %"
                f"  {'contact' if event.contact else 'NO CONTACT'}"
            )
        elif isinstance(event, NoticeEvent):
            if event.code == Notice.SESSION_WARN:
                self.notes.append("10 minutes of needling: finish soon (hard stop at 15)")
            elif event.code == Notice.PAUSED_NO_CONTACT:
                self.notes.append("paused: skin contact lost (press the pen's button to resume)")
            elif event.code == Notice.SESSION_CAP:
                self.notes.append("15-minute hard stop reached")
            elif event.code == Notice.PAUSED_STOPPED:
                self.notes.append(f"stopped in the first 30 s: paused, resumable for "
                                  f"{event.value // 60} min (press the pen's button)")
        elif isinstance(event, FaultEvent):
            self.notes.append(f"fault 0x{int(event.code):02x}: the pen stopped and retracted")

    def render(self) -> Text:
        text = self.line.copy()
        for note in self.notes[-3:]:
            text.append("\n" + note, style="bold yellow")
        return text


@handle_errors
def start_cmd(
    ctx: typer.Context,
    depth: str = typer.Option(..., "--depth", help="needle depth in mm, on the 0.25 mm grid"),
    minutes: float = typer.Option(None, "--minutes", min=1, max=CAP_MIN,
                                  help="needling time (default: the most permitted, <= 15)"),
    profile: str = typer.Option(None, "--profile",
                                help="patient profile id or name (default: the pen's owner)"),
    speed: int = typer.Option(None, "--speed", min=0, max=7, help="speed level (0 = slowest)"),
    sterilised: bool = typer.Option(
        False, "--sterilised", help="confirm the cartridge area was cleaned with 70 % alcohol"
    ),
) -> None:
    """Start a session after the safety policy passes; live timer until it ends."""
    opts = options(ctx)
    depth_um = parse_depth(depth, ABS_CEILING_UM)
    if opts.serial:
        raise UsageError("sessions run over the paired BLE link only",
                         "the bench serial port reads the pen and can STOP it; drop --serial")
    if not sterilised:
        if not console.is_terminal:
            raise UsageError("the sterilisation attestation is missing (rule 19)",
                             "pass --sterilised after cleaning with 70 % isopropyl alcohol")
        sterilised = typer.confirm(
            "Was the cartridge area cleaned with 70 % isopropyl alcohol?", default=False
        )
        if not sterilised:
            raise UsageError("sessions need the sterilisation attestation (rule 19)")

    async def go() -> None:
        with open_db(ctx) as db:
            target = resolve_pen(db, opts.pen)
            pen_row = S.get_pen(db, target.serial)
            ceiling = int((pen_row.limits or {}).get("ceiling_um", DEFAULT_CEILING_UM))
            parse_depth(depth, ceiling)
            owner = resolve_profile(db, profile, owner_of=pen_row).id
            plan = SessionPlan(owner, depth_um, int(minutes * 60) if minutes else None,
                               speed, attested=True)
            try:
                outcome = await _live(opts, target, plan.duration_s or CAP_MIN * 60,
                                      lambda pen, on_event, stop: run_session(
                                          pen, db, plan, opts.now,
                                          on_event=on_event, stop_requested=stop))
            except SessionRefused as exc:
                refused(refusal_lines(exc.decision.refusals))
        _report(ctx, outcome, depth_um)

    run(go())


async def _live(opts: Options, target: Target, planned_s: int,
                runner: Callable[[Pen, Callable[[PenEvent], None], asyncio.Event],
                                 Awaitable[SessionOutcome]]) -> SessionOutcome:
    """Run ``runner`` on the connected pen under the live view; Ctrl-C asks it to STOP."""
    view = LiveView(planned_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        async with connected_pen(opts, target) as pen:
            try:
                with Live(view.render(), console=console, refresh_per_second=4) as live:
                    def on_event(ev: PenEvent) -> None:
                        view.update(ev)
                        live.update(view.render())

                    return await runner(pen, on_event, stop)
            finally:
                # The live view's last state stays; what follows (the outcome, or a
                # refusal) starts on a line of its own. Rich ends that line only on a
                # terminal: into a pipe "arming..." ran into the refusal.
                if not console.is_terminal:
                    console.line()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _report(ctx: typer.Context, outcome: SessionOutcome, depth_um: int) -> None:
    """What the session came to: its end (or its pause), clock findings, tolerance."""
    for finding in outcome.sync.clock_findings if outcome.sync else ():
        console.print(f"[yellow]clock:[/] {finding.text}")
    if outcome.resumable_s:
        left = outcome.resumable_s
        console.print(
            f"session paused ({outcome.ended_by}) after {outcome.elapsed_s:.1f} s of needling "
            f"at {depth_um / 1000:.2f} mm: stopped in its first 30 s, it can go on as the same "
            "session")
        console.print(f"resume within {left // 60}:{left % 60:02d} min: scalppen session "
                      "resume; end it now: scalppen session stop; left alone it ends by itself "
                      "and counts (rule 6)")
        return
    console.print(
        f"session ended ({outcome.ended_by}): {outcome.elapsed_s / 60:.1f} min, "
        f"{outcome.strokes:,} strokes at {depth_um / 1000:.2f} mm"
    )
    _ask_tolerance(ctx, outcome.sync.session_ids if outcome.sync else [])
    if outcome.decision is not None and outcome.decision.topical_hold_until:
        hold = outcome.decision.topical_hold_until.astimezone().strftime("%Y-%m-%d %H:%M")
        console.print(f"no minoxidil until {hold} (rule 7)")


@handle_errors
def resume_cmd(ctx: typer.Context) -> None:
    """Go on with a session the pen paused (stopped in its first 30 s, contact or link
    lost): same session, same permit limits, within 10 minutes of the pause."""
    opts = options(ctx)
    if opts.serial:
        raise UsageError("sessions run over the paired BLE link only", "drop --serial")

    async def go() -> None:
        with open_db(ctx) as db:
            target = resolve_pen(db, opts.pen)
            permits = S.list_permits(db, target.serial)
            planned = permits[-1].max_duration_s if permits else CAP_MIN * 60
            outcome = await _live(opts, target, planned, lambda pen, on_event, stop: run_resume(
                pen, db, opts.now, on_event=on_event, stop_requested=stop))
            depth = permits[-1].max_depth_um if permits else 0
        _report(ctx, outcome, depth)

    run(go())


def _ask_tolerance(ctx: typer.Context, synced: list[int]) -> None:
    """Ask (on a terminal) how the session was tolerated: rule 4 raises depth only after yes.

    ``synced``: the sessions the sync after this one stored, in log order; the last is
    the one just run. Nothing stored: nothing is rated (never another session)."""
    if not synced:
        console.print("this session is not stored yet: run `scalppen logs sync`, then "
                      "record how it was tolerated with `scalppen session rate ID` (rule 4)")
        return
    session_id = synced[-1]
    if not console.is_terminal:
        console.print(f"record how it was tolerated: scalppen session rate {session_id} "
                      "--tolerated (or --not-tolerated); the next depth step depends on it "
                      "(rule 4)")
        return
    answer = typer.confirm(
        "Was the session tolerated well (at most mild redness, no oozing, heat or pus)?",
        default=True,
    )
    with open_db(ctx) as db:
        S.set_tolerated(db, session_id, answer)
    if not answer:
        console.print("noted; if you see oozing, extreme heat or pus, report it: "
                      "scalppen adverse KIND (rule 18)")


@handle_errors
def rate_cmd(
    ctx: typer.Context,
    session: int = typer.Argument(None, help="session id (default: the latest)"),
    tolerated: bool = typer.Option(..., "--tolerated/--not-tolerated",
                                   help="how the session was tolerated"),
) -> None:
    """Record how a session was tolerated (rule 4: depth rises only after a tolerated one)."""
    with open_db(ctx) as db:
        if session is None:
            target = resolve_pen(db, options(ctx).pen)
            sessions = S.list_sessions(db, pen_serial=target.serial)
            if not sessions:
                raise UsageError("no session stored yet", "run `scalppen logs sync` first")
            session = sessions[-1].id
        row = S.set_tolerated(db, session, tolerated)
    when = row.started_at.astimezone().strftime("%Y-%m-%d %H:%M") if row.started_at else "?"
    console.print(f"session {row.id} ({when}, {row.depth_um / 1000:.2f} mm): "
                  f"{'tolerated' if tolerated else 'not tolerated'}")


@handle_errors
def stop_cmd(ctx: typer.Context) -> None:
    """End the pen's session now, running or paused (the needles retract); it counts
    for rule 6 from now. An idle pen is not an error: it says no session is running
    and exits 0."""
    opts = options(ctx)

    async def go() -> None:
        with open_db(ctx) as db:
            target = target_for(db, opts)
        async with connected_pen(opts, target) as pen:
            before = await pen.status()
            if before.state not in (PenState.RUNNING, PenState.PAUSED, PenState.ARMED):
                state = getattr(before.state, "name", str(before.state)).lower()
                console.print(f"no session is running (the pen is {state}): nothing to stop")
                return
            await pen.end_session()
        console.print("session ended: the needles are retracted" if before.state != PenState.ARMED
                      else "disarmed: the permit is dropped")

    run(go())


def register(app: typer.Typer) -> None:
    session_app.command("start")(start_cmd)
    session_app.command("resume")(resume_cmd)
    session_list.register(session_app)
    session_app.command("stop")(stop_cmd)
    session_app.command("rate")(rate_cmd)
    app.add_typer(session_app, name="session")
