"""Copying a pen's usage log into the store: resumable and idempotent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scalppen import store as S
from scalppen.client import Pen
from scalppen.policy.clock import ClockFinding, clock_findings
from scalppen.results import LogGap, SyncProgress

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
    rotated out before they were read) are stored and reported.
    """
    last = S.last_synced_seq(db, serial)
    start = 1 if last is None else last + 1
    summary = SyncSummary(from_seq=start)
    first_page = [last is None]

    seen: list[Any] = []

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

    result = await pen.sync_log(start, progress=progress, on_page=on_page)
    summary.last_seq = result.last_seq
    summary.clock_findings = clock_findings(seen)
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
