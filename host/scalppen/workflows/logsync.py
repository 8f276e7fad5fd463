"""Copying a pen's usage log into the store: resumable and idempotent.

A pen whose log restarted (its seqs begin at 1 again: a new log, whose BOOT records
carry another log id) is recognised before reading: its log ends before what is
stored, or its record at the last stored seq is not the stored one, or (that record
rotated out) its BOOT records name another log id. Its log is then read from its
start as a new log epoch, beside the old one. A sync that could not store all the
pen holds raises :class:`LogNotStored`; it never reports success having stored less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scalppen import store as S
from scalppen.client import Pen
from scalppen.policy.clock import ClockFinding, clock_findings
from scalppen.results import LogGap, LogRecord, SyncProgress
from scalppen_protocol.codes import RecordKind

_FIELDS = ("seq", "time", "kind", "flags", "code", "depth_um", "a", "b")


@dataclass
class SyncSummary:
    """What one sync stored."""

    from_seq: int
    new: int = 0
    duplicates: int = 0
    sessions: int = 0
    last_seq: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    acknowledged: int = 0  # the pen was told its log is stored here up to this seq
    clock_findings: list[ClockFinding] = field(default_factory=list)
    restarted: str = ""  # why the pen's log was taken for a new one ("" = the same log)
    log_epoch: int = 0  # the store's epoch of the pen's log
    session_ids: list[int] = field(default_factory=list)  # sessions this sync stored


class LogNotStored(Exception):
    """The pen holds records (a session, maybe) that this sync could not store."""

    hint = "nothing was acknowledged to the pen: it keeps them; run `scalppen logs sync` again"


async def log_restarted(pen: Pen, db: S.Store, serial: str) -> str:
    """Why the pen's log is not the one stored for ``serial`` ("" if it is)."""
    last = S.last_synced_seq(db, serial)
    if last is None:
        return ""
    page = await pen.read_log(last, 1)
    if page.last_seq < last:
        return f"the pen's log ends at {page.last_seq}, before {last}: it restarted"
    theirs = next((r for r in page.records if r.seq == last), None)
    if theirs is not None:
        mine = S.stored_record(db, serial, last)
        if mine is not None and tuple(getattr(mine, f) for f in _FIELDS) != tuple(
            int(getattr(theirs, f)) for f in _FIELDS
        ):
            return f"the pen's record {last} is not the one stored: another log"
        return ""
    known = S.last_log_id(db, serial)  # record ``last`` rotated out: compare log ids
    if not known:
        return ""
    oldest = await pen.read_log(page.first_seq)
    boot = _first_log_id(oldest.records)
    if boot and boot != known:
        return f"the pen's log id is {boot:08x}, not {known:08x}: another log"
    return ""


def _first_log_id(records: Sequence[LogRecord]) -> int:
    return next((int(r.a) for r in records if r.kind == RecordKind.BOOT and r.a), 0)


async def sync_log(
    pen: Pen,
    db: S.Store,
    serial: str,
    *,
    now: datetime | None = None,
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncSummary:
    """Read the pen's log from the last stored record on and store it.

    Every page is stored as soon as it arrives, so a dropped link loses nothing:
    the next sync resumes after the last stored record. Gaps (records the pen
    rotated out before they were read) are stored and reported. A log that restarted
    is stored from its start as a new epoch (:func:`log_restarted`).

    Raises:
        LogNotStored: the pen holds records this sync did not store (nothing was
            acknowledged to the pen).
    """
    restarted = await log_restarted(pen, db, serial)
    if restarted:
        S.start_log_epoch(db, serial)
    last = S.last_synced_seq(db, serial)
    start = 1 if last is None else last + 1
    summary = SyncSummary(from_seq=start, restarted=restarted, log_epoch=S.log_epoch(db, serial))
    first_page = [last is None]

    seen: list[Any] = []
    conflicts: list[int] = []

    def on_page(records: Sequence[Any], gaps: Sequence[LogGap]) -> None:
        seen.extend(records)
        rows = [{f: getattr(r, f) for f in _FIELDS} for r in records]
        result = S.ingest_log_records(
            db, serial, rows, from_seq=start if first_page[0] else None, now=now
        )
        first_page[0] = False
        summary.new += result.new
        summary.duplicates += result.duplicates
        summary.sessions += result.sessions
        summary.gaps.extend(result.gaps)
        conflicts.extend(result.conflicts)

    result = await pen.sync_log(start, progress=progress, on_page=on_page)
    summary.last_seq = result.last_seq
    summary.clock_findings = clock_findings(seen)
    summary.session_ids = S.sessions_from_seq(db, serial, start)
    stored = S.last_synced_seq(db, serial) or 0
    if conflicts:
        raise LogNotStored(
            f"the pen's records {conflicts[0]}..{conflicts[-1]} differ from those stored "
            f"for {serial}: not stored"
        )
    if stored != result.last_seq:
        raise LogNotStored(
            f"the pen's log reaches {result.last_seq}, the store holds {serial}'s up to "
            f"{stored}: records not stored"
        )
    await _acknowledge(pen, db, serial, summary)
    return summary


async def _acknowledge(pen: Pen, db: S.Store, serial: str, summary: SyncSummary) -> None:
    """Tell the pen what is stored here (LOG_ACK), so it may reuse that space: never
    more than the store holds. Without the permit key (a pen paired elsewhere) the
    pen keeps everything; it refuses new sessions before it would lose a record."""
    stored = S.last_synced_seq(db, serial)
    key = S.get_permit_key(db, serial)
    if stored is None or key is None:
        return
    await pen.log_ack(stored, key)
    summary.acknowledged = stored
