"""The HTML report: one self-contained file with inline SVG plots and tables.

At the top, what a clinic reads first (report_glance.py). Then the sessions table;
plots on one time axis: depth per session, interval to the previous session, strokes
per session, and cartridge wear against its budget; lockouts as ``scalppen lockouts``
lists them (the same policy evaluation, scalppen.holds), host locks with their
clearances, the pen's own refusals and faults (a lost link is one), adverse events,
screenings, pens and cartridges. Times are UTC, at the policy's clock (a sim's
virtual time when the pen is one). Every piece of text is escaped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Final

from scalppen import report_svg
from scalppen.holds import Hold, holds_for
from scalppen.policy.decision import find_locks
from scalppen.policy.history import LOCKING_ADVERSE_KINDS
from scalppen.policy.interval import required_interval
from scalppen.policy.outcome import Lock
from scalppen.policy.rules import DEEP_BAND_UM, RULE_TITLES, PolicyConfig, format_duration
from scalppen.policy.screening import LABELS
from scalppen.policy.service import service_due_at
from scalppen.refusals import describe
from scalppen.report_audit import made_by, narrowed, permits_html, stamped
from scalppen.report_clearances import clearances_html
from scalppen.report_glance import glance
from scalppen.session_end import end_reason
from scalppen.store import (
    AdverseEvent,
    Clearance,
    ClearanceAttempt,
    ClinicianKey,
    IssuedPermit,
    Pen,
    Profile,
    Screening,
    Session,
    Store,
    StoredLogRecord,
    WearSnapshot,
    cartridge_wear,
    get_pen,
    get_profile,
    handpiece_record,
    list_adverse_events,
    list_attempts,
    list_clearances,
    list_clinician_keys,
    list_gaps,
    list_log_records,
    list_pens,
    list_permits,
    list_profiles,
    list_screenings,
    list_sessions,
    list_wear,
    load_history,
)
from scalppen.store.db import utcnow
from scalppen_protocol.codes import ErrorCode, RecordKind

#: Pen log kinds shown in the refusals and faults table (a lost link is a fault too).
PEN_REFUSAL_KINDS: Final = (RecordKind.PERMIT_REFUSED, RecordKind.START_REFUSED, RecordKind.FAULT,
                            RecordKind.LINK_LOST)


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, gathered from the store."""

    title: str
    generated_at: datetime
    profiles: list[Profile]
    pens: list[Pen]
    sessions: list[Session]
    wear: list[WearSnapshot]
    locks: list[tuple[Profile, Lock]]
    clearances: list[Clearance]
    adverse: list[AdverseEvent]
    screenings: list[Screening]
    pen_refusals: list[StoredLogRecord]
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)
    end_reasons: dict[int, str] = field(default_factory=dict)
    latest_wear: dict[str, WearSnapshot] = field(default_factory=dict)
    rate_max_sps: dict[str, int] = field(default_factory=dict)
    service_due: dict[str, datetime | None] = field(default_factory=dict)
    clinician_keys: list[ClinicianKey] = field(default_factory=list)
    clearance_attempts: list[ClearanceAttempt] = field(default_factory=list)
    permits: list[IssuedPermit] = field(default_factory=list)


