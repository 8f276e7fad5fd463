"""The whole story against a virtual pen, in accelerated time (``scalppen demo``).

Pair (the passkey read off the pen's display), screening, a first session at
0.5 mm, log sync, wear, the next session refused by the interval lockout with the
time it lifts, and the report. Everything goes through the same workflows and
protocol as with a real pen; only the pen is virtual.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalppen import store as S
from scalppen.client import Pen
from scalppen.policy import CONTRAINDICATIONS
from scalppen.report import write_report
from scalppen.results import NoticeEvent, PenEvent, TelemetryEvent
from scalppen.workflows.logsync import sync_log
from scalppen.workflows.pairing import pair_pen
from scalppen.workflows.radio import Radio
from scalppen.workflows.session import SessionPlan, decide, run_session
from scalppen_protocol.codes import Notice

PASSKEY_ON_DISPLAY = re.compile(r"PAIR (\d{6})")
FIRST_DEPTH_UM = 500
FIRST_MINUTES = 11
SPEED = 120.0  # virtual seconds per real second during the session


@dataclass
class DemoResult:
    serial: str = ""
    passkey: str = ""
    session_minutes: float = 0.0
    strokes: int = 0
    warned: bool = False
    synced_new: int = 0
    resync_new: int = -1
    refusal_rule: int = 0
    lifts_at: datetime | None = None
    report: Path | None = None
    display: list[str] = field(default_factory=list)


Say = Callable[[str], None]


async def run_demo(home: Path, say: Say, *, speed: float = SPEED) -> DemoResult:
    """Run the story in ``home`` (database, pen flash, report); returns what happened."""
    from scalppen.twin import make_twin
    from scalppen_hardware import ble_radio

    result = DemoResult()
    home.mkdir(parents=True, exist_ok=True)
    link = ble_radio.new_link()
    # The twin: the firmware bundle `scalppen build` makes, in a MicroPython process.
    vpen = make_twin(home / "pen-flash", link, speed=speed, epoch=time.time())
    vpen.on_display(result.display.append)

    def now() -> datetime:  # the host's clock runs with the pen's virtual time
        return datetime.fromtimestamp(vpen.unix_time(), UTC)

    await vpen.start()
    await vpen.run_for(500)
    say(f"virtual pen on: its display shows {' | '.join(vpen.display.splitlines())!r}")
    db = S.open_store(home / "scalppen.db")
    try:
        async with Radio(link, keystore=home / "bonds.json") as radio:
            await _story(radio, vpen, db, now, say, result, home)
    finally:
        db.close()
        await vpen.stop()
    return result


async def _story(
    radio: Radio, vpen: Any, db: S.Store, now: Callable[[], datetime], say: Say,
    result: DemoResult, home: Path,
) -> None:
    found = await radio.scan(2.0)
    if not found:
        raise RuntimeError("the virtual pen was not found by scanning")
    address = found[0].address
    say(f"1. scan: found {found[0].name} at {address}")

    async def read_passkey() -> str:
        for _ in range(500):
            m = PASSKEY_ON_DISPLAY.search(vpen.display)
            if m:
                result.passkey = m.group(1)
                return m.group(1)
            await asyncio.sleep(0.01)
        raise RuntimeError("no passkey appeared on the pen's display")

    patient = S.add_profile(db, "Demo patient", birth_year=1988)
    paired = await pair_pen(radio, db, address, read_passkey, now, patient.id)
    result.serial = paired.info.serial
    say(f"2. pair: passkey {result.passkey} read off the pen's display; paired with "
        f"{paired.info.model} {paired.info.serial}, permit key set")

    answers = {key: False for key in CONTRAINDICATIONS}
    screening = S.record_screening(db, patient.id, answers, now=now())
    say(f"3. screening: {len(answers)} contraindications, none present "
        f"({'passed' if not getattr(screening, 'positive', False) else 'locked'})")

    vpen.hw.insert_cartridge("new")
    vpen.hw.set_contact(True)
    await vpen.run_for(300)
    plan = SessionPlan(patient.id, FIRST_DEPTH_UM, FIRST_MINUTES * 60, attested=True)
    last_minute = [-1]

    def on_event(ev: PenEvent) -> None:
        if isinstance(ev, TelemetryEvent):
            minute = ev.elapsed_ms // 60000
            if minute != last_minute[0] and minute % 2 == 0:
                last_minute[0] = minute
                say(f"   {minute:02d}:00  {ev.strokes:>7,} strokes  {ev.rate_x10 / 10:.0f}/s  "
                    f"depth {ev.depth_um / 1000:.2f} mm  battery {ev.battery_pct} %")
        elif isinstance(ev, NoticeEvent) and ev.code == Notice.SESSION_WARN:
            say("   10:00  warning: 10 minutes of needling, finish soon (hard stop at 15)")

    say(f"4. first session at {FIRST_DEPTH_UM / 1000:.1f} mm for {FIRST_MINUTES} min "
        f"(sterilisation attested; time runs {vpen.speed:.0f}x)")
    async with Pen(radio.transport(address)) as pen:
        outcome = await run_session(pen, db, plan, now, on_event=on_event)
        result.session_minutes = outcome.elapsed_s / 60
        result.strokes = outcome.strokes
        result.warned = outcome.warned
        say(f"   ended: {outcome.ended_by}; {outcome.elapsed_s / 60:.1f} min, "
            f"{outcome.strokes:,} strokes")
        sessions = S.list_sessions(db, pen_serial=result.serial)
        if sessions:
            S.set_tolerated(db, sessions[-1].id, True)
        assert outcome.sync is not None
        result.synced_new = outcome.sync.new
        say(f"5. log sync: {outcome.sync.new} records stored up to #{outcome.sync.last_seq}, "
            f"{outcome.sync.sessions} session(s)")
        again = await sync_log(pen, db, result.serial, now=now())
        result.resync_new = again.new
        say(f"   sync again: {again.new} new, nothing stored twice")
        wear = asdict(await pen.wear())
        used, rated = wear["strokes_used"], wear["strokes_rated"]
        say(f"6. wear: cartridge {bytes(wear['cart_id']).hex()} ({wear['needles']} needles) "
            f"{used:,} of {rated:,} strokes ({used / rated:.0%} of its budget); handpiece "
            f"{wear['hp_sessions']} session(s), {wear['hp_punctures']:,} punctures")

        status = await pen.status()
        last = (datetime.fromtimestamp(status.last_session_end, UTC),
                status.last_session_depth_um) if status.last_session_end else None
        from scalppen.policy import PenLimits

        assert pen.info is not None and pen.info.limits is not None
        decision = decide(db, result.serial, SessionPlan(patient.id, FIRST_DEPTH_UM,
                          attested=True), PenLimits.from_info(asdict(pen.info.limits)),
                          now(), last)
        if decision.allowed:
            raise RuntimeError("the interval lockout did not refuse the next session")
        r = next((x for x in decision.refusals if x.rule == 6), decision.refusals[0])
        result.refusal_rule = r.rule
        result.lifts_at = r.lifts_at
        when = r.lifts_at.strftime("%Y-%m-%d %H:%M UTC") if r.lifts_at else "-"
        say(f"7. next session refused: rule {r.rule}: {r.reason.rstrip('.')}; lifts {when}")
    result.report = write_report(db, home / "report.html", now=now())
    say(f"8. report: {result.report}")
