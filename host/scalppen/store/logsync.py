"""Pen log sync: idempotent ingest, gap tracking, and sessions derived from the log.

Reading the same records twice stores them once (``ON CONFLICT DO NOTHING`` on pen and
seq). A hole in the sequence numbers is reported by the ingest that finds it and
remembered in ``log_gaps`` until records fill it; it is never hidden. Sessions are
derived from SESSION_START / SESSION_END records (SESSION_END: ``a`` = duration in
ms, ``b`` = strokes); a BOOT or a new START before the END closes a session as
incomplete. A session the power cut is one session: the pen logs BOOT and then the
SESSION_END it closed at boot (flagged interrupted, with the elapsed ms and strokes
it had saved), and that END completes the session its START opened.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from scalppen.store.db import Store, from_ts, to_ts, utcnow
from scalppen.store.dialect import Row
from scalppen.store.errors import StoreError
from scalppen.store.pens import ensure_pen
from scalppen.store.rows import LogRecord, StoredLogRecord, SyncResult
from scalppen_protocol.codes import RecordKind

_FIELDS: Final = ("seq", "time", "kind", "flags", "code", "depth_um", "a", "b")
_LIMITS: Final = {
    "seq": 0xFFFFFFFF,
    "time": 0xFFFFFFFF,
    "kind": 0xFF,
    "flags": 0xFF,
    "code": 0xFFFF,
    "depth_um": 0xFFFF,
    "a": 0xFFFFFFFF,
    "b": 0xFFFFFFFF,
}
#: A permit names the session's profile if issued at most this long before its start.
PERMIT_MATCH_S: Final = 3600
_SESSION_KINDS: Final = (RecordKind.SESSION_START, RecordKind.SESSION_END, RecordKind.BOOT)
#: SESSION_END flags: closed at boot after a reset (firmware/pen/core.py FLAG_INTERRUPTED).
END_INTERRUPTED: Final = 1

#: A pen's sync state, made once.
_NEW_SYNC_STATE = "INSERT INTO sync_state (pen_serial) VALUES (?) ON CONFLICT DO NOTHING"


def as_log_record(record: Mapping[str, Any] | LogRecord) -> LogRecord:
    """Accept a decoded ``LogRecord`` container (a mapping) or a :class:`LogRecord`.

    Raises:
        StoreError: a field is missing or out of its wire range.
    """
    if isinstance(record, LogRecord):
        values = {f: getattr(record, f) for f in _FIELDS}
    else:
        try:
            values = {f: record[f] for f in _FIELDS}
        except KeyError as exc:
            raise StoreError(f"log record without field {exc.args[0]!r}") from None
    for name, value in values.items():
        if not isinstance(value, int) or not 0 <= value <= _LIMITS[name]:
            raise StoreError(f"log record field {name}={value!r} is out of range")
    return LogRecord(**values)


def log_epoch(db: Store, pen_serial: str) -> int:
    """The pen's current log epoch: 0 for its first log, one more each time its log
    restarted (seqs from 1 again: another log, see :func:`start_log_epoch`)."""
    row = db.query_one("SELECT log_epoch FROM sync_state WHERE pen_serial = ?", (pen_serial,))
    return 0 if row is None or row[0] is None else int(row[0])


def start_log_epoch(db: Store, pen_serial: str) -> int:
    """The pen's log restarted: what comes next is stored as a new epoch, from seq 1,
    beside (never over) the records of the log before. Returns the new epoch."""
    with db.transaction():
        ensure_pen(db, pen_serial)
        db.execute(_NEW_SYNC_STATE, (pen_serial,))
        db.execute(
            "UPDATE sync_state SET log_epoch = log_epoch + 1, derived_seq = -1,"
            " expected_first_seq = NULL WHERE pen_serial = ?",
            (pen_serial,),
        )
    return log_epoch(db, pen_serial)


def last_synced_seq(db: Store, pen_serial: str) -> int | None:
    """The highest seq stored for the pen's current log (resume reading after it), or None."""
    row = db.query_one(
        "SELECT MAX(seq) FROM log_records WHERE pen_serial = ? AND log_epoch = ?",
        (pen_serial, log_epoch(db, pen_serial)),
    )
    return None if row is None or row[0] is None else int(row[0])