def build_report_data(
    db: Store,
    *,
    profile_id: int | None = None,
    pen_serial: str | None = None,
    now: datetime | None = None,
    title: str | None = None,
    config: PolicyConfig | None = None,
) -> ReportData:
    """Gather a report's data: one profile and/or one pen, or everything.

    Raises:
        NotFoundError: no such profile or pen.
    """
    config = config or PolicyConfig()
    now = (now or utcnow()).astimezone(UTC)  # the report states its times in UTC
    profiles = [get_profile(db, profile_id)] if profile_id is not None else list_profiles(db)
    pens = [get_pen(db, pen_serial)] if pen_serial is not None else list_pens(db)
    locks: list[tuple[Profile, Lock]] = []
    holds: list[Hold] = []
    for prof in profiles:
        if prof.role == "clinician":
            continue
        history = load_history(db, prof.id, pen_serial=pen_serial)
        locks += [(prof, lock) for lock in find_locks(history, now)]
        owned = [p.serial for p in pens if p.owner_profile_id == prof.id]
        serials: list[str | None] = [pen_serial] if pen_serial else [*owned] or [None]
        for serial in serials:
            holds += [h for h in holds_for(db, prof, serial, now) if h not in holds]
    refusals = [
        r
        for pen in pens
        for r in list_log_records(db, pen.serial, kinds=[int(k) for k in PEN_REFUSAL_KINDS])
    ]
    if title is None:
        who = profiles[0].name if profile_id is not None else "all profiles"
        which = pen_serial or "all pens"
        title = f"Scalp pen report: {who}, {which}"
    sessions = list_sessions(db, profile_id=profile_id, pen_serial=pen_serial)
    latest = {pen.serial: w[-1] for pen in pens if (w := list_wear(db, pen.serial))}
    rates = {pen.serial: int((pen.limits or {}).get("rate_max_sps", 0)) for pen in pens}
    return ReportData(
        title=title,
        generated_at=now,
        profiles=profiles,
        pens=pens,
        sessions=sessions,
        wear=cartridge_wear(db, pen_serial),
        locks=locks,
        clearances=list_clearances(db, profile_id),
        clinician_keys=list_clinician_keys(db),
        permits=[p for pen in pens for p in list_permits(db, pen.serial)
                 if profile_id is None or p.profile_id == profile_id],
        clearance_attempts=[a for a in list_attempts(db)
                            if profile_id is None or a.profile_id in (None, profile_id)],
        adverse=list_adverse_events(db, profile_id),
        screenings=list_screenings(db, profile_id),
        pen_refusals=refusals,
        gaps={pen.serial: list_gaps(db, pen.serial) for pen in pens},
        holds=holds,
        end_reasons={x.id: end_reason(db, x) for x in sessions},
        latest_wear=latest,
        rate_max_sps=rates,
        service_due={pen.serial: service_due_at(handpiece_record(db, pen.serial), config)
                     for pen in pens},
    )


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(moment: datetime | None) -> str:
    return "unknown" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


#: A word longer than this may break anywhere (a pen's or a user's string with no
#: spaces must not widen the page); shorter ones wrap only between words.
LONG_WORD: Final = 20


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    long = any(len(word) > LONG_WORD for word in text.split())
    return f'<td class="long">{_e(text)}</td>' if long else f"<td>{_e(text)}</td>"


