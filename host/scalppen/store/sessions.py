"""Sessions, their telemetry summaries, and the event journal."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from scalppen.store.db import Store, from_ts, to_ts, utcnow
from scalppen.store.dialect import Row
from scalppen.store.errors import NotFoundError, StoreError
from scalppen.store.rows import Event, Session, TelemetrySummary


def session_from_row(row: Row) -> Session:
    """A ``sessions`` row as a :class:`Session`."""
    tol = row["tolerated"]
    return Session(
        id=row["id"],
        pen_serial=row["pen_serial"],
        profile_id=row["profile_id"],
        started_at=from_ts(row["started_at"]),
        ended_at=from_ts(row["ended_at"]),
        depth_um=row["depth_um"],
        duration_s=float(row["duration_s"]),
        strokes=row["strokes"],
        tolerated=None if tol is None else bool(tol),
        complete=bool(row["complete"]),
        start_seq=row["start_seq"],
        end_seq=row["end_seq"],
        rated_on=row["rated_on"],
        rated_by=row["rated_by"],
    )


def list_sessions(
    db: Store,
    *,
    profile_id: int | None = None,
    pen_serial: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Session]:
    """Sessions, oldest first, filtered by profile, pen and start time.

    Sessions without a time (pen clock unset) sort first and are left out when a
    time range is given.
    """
    where: list[str] = []
    params: list[Any] = []
    if profile_id is not None:
        where.append("profile_id = ?")
        params.append(profile_id)
    if pen_serial is not None:
        where.append("pen_serial = ?")
        params.append(pen_serial)
    if since is not None:
        where.append("COALESCE(started_at, ended_at) >= ?")
        params.append(to_ts(since))
    if until is not None:
        where.append("COALESCE(started_at, ended_at) < ?")
        params.append(to_ts(until))
    sql = "SELECT * FROM sessions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY COALESCE(started_at, ended_at, 0), pen_serial, COALESCE(start_seq, end_seq)"
    return [session_from_row(r) for r in db.query(sql, params)]


def get_session(db: Store, session_id: int) -> Session:
    """The session with ``session_id``.

    Raises:
        NotFoundError: no such session.
    """
    row = db.query_one("SELECT * FROM sessions WHERE id = ?", (session_id,))
    if row is None:
        raise NotFoundError(f"no session {session_id}")
    return session_from_row(row)


def set_tolerated(db: Store, session_id: int, tolerated: bool) -> Session:
    """Record whether the user tolerated a session (rule 4 raises depth only after yes)."""
    get_session(db, session_id)
    db.execute("UPDATE sessions SET tolerated = ?, rated_on = ?, rated_by = ? WHERE id = ?",
               (int(tolerated), *db.actor, session_id))
    return get_session(db, session_id)


def assign_profile(db: Store, session_id: int, profile_id: int) -> Session:
    """Attach a session to a profile."""
    get_session(db, session_id)
    db.execute("UPDATE sessions SET profile_id = ? WHERE id = ?", (profile_id, session_id))
    return get_session(db, session_id)


def summarise_telemetry(samples: Iterable[Mapping[str, Any]]) -> TelemetrySummary:
    """Summarise telemetry events (``Telemetry`` fields) of one session.

    Raises:
        StoreError: no samples.
    """
    items = list(samples)
    if not items:
        raise StoreError("no telemetry samples to summarise")
    rates = [int(s["rate_x10"]) for s in items]
    return TelemetrySummary(
        samples=len(items),
        rate_mean_x10=round(sum(rates) / len(rates)),
        rate_min_x10=min(rates),
        rate_max_x10=max(rates),
        temp_max_c10=max(int(s["temp_c10"]) for s in items),
        motor_ma_max=max(int(s["motor_ma"]) for s in items),
        battery_start=int(items[0]["battery_pct"]),
        battery_end=int(items[-1]["battery_pct"]),
        contact_pct=round(100 * sum(1 for s in items if s["contact"]) / len(items)),
    )


def record_telemetry_summary(db: Store, session_id: int, summary: TelemetrySummary) -> None:
    """Store (or replace) a session's telemetry summary."""
    get_session(db, session_id)
    db.execute(
        "INSERT INTO telemetry_summaries (session_id, samples, rate_mean_x10,"
        " rate_min_x10, rate_max_x10, temp_max_c10, motor_ma_max, battery_start, battery_end,"
        " contact_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE"
        " SET samples = excluded.samples, rate_mean_x10 = excluded.rate_mean_x10,"
        " rate_min_x10 = excluded.rate_min_x10, rate_max_x10 = excluded.rate_max_x10,"
        " temp_max_c10 = excluded.temp_max_c10, motor_ma_max = excluded.motor_ma_max,"
        " battery_start = excluded.battery_start, battery_end = excluded.battery_end,"
        " contact_pct = excluded.contact_pct",
        (
            session_id,
            summary.samples,
            summary.rate_mean_x10,
            summary.rate_min_x10,
            summary.rate_max_x10,
            summary.temp_max_c10,
            summary.motor_ma_max,
            summary.battery_start,
            summary.battery_end,
            summary.contact_pct,
        ),
    )


def get_telemetry_summary(db: Store, session_id: int) -> TelemetrySummary | None:
    """A session's telemetry summary, if stored."""
    row = db.query_one("SELECT * FROM telemetry_summaries WHERE session_id = ?", (session_id,))
    if row is None:
        return None
    fields = dict(row)
    del fields["session_id"]
    return TelemetrySummary(**fields)


def _event(row: Row) -> Event:
    at = from_ts(row["at"])
    assert at is not None
    return Event(
        id=row["id"],
        at=at,
        pen_serial=row["pen_serial"],
        profile_id=row["profile_id"],
        kind=row["kind"],
        code=row["code"],
        message=row["message"],
        data=json.loads(row["data_json"]),
    )


def record_event(
    db: Store,
    kind: str,
    *,
    message: str = "",
    code: int = 0,
    pen_serial: str | None = None,
    profile_id: int | None = None,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """Append an event to the journal (pen faults and notices, refusals, actions)."""
    if pen_serial is not None:
        db.execute("INSERT INTO pens (serial) VALUES (?) ON CONFLICT DO NOTHING", (pen_serial,))
    new_id = db.insert(
        "INSERT INTO events (at, pen_serial, profile_id, kind, code, message, data_json)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            to_ts(at or utcnow()),
            pen_serial,
            profile_id,
            kind,
            code,
            message,
            json.dumps(dict(data or {}), sort_keys=True, default=str),
        ),
    )
    row = db.query_one("SELECT * FROM events WHERE id = ?", (new_id,))
    assert row is not None
    return _event(row)


def list_events(
    db: Store,
    *,
    pen_serial: str | None = None,
    profile_id: int | None = None,
    kind: str | None = None,
    since: datetime | None = None,
) -> list[Event]:
    """Events, oldest first, filtered."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("pen_serial", pen_serial), ("profile_id", profile_id), ("kind", kind)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("at >= ?")
        params.append(to_ts(since))
    sql = "SELECT * FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_event(r) for r in db.query(sql + " ORDER BY at, id", params)]