def stored_record(db: Store, pen_serial: str, seq: int) -> LogRecord | None:
    """The record stored at ``seq`` of the pen's current log, or None."""
    row = db.query_one(
        f"SELECT {', '.join(_FIELDS)} FROM log_records WHERE pen_serial = ? AND log_epoch = ?"
        " AND seq = ?",
        (pen_serial, log_epoch(db, pen_serial), seq),
    )
    return None if row is None else LogRecord(**{f: row[f] for f in _FIELDS})


def last_log_id(db: Store, pen_serial: str) -> int:
    """The log id (BOOT ``a``) of the pen's current log as last stored; 0 if unknown."""
    row = db.query_one(
        "SELECT a FROM log_records WHERE pen_serial = ? AND log_epoch = ? AND kind = ?"
        " AND a != 0 ORDER BY seq DESC LIMIT 1",
        (pen_serial, log_epoch(db, pen_serial), int(RecordKind.BOOT)),
    )
    return 0 if row is None else int(row[0])


def list_gaps(db: Store, pen_serial: str) -> list[tuple[int, int]]:
    """Every missing seq range (inclusive) still open in the pen's current log, lowest first."""
    rows = db.query(
        "SELECT first_seq, last_seq FROM log_gaps WHERE pen_serial = ? AND log_epoch = ?"
        " ORDER BY first_seq",
        (pen_serial, log_epoch(db, pen_serial)),
    )
    return [(int(r[0]), int(r[1])) for r in rows]


def _stored(row: Row) -> StoredLogRecord:
    return StoredLogRecord(
        pen_serial=row["pen_serial"],
        seq=row["seq"],
        log_epoch=row["log_epoch"],
        time=from_ts(row["time"]),
        kind=row["kind"],
        flags=row["flags"],
        code=row["code"],
        depth_um=row["depth_um"],
        a=row["a"],
        b=row["b"],
    )


def list_log_records(
    db: Store,
    pen_serial: str | None = None,
    *,
    since_seq: int | None = None,
    kinds: Sequence[int] | None = None,
    limit: int | None = None,
) -> list[StoredLogRecord]:
    """Stored log records, by pen, log epoch, then seq."""
    where: list[str] = []
    params: list[Any] = []
    if pen_serial is not None:
        where.append("pen_serial = ?")
        params.append(pen_serial)
    if since_seq is not None:
        where.append("seq >= ?")
        params.append(since_seq)
    if kinds is not None:
        where.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params.extend(int(k) for k in kinds)
    sql = "SELECT * FROM log_records"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY pen_serial, log_epoch, seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_stored(r) for r in db.query(sql, params)]