def _table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[object]], *,
           css: str = "", empty: str = "None recorded.") -> str:
    body = ["<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows]
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    if not body:
        body = [f'<tr><td colspan="{len(headers)}" class="none">{_e(empty)}</td></tr>']
    klass = f' class="{css}"' if css else ""
    return (
        f"<table{klass}><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _session_when(session_id: int | None, sessions: Sequence[Session]) -> str:
    """The session an adverse event follows, by its start (as the sessions table)."""
    if session_id is None:
        return ""
    s = next((x for x in sessions if x.id == session_id), None)
    return _when(s.started_at) if s is not None else f"#{session_id}"


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:04x}"


def _kind_name(kind: int) -> str:
    try:
        return RecordKind(kind).name
    except ValueError:
        return str(kind)


def _plots(data: ReportData, config: PolicyConfig) -> list[str]:
    timed = [s for s in data.sessions if s.started_at is not None]
    depth_pts = [(s.started_at, s.depth_um / 1000) for s in timed if s.started_at]
    intervals: list[tuple[datetime, float]] = []
    too_soon: list[bool] = []
    prev: Session | None = None
    for s in timed:
        if prev is not None and s.started_at is not None:
            prev_end = prev.ended_at or prev.started_at
            assert prev_end is not None
            gap = s.started_at - prev_end
            intervals.append((s.started_at, gap.total_seconds() / 86400))
            too_soon.append(gap < required_interval(prev.depth_um, config))
        prev = s
    strokes = [(s.started_at, float(s.strokes)) for s in timed if s.started_at]
    # one time axis for the three plots: a session sits at the same place in each
    starts = [t for t, _ in depth_pts]
    x_range = (min(starts), max(starts)) if starts else None
    wear_items = [
        (f"{w.cart_id[:12]} ({w.needles} n)", w.punctures_used, w.punctures_rated)
        for w in data.wear
    ]
    return [
        report_svg.time_series_svg(
            "depth",
            "Depth per session",
            depth_pts,
            y_label="depth (mm)",
            y_max=max(1.5, max((v for _, v in depth_pts), default=0)),
            x_range=x_range,
        ),
        report_svg.time_series_svg(
            "interval",
            "Interval to the previous session (red: shorter than rule 6 asks)",
            intervals,
            y_label="days",
            style="bars",
            alerts=too_soon,
            ref_lines=[(config.interval_deep.total_seconds() / 86400,
                        f"{format_duration(config.interval_deep)} "
                        f"(>= {DEEP_BAND_UM / 1000:.1f} mm)")],
            x_range=x_range,
        ),
        report_svg.time_series_svg(
            "strokes", "Strokes per session", strokes, y_label="strokes", style="bars",
            x_range=x_range,
        ),
        report_svg.budget_bars_svg(
            "wear", "Cartridge wear against its budget (strokes x needles)", wear_items
        ),
    ]


_CSS: Final = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1a202c; max-width: 980px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; width: 100%; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #cbd5e0; padding: 0.25em 0.5em; text-align: left; }
th { background: #edf2f7; } td.long { overflow-wrap: anywhere; } td.none { color: #718096; }
.active { color: #c53030; font-weight: bold; } svg { display: block; margin: 0.8em 0; }
.meta { color: #4a5568; }
.glance { border: 2px solid #2b6cb0; padding: 0.6em 1em; margin: 1em 0; }
.glance dt { font-weight: bold; margin-top: 0.4em; } .glance dd { margin-left: 1em; }
.prompt { color: #c53030; font-weight: bold; }
"""


def render_report(data: ReportData, config: PolicyConfig | None = None) -> str:
    """The report as one HTML document (inline CSS and SVG, no external resources)."""
    config = config or PolicyConfig()
    clear_by_lock: dict[str, Clearance] = {}
    for clearance in data.clearances:
        if clearance.key_fingerprint:  # unsigned (older) records lift nothing
            clear_by_lock[clearance.lock_id] = clearance
    lock_rows = []
    for prof, lock in data.locks:
        c = clear_by_lock.get(lock.lock_id)
        status = (
            f"cleared on {_when(c.at)}, signed by {c.clinician_name} (key "
            f"{c.key_fingerprint}): {c.reason}"
            if lock.cleared and c
            else "ACTIVE"
        )
        lock_rows.append(
            (
                prof.name,
                f"{lock.rule} ({RULE_TITLES.get(lock.rule, '')})",
                _when(lock.since),
                lock.reason,
                status,
            )
        )
    with_ids = any(h.lock_id for h in data.holds)  # as `scalppen lockouts` shows them
    completed = [s for s in data.sessions if s.complete]
    total_strokes = sum(s.strokes for s in data.sessions)
    names = {p.id: p.name for p in data.profiles}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(data.title)}</h1>",
        f'<p class="meta">Generated {_e(_when(data.generated_at))}. '
        f"{len(data.sessions)} sessions ({len(completed)} complete), "
        f"{total_strokes:,} strokes, {len(data.pens)} pen(s).</p>",
        *glance(data, config),
        "<h2>Sessions</h2>",
        _table(
            "Sessions (rule 4: depth rises only after a tolerated session)",
            ["date", "depth (mm)", "minutes", "strokes", "end", "tolerated"],
            [
                (
                    _when(x.started_at),
                    f"{x.depth_um / 1000:.2f}",
                    f"{x.duration_s / 60:.1f}",
                    f"{x.strokes:,}",
                    data.end_reasons.get(x.id, ""),
                    "not rated" if x.tolerated is None else ("yes" if x.tolerated else "no"),
                )
                for x in data.sessions
            ],
            css="sessions",
        ),
        "<h2>History</h2>",
        *_plots(data, config),
        "<h2>Lockouts</h2>",
        _table(
            f"What holds the next session back at {_when(data.generated_at)}",
            ["profile", "rule", "why", "lifts", *(["lock id"] if with_ids else [])],
            [(h.who, f"{h.rule} ({RULE_TITLES.get(h.rule, '')})", h.reason, h.lifts,
              *([h.lock_id] if with_ids else []))
             for h in sorted(data.holds, key=lambda h: (h.who, h.rule))],
            css="holds",
            empty="Nothing: the next session is not held back.",
        ),
        _table(
            "Host locks (rules 16, 17, 18) and their clearances by a clinician (rule 22)",
            ["profile", "rule", "since", "reason", "status"],
            lock_rows,
            css="locks",
        ),
        clearances_html(data),
        permits_html(data),
        _table(
            "Refusals and faults logged by the pen",
            ["pen", "seq", "time", "kind", "code", "what", "depth (mm)"],
            [
                (
                    r.pen_serial,
                    r.seq,
                    _when(r.time),
                    _kind_name(r.kind),
                    _code_name(r.code),
                    describe(r.code) if r.code else "",
                    f"{r.depth_um / 1000:.2f}",
                )
                for r in data.pen_refusals
            ],
            css="pen-log",
        ),
        _table(
            "Gaps in the pen logs (records lost before they were read)",
            ["pen", "first missing seq", "last missing seq"],
            [(pen, a, b) for pen, gaps in data.gaps.items() for a, b in gaps],
            css="gaps",
        ),
        "<h2>Adverse events</h2>",
        _table(
            "Reported adverse events (rule 18)",
            ["profile", "at", "kind", "locks sessions", "session", "notes",
             *(["room, user"] if stamped(data.adverse) else [])],
            [
                (
                    names.get(a.profile_id, a.profile_id),
                    _when(a.at),
                    a.kind,
                    "yes, until a clinician clears it" if a.kind in LOCKING_ADVERSE_KINDS
                    else "no",
                    _session_when(a.session_id, data.sessions),
                    a.notes,
                    *([made_by(a)] if stamped(data.adverse) else []),
                )
                for a in data.adverse
            ],
            css="adverse",
        ),
        "<h2>Screenings</h2>",
        _table(
            "Contraindication screenings (rule 17)",
            ["profile", "at", "result", "found",
             *(["room, user"] if stamped(data.screenings) else [])],
            [
                (
                    names.get(s.profile_id, s.profile_id),
                    _when(s.at),
                    s.result,
                    ", ".join(LABELS.get(p, p) for p in s.positives),
                    *([made_by(s)] if stamped(data.screenings) else []),
                )
                for s in data.screenings
            ],
            css="screenings",
        ),
        "<h2>Pens and cartridges</h2>",
        _table(
            "Pens",
            ["serial", "model", "firmware", "hardware", "owner", "paired"],
            [(p.serial, p.model, p.fw_version, p.hw_rev,
              names.get(p.owner_profile_id, "") if p.owner_profile_id is not None else "",
              _when(p.paired_at) if p.paired_at else "not paired")
             for p in data.pens],
            css="pens",
        ),
        _table(
            "Latest reading of each cartridge",
            [
                "pen",
                "cartridge",
                "needles",
                "strokes used",
                "strokes rated",
                "punctures used",
                "expiry",
            ],
            [
                (
                    w.pen_serial,
                    w.cart_id,
                    w.needles,
                    f"{w.strokes_used:,}",
                    f"{w.strokes_rated:,}",
                    f"{w.punctures_used:,}",
                    _when(w.expiry),
                )
                for w in data.wear
            ],
            css="cartridges",
        ),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    db: Store,
    path: str | os.PathLike[str],
    *,
    profile_id: int | None = None,
    pen_serial: str | None = None,
    now: datetime | None = None,
    title: str | None = None,
    room: str | None = None,
    user: str | None = None,
) -> Path:
    """Write the HTML report (created 0600: it holds health data) and return its path.

    Args:
        db: the store.
        path: the file to write.
        profile_id: only this profile (default: everyone).
        pen_serial: only this pen (default: every pen).
        now: the report's time (default: now).
        title: the report's title.
        room, user: only what was made in this room, by this user (clinic audit).

    Returns:
        The path written.

    Raises:
        NotFoundError: no such profile or pen.
    """
    data = build_report_data(db, profile_id=profile_id, pen_serial=pen_serial, now=now, title=title)
    data = narrowed(data, room=room, user=user)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_report(data))
    return out
