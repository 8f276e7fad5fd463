"""``session list`` and ``session show ID``: the sessions stored on this computer."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from scalppen import store as S
from scalppen.cli.common import JSON_HELP, console, handle_errors, print_json
from scalppen.cli.storage import open_db, pen_spec, resolve_pen, resolve_profile
from scalppen.session_end import end_reason


def _when(s: S.Session) -> str:
    return s.started_at.astimezone().strftime("%Y-%m-%d %H:%M") if s.started_at else "?"


def _tolerated(value: bool | None) -> str:
    return "not rated" if value is None else ("yes" if value else "no")


def as_doc(db: S.Store, s: S.Session) -> dict[str, Any]:
    """A session as ``--json`` shows it."""
    return {
        "id": s.id, "pen": s.pen_serial, "profile_id": s.profile_id,
        "started_at": s.started_at.isoformat() if s.started_at else None,
        "ended_at": s.ended_at.isoformat() if s.ended_at else None,
        "depth_um": s.depth_um, "minutes": round(s.duration_s / 60, 2), "strokes": s.strokes,
        "end_reason": end_reason(db, s), "tolerated": s.tolerated, "complete": s.complete,
        "notes": _notes(db, s),
    }


def _notes(db: S.Store, s: S.Session) -> list[str]:
    """Adverse events reported after this session (rule 18)."""
    return [f"{e.kind}: {e.notes}".rstrip(": ") for e in S.list_adverse_events(db, s.profile_id)
            if e.session_id == s.id] if s.profile_id is not None else []


@handle_errors
def list_cmd(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option("--profile", help="profile id or name")] = None,
    pen: Annotated[str | None, typer.Option("--pen", help="only this pen (serial)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List stored sessions: date, depth, minutes, strokes, end reason, tolerated."""
    spec = pen_spec(ctx, pen)
    with open_db(ctx) as db:
        prof = resolve_profile(db, profile) if profile is not None else None
        serial = resolve_pen(db, spec).serial if spec else None
        sessions = S.list_sessions(db, profile_id=prof.id if prof else None, pen_serial=serial)
        docs = [as_doc(db, s) for s in sessions]
    if as_json:
        print_json({"sessions": docs})
        return
    if not sessions:
        console.print("no sessions stored yet (scalppen logs sync reads them from the pen)",
                      markup=False)
        return
    table = Table(title="Sessions")
    for name, just in (("id", "right"), ("date", "left"), ("depth", "right"),
                       ("min", "right"), ("strokes", "right"), ("ended", "left"),
                       ("tolerated", "left"), ("notes", "left")):
        table.add_column(name, justify=just, overflow="fold")  # type: ignore[arg-type]
    for s, d in zip(sessions, docs, strict=True):
        table.add_row(str(s.id), _when(s), f"{s.depth_um / 1000:.2f} mm",
                      f"{s.duration_s / 60:.1f}", f"{s.strokes:,}", d["end_reason"],
                      _tolerated(s.tolerated), "; ".join(d["notes"]))
    console.print(table)


@handle_errors
def show_cmd(
    ctx: typer.Context,
    session: Annotated[int, typer.Argument(min=1, help="the session's id (session list)")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """One session in full."""
    with open_db(ctx) as db:
        s = S.get_session(db, session)
        doc = as_doc(db, s)
        who = S.get_profile(db, s.profile_id).name if s.profile_id is not None else "no profile"
    if as_json:
        print_json(doc)
        return
    rows = [
        ("session", f"{s.id}, pen {s.pen_serial}, {who}"),
        ("started", _when(s)),
        ("ended", s.ended_at.astimezone().strftime("%Y-%m-%d %H:%M") if s.ended_at else "?"),
        ("depth", f"{s.depth_um / 1000:.2f} mm"),
        ("needling", f"{s.duration_s / 60:.1f} min, {s.strokes:,} strokes"),
        ("end", doc["end_reason"]),
        ("tolerated", _tolerated(s.tolerated)),
        ("notes", "; ".join(doc["notes"]) or "-"),
    ]
    table = Table(show_header=False, box=None)
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def register(session_app: typer.Typer) -> None:
    session_app.command("list")(list_cmd)
    session_app.command("show")(show_cmd)
