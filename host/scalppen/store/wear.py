"""Cartridge and handpiece wear snapshots (the pen's WEAR message)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scalppen.store.db import Store, from_ts, to_ts, utcnow
from scalppen.store.dialect import Row
from scalppen.store.pens import ensure_pen
from scalppen.store.rows import WearSnapshot


def _snapshot(row: Row) -> WearSnapshot:
    at = from_ts(row["at"])
    assert at is not None
    return WearSnapshot(
        id=row["id"],
        pen_serial=row["pen_serial"],
        at=at,
        cartridge=bool(row["cartridge"]),
        cart_id=row["cart_id"],
        needles=row["needles"],
        strokes_used=row["strokes_used"],
        strokes_rated=row["strokes_rated"],
        first_use=from_ts(row["first_use"]),
        expiry=from_ts(row["expiry"]),
        cart_state=row["cart_state"],
        hp_strokes=row["hp_strokes"],
        hp_punctures=row["hp_punctures"],
        hp_sessions=row["hp_sessions"],
        hp_run_s=row["hp_run_s"],
        hp_first_session=from_ts(row["hp_first_session"]),
    )


def record_wear(
    db: Store, pen_serial: str, wear: Mapping[str, Any], *, at: datetime | None = None
) -> WearSnapshot:
    """Store a WEAR reading (``Wear`` message fields; ``cart_id`` bytes or hex)."""
    ensure_pen(db, pen_serial)
    cart_id = wear.get("cart_id", b"")
    cart_hex = cart_id.hex() if isinstance(cart_id, bytes | bytearray) else str(cart_id)
    new_id = db.insert(
        "INSERT INTO wear_snapshots (pen_serial, at, cartridge, cart_id, needles, strokes_used,"
        " strokes_rated, first_use, expiry, cart_state, hp_strokes, hp_punctures, hp_sessions,"
        " hp_run_s, hp_first_session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            pen_serial,
            to_ts(at or utcnow()),
            int(bool(wear.get("cartridge", 1))),
            cart_hex,
            int(wear.get("needles", 0)),
            int(wear.get("strokes_used", 0)),
            int(wear.get("strokes_rated", 0)),
            int(wear.get("first_use", 0)) or None,
            int(wear.get("expiry", 0)) or None,
            int(wear.get("cart_state", 0)),
            int(wear.get("hp_strokes", 0)),
            int(wear.get("hp_punctures", 0)),
            int(wear.get("hp_sessions", 0)),
            int(wear.get("hp_run_s", 0)),
            int(wear.get("hp_first_session", 0)) or None,
        ),
    )
    row = db.query_one("SELECT * FROM wear_snapshots WHERE id = ?", (new_id,))
    assert row is not None
    return _snapshot(row)


def latest_wear(db: Store, pen_serial: str) -> WearSnapshot | None:
    """The pen's most recent wear reading."""
    row = db.query_one(
        "SELECT * FROM wear_snapshots WHERE pen_serial = ? ORDER BY at DESC, id DESC LIMIT 1",
        (pen_serial,),
    )
    return _snapshot(row) if row else None


def list_wear(db: Store, pen_serial: str | None = None) -> list[WearSnapshot]:
    """Every wear reading, oldest first."""
    if pen_serial is None:
        rows = db.query("SELECT * FROM wear_snapshots ORDER BY at, id")
    else:
        rows = db.query(
            "SELECT * FROM wear_snapshots WHERE pen_serial = ? ORDER BY at, id", (pen_serial,)
        )
    return [_snapshot(r) for r in rows]


def cartridge_wear(db: Store, pen_serial: str | None = None) -> list[WearSnapshot]:
    """The latest reading of each cartridge (present ones only), oldest cartridge first."""
    sql = (
        "SELECT w.* FROM wear_snapshots w JOIN ("
        " SELECT cart_id, MAX(id) AS id FROM wear_snapshots"
        " WHERE cartridge = 1 AND cart_id != ''{pen} GROUP BY cart_id"
        ") last ON last.id = w.id ORDER BY w.at, w.id"
    )
    if pen_serial is None:
        rows = db.query(sql.format(pen=""))
    else:
        rows = db.query(sql.format(pen=" AND pen_serial = ?"), (pen_serial,))
    return [_snapshot(r) for r in rows]


def handpiece_first_session(db: Store, pen_serial: str) -> datetime | None:
    """The handpiece's first session: the earlier of its log and its own counter."""
    # MIN(COALESCE(started_at, ended_at)), in two parts each index sessions_pen
    # answers at once (the COALESCE read every session of the pen: 2.7 ms of a
    # clinic pen's 20,000 on PostgreSQL, most of a permit's policy time)
    row = db.query_one(
        "SELECT MIN(t) FROM (SELECT MIN(started_at) AS t FROM sessions WHERE pen_serial = ?"
        " UNION ALL SELECT MIN(ended_at) FROM sessions WHERE pen_serial = ?"
        " AND started_at IS NULL) AS first",
        (pen_serial, pen_serial),
    )
    from_log = from_ts(row[0]) if row else None
    hp = db.query_one(
        "SELECT MIN(hp_first_session) FROM wear_snapshots"
        " WHERE pen_serial = ? AND hp_first_session IS NOT NULL",
        (pen_serial,),
    )
    from_counter = from_ts(hp[0]) if hp else None
    known = [t for t in (from_log, from_counter) if t is not None]
    return min(known) if known else None