def ingest_log_records(
    db: Store,
    pen_serial: str,
    records: Iterable[Mapping[str, Any] | LogRecord],
    *,
    from_seq: int | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Store log records read from a pen, once each, and derive its sessions.

    Args:
        db: the store.
        pen_serial: the pen the records come from.
        records: decoded records (``LogRecord`` mappings or :class:`LogRecord`).
        from_seq: the seq the host asked to read from; records missing between it and
            the first record are a gap (pass it on the first sync to catch a log that
            already lost old records).
        now: when the sync happens (for the gap log).

    Returns:
        New and duplicate counts, gaps found, conflicting seqs, sessions derived.

    Raises:
        StoreError: a malformed record.
    """
    recs = [as_log_record(r) for r in records]
    now_ts = to_ts(now or utcnow())
    with db.transaction():
        ensure_pen(db, pen_serial)
        db.hold("pens", "serial", pen_serial)  # two laptops syncing one pen: one at a time
        ep = log_epoch(db, pen_serial)
        existing: dict[int, LogRecord] = {}
        if recs:
            lo, hi = min(r.seq for r in recs), max(r.seq for r in recs)
            for row in db.query(
                f"SELECT {', '.join(_FIELDS)} FROM log_records"
                " WHERE pen_serial = ? AND log_epoch = ? AND seq BETWEEN ? AND ?",
                (pen_serial, ep, lo, hi),
            ):
                existing[row["seq"]] = LogRecord(**{f: row[f] for f in _FIELDS})
        fresh: dict[int, LogRecord] = {}
        duplicates = 0
        conflicts: list[int] = []
        for rec in recs:
            known = existing.get(rec.seq) or fresh.get(rec.seq)
            if known is None:
                fresh[rec.seq] = rec
            elif known == rec:
                duplicates += 1
            else:
                conflicts.append(rec.seq)
        # new ones only: the pen's row lock (hold) keeps another laptop from storing
        # the same seqs meanwhile, and `existing` holds what was stored before
        db.insert_many(
            "log_records",
            ("pen_serial", "log_epoch", "seq", "time", "kind", "flags", "code", "depth_um",
             "a", "b", "synced_at"),
            [
                (pen_serial, ep, r.seq, r.time, r.kind, r.flags, r.code, r.depth_um, r.a, r.b,
                 now_ts)
                for r in fresh.values()
            ],
        )
        gaps = _update_gaps(db, pen_serial, ep, sorted(fresh), from_seq, now_ts)
        derived = derive_sessions(db, pen_serial, rewind_below=min(fresh, default=None))
    return SyncResult(
        new=len(fresh),
        duplicates=duplicates,
        gaps=gaps,
        conflicts=conflicts,
        sessions=derived,
    )


def _update_gaps(
    db: Store, pen: str, ep: int, new_seqs: list[int], from_seq: int | None, now_ts: int
) -> list[tuple[int, int]]:
    """Recompute the missing ranges around the new records; return the newly found ones.

    Internal gaps lie between stored records; a leading gap lies between the lowest
    seq the host ever asked for and the lowest stored record.
    """
    db.execute(_NEW_SYNC_STATE, (pen,))
    if from_seq is not None:
        db.execute(
            "UPDATE sync_state SET expected_first_seq = CASE WHEN expected_first_seq < ?"
            " THEN expected_first_seq ELSE ? END WHERE pen_serial = ?",
            (from_seq, from_seq, pen),
        )
    if not new_seqs and from_seq is None:
        return []
    bounds = db.query_one(
        "SELECT MIN(seq) FROM log_records WHERE pen_serial = ? AND log_epoch = ?", (pen, ep)
    )
    if bounds is None or bounds[0] is None:
        return []
    min_seq = int(bounds[0])
    before = {
        (int(r["first_seq"]), int(r["last_seq"])): int(r["detected_at"])
        for r in db.query(
            "SELECT * FROM log_gaps WHERE pen_serial = ? AND log_epoch = ?", (pen, ep)
        )
    }
    low = new_seqs[0] if new_seqs else min_seq
    anchor = db.query_one(
        "SELECT MAX(seq) FROM log_records WHERE pen_serial = ? AND log_epoch = ? AND seq < ?",
        (pen, ep, low),
    )
    lo = int(anchor[0]) if anchor is not None and anchor[0] is not None else min_seq
    found = [
        (int(r[0]), int(r[1]))
        for r in db.query(
            "SELECT prev + 1, seq - 1 FROM (SELECT seq, LAG(seq) OVER (ORDER BY seq) AS prev"
            " FROM log_records WHERE pen_serial = ? AND log_epoch = ? AND seq >= ?) AS steps"
            " WHERE prev IS NOT NULL AND seq - prev > 1",
            (pen, ep, lo),
        )
    ]
    expected = db.query_one(
        "SELECT expected_first_seq FROM sync_state WHERE pen_serial = ?", (pen,)
    )
    if expected is not None and expected[0] is not None and int(expected[0]) < min_seq:
        found.insert(0, (int(expected[0]), min_seq - 1))
    db.execute(
        "DELETE FROM log_gaps WHERE pen_serial = ? AND log_epoch = ?"
        " AND (first_seq > ? OR first_seq < ?)",
        (pen, ep, lo, min_seq),
    )
    db.executemany(
        "INSERT INTO log_gaps (pen_serial, log_epoch, first_seq, last_seq, detected_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pen_serial, log_epoch, first_seq) DO UPDATE"
        " SET last_seq = excluded.last_seq, detected_at = excluded.detected_at",
        [(pen, ep, a, b, before.get((a, b), now_ts)) for a, b in found],
    )
    return [g for g in found if g not in before]


class _Owners:
    """Whose each new session is: the patient of the permit issued on the pen just
    before it started (within PERMIT_MATCH_S), else the pen's owner. The pen's
    permits from the first record on are read once per derivation, not per session
    (a server may be far away)."""

    def __init__(self, db: Store, pen: str, since: int | None) -> None:
        self._permits: list[tuple[int, int | None]] = []
        if since is not None:
            self._permits = [
                (int(r[0]), None if r[1] is None else int(r[1]))
                for r in db.query(
                    "SELECT issued_at, profile_id FROM permits WHERE pen_serial = ?"
                    " AND issued_at >= ? ORDER BY issued_at, id",
                    (pen, since - PERMIT_MATCH_S),
                )
            ]
        self._times = [t for t, _ in self._permits]
        owner = db.query_one("SELECT owner_profile_id FROM pens WHERE serial = ?", (pen,))
        self._owner = None if owner is None or owner[0] is None else int(owner[0])

    def of(self, started_ts: int | None) -> int | None:
        if started_ts is not None:
            i = bisect.bisect_right(self._times, started_ts) - 1
            if i >= 0 and self._times[i] >= started_ts - PERMIT_MATCH_S:
                profile = self._permits[i][1]
                if profile is not None:
                    return profile
        return self._owner


#: The columns a derivation writes.
_SESSION_COLS: Final = ("started_at", "ended_at", "depth_um", "duration_s", "strokes",
                        "complete", "start_seq", "end_seq")


class _Known:
    """The pen's sessions a derivation may meet again, by START and END seq: read once
    (every one that has a START or END past the cursor), kept current as it writes."""

    def __init__(self, db: Store, pen: str, ep: int, cursor: int) -> None:
        self.by_start: dict[int, dict[str, Any]] = {}
        self.by_end: dict[int, dict[str, Any]] = {}
        #: new sessions, written together when the derivation ends (``flush``)
        self.new: list[dict[str, Any]] = []
        for r in db.query(
            "SELECT * FROM sessions WHERE pen_serial = ? AND log_epoch = ?"
            " AND (start_seq > ? OR end_seq > ?)",
            (pen, ep, cursor, cursor),
        ):
            names = r.keys()
            self.add({k: r[k] for k in names})

    def add(self, row: dict[str, Any]) -> None:
        if row["start_seq"] is not None:
            self.by_start[row["start_seq"]] = row
        if row["end_seq"] is not None:
            self.by_end[row["end_seq"]] = row

    def drop(self, row: dict[str, Any]) -> None:
        if self.by_start.get(row["start_seq"]) is row:
            del self.by_start[row["start_seq"]]
        if self.by_end.get(row["end_seq"]) is row:
            del self.by_end[row["end_seq"]]

    def flush(self, db: Store, pen: str, ep: int) -> None:
        """Write the new sessions, in one batch (one round trip on a server)."""
        rows = [r for r in self.new if r.get("id") is None and not r.get("dropped")]
        db.insert_many("sessions", ("pen_serial", "log_epoch", "profile_id", *_SESSION_COLS),
                       [(pen, ep, r["profile_id"], *(r[c] for c in _SESSION_COLS))
                        for r in rows])
        self.new.clear()


def _save_session(db: Store, pen: str, ep: int, values: dict[str, Any], owners: _Owners,
                  known: _Known) -> bool:
    """Insert or update the session named by its START or END seq in log epoch ``ep``.
    True if it changed."""
    by_start = known.by_start.get(values["start_seq"]) if values["start_seq"] is not None \
        else None
    by_end = known.by_end.get(values["end_seq"]) if values["end_seq"] is not None else None
    if by_start is not None and by_end is not None and by_start is not by_end:
        if by_end.get("id") is not None:
            db.execute("DELETE FROM sessions WHERE id = ?", (by_end["id"],))
        by_end["dropped"] = True
        known.drop(by_end)
        by_end = None
    row = by_start or by_end
    cols = _SESSION_COLS
    if row is None:
        row = {"id": None, "profile_id": owners.of(values["started_at"]),
               **{c: values[c] for c in cols}}
        known.add(row)
        known.new.append(row)
        return True
    if all(row[c] == values[c] for c in cols):
        return False
    if row.get("id") is not None:  # a new one is written as it ends up
        db.execute(
            f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
            (*(values[c] for c in cols), row["id"]),
        )
    known.drop(row)
    row.update({c: values[c] for c in cols})
    known.add(row)
    return True


def _clock_floor(
    db: Store, pen: str, ep: int, start: Row | None, end: Row
) -> int:
    """The latest time the pen's clock showed between a session's START and END: its
    records' times and, for a clock that was set (TIME_SET), the time it showed before.
    A clock moved back mid-session cannot make the session end earlier than that."""
    lo = start["seq"] if start is not None else end["seq"]
    if end["seq"] - lo <= 1:  # nothing between the two: their own times say it
        return max(int(start["time"] or 0) if start is not None else 0, int(end["time"] or 0))
    row = db.query_one(
        "SELECT MAX(time), MAX(CASE WHEN kind = ? THEN b ELSE 0 END) FROM log_records"
        " WHERE pen_serial = ? AND log_epoch = ? AND seq BETWEEN ? AND ?",
        (int(RecordKind.TIME_SET), pen, ep, lo, end["seq"]),
    )
    if row is None:
        return 0
    return max(int(row[0] or 0), int(row[1] or 0))


def _complete(start: Row | None, end: Row, floor: int = 0) -> dict[str, Any]:
    duration_s = end["a"] / 1000.0
    ended = end["time"] or None
    if ended is not None and floor > ended:
        ended = floor  # the pen's clock went back during the session (rule 6)
    if start is not None and start["time"]:
        started: int | None = start["time"]
    elif ended is not None:
        started = ended - round(duration_s)
    else:
        started = None
    depth = end["depth_um"] or (start["depth_um"] if start is not None else 0)
    return {
        "started_at": started,
        "ended_at": ended,
        "depth_um": depth,
        "duration_s": duration_s,
        "strokes": end["b"],
        "complete": 1,
        "start_seq": start["seq"] if start is not None else None,
        "end_seq": end["seq"],
    }


def _interrupted(
    db: Store, pen: str, ep: int, start: Row, boot: Row, end: Row
) -> dict[str, Any]:
    """A session a reset cut, closed by the SESSION_END the pen wrote at its next boot.

    That END's time is the boot's, not the cut's: the session ran ``a`` ms from its
    START, and it lasted at least until the last record the pen wrote before the cut."""
    values = _complete(start, end)
    started = start["time"] or None
    row = db.query_one(
        "SELECT MAX(time) FROM log_records WHERE pen_serial = ? AND log_epoch = ?"
        " AND seq > ? AND seq < ?",
        (pen, ep, start["seq"], boot["seq"]),
    )
    last_seen = int(row[0]) if row is not None and row[0] else 0
    if started is not None:
        ended = max(started + round(values["duration_s"]), last_seen)
        if end["time"] and end["time"] >= started:
            ended = min(ended, end["time"])  # never after the boot that closed it
        values["ended_at"] = ended
    return values


def _incomplete(start: Row, next_time: int) -> dict[str, Any]:
    started = start["time"] or None
    ended = next_time or None
    if started is not None and ended is not None and ended < started:
        ended = None
    return {
        "started_at": started,
        "ended_at": ended,
        "depth_um": start["depth_um"],
        "duration_s": float(ended - started) if started and ended else 0.0,
        "strokes": 0,
        "complete": 0,
        "start_seq": start["seq"],
        "end_seq": None,
    }


def _closed_at_boot(rec: Row) -> bool:
    return rec["kind"] == RecordKind.SESSION_END and bool(rec["flags"] & END_INTERRUPTED)


def derive_sessions(db: Store, pen_serial: str, *, rewind_below: int | None = None) -> int:
    """Turn the pen's session records not yet processed into sessions.

    Args:
        db: the store.
        pen_serial: the pen.
        rewind_below: a seq just stored; if the derivation already passed it (a gap was
            filled), derivation restarts from the last session end before it.

    Returns:
        How many sessions were added or changed.
    """
    with db.transaction():
        db.execute(_NEW_SYNC_STATE, (pen_serial,))
        state = db.query_one(
            "SELECT derived_seq, log_epoch FROM sync_state WHERE pen_serial = ?", (pen_serial,)
        )
        cursor = int(state[0]) if state is not None else -1
        ep = int(state[1]) if state is not None else 0
        if rewind_below is not None and rewind_below <= cursor:
            row = db.query_one(
                "SELECT MAX(seq) FROM log_records WHERE pen_serial = ? AND log_epoch = ?"
                " AND kind = ? AND seq < ?",
                (pen_serial, ep, int(RecordKind.SESSION_END), rewind_below),
            )
            cursor = int(row[0]) if row is not None and row[0] is not None else -1
        kinds = ", ".join(str(int(k)) for k in _SESSION_KINDS)
        rows = db.query(
            f"SELECT seq, time, kind, flags, depth_um, a, b FROM log_records WHERE pen_serial = ?"
            f" AND log_epoch = ? AND seq > ? AND kind IN ({kinds}) ORDER BY seq",
            (pen_serial, ep, cursor),
        )
        changed = 0
        # a session's start may be reckoned back from its end: a day's margin
        first = min((int(r["time"]) for r in rows if r["time"]), default=None)
        owners = _Owners(db, pen_serial, None if first is None else first - 86400)
        known = _Known(db, pen_serial, ep, cursor)
        pending: Row | None = None
        boot: Row | None = None  # a reset while ``pending`` was open
        for i, rec in enumerate(rows):
            kind = rec["kind"]
            if kind == RecordKind.SESSION_END:
                if pending is not None and boot is not None:
                    values = _interrupted(db, pen_serial, ep, pending, boot, rec)
                else:
                    floor = _clock_floor(db, pen_serial, ep, pending, rec)
                    values = _complete(pending, rec, floor)
                changed += _save_session(db, pen_serial, ep, values, owners, known)
                pending = boot = None
                continue
            if pending is not None:
                after = rows[i + 1] if i + 1 < len(rows) else None
                if kind == RecordKind.BOOT and boot is None and (
                    after is None or _closed_at_boot(after)
                ):
                    # The END closing it at this boot follows (or is not read yet):
                    # until it comes, the session stands as incomplete.
                    boot = rec
                    if after is None:
                        values = _incomplete(pending, rec["time"])
                        changed += _save_session(db, pen_serial, ep, values, owners, known)
                    continue
                changed += _save_session(
                    db, pen_serial, ep, _incomplete(pending, (boot or rec)["time"]), owners,
                    known,
                )
            pending = rec if kind == RecordKind.SESSION_START else None
            boot = None
        known.flush(db, pen_serial, ep)
        last = last_synced_seq(db, pen_serial)
        new_cursor = (
            pending["seq"] - 1 if pending is not None else (last if last is not None else -1)
        )
        db.execute(
            "UPDATE sync_state SET derived_seq = ? WHERE pen_serial = ?", (new_cursor, pen_serial)
        )
    return changed


def sessions_from_seq(db: Store, pen_serial: str, from_seq: int) -> list[int]:
    """Ids of the sessions of the pen's current log whose START or END is at ``from_seq``
    or later (what a sync from there stored), in log order."""
    rows = db.query(
        "SELECT id FROM sessions WHERE pen_serial = ? AND log_epoch = ?"
        " AND (COALESCE(start_seq, 0) >= ? OR COALESCE(end_seq, 0) >= ?)"
        " ORDER BY COALESCE(start_seq, end_seq)",
        (pen_serial, log_epoch(db, pen_serial), from_seq, from_seq),
    )
    return [int(r[0]) for r in rows]


def session_time(value: int | None) -> datetime | None:
    """A session time column as a datetime (None if unknown)."""
    return from_ts(value)
