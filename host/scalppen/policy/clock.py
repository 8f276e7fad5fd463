"""What a pen's log says about its clock: jumps and sessions that end before they start.

Rule 6 rests on the times in the log. The pen refuses a SET_TIME without the permit
key and counts the interval on its own running time, and the store takes a session's
end as the latest time the pen showed during it (``store.logsync``); this module
names what was found, so the user and the report see it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol

from scalppen.policy.rules import format_duration
from scalppen_protocol.codes import RecordKind

#: A clock moved by more than this is reported (NTP corrections are far smaller).
CLOCK_JUMP_S: Final = 900


class _Record(Protocol):
    seq: int
    kind: int
    a: int
    b: int

    @property
    def time(self) -> object: ...


@dataclass(frozen=True)
class ClockFinding:
    """One thing the log shows about the pen's clock."""

    seq: int
    text: str


def _seconds(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int(value.timestamp())  # type: ignore[attr-defined]  # a datetime


def clock_findings(records: Iterable[_Record]) -> list[ClockFinding]:
    """Clock jumps above CLOCK_JUMP_S and sessions whose end is stamped before their
    start, in seq order. ``records``: wire or stored log records."""
    found: list[ClockFinding] = []
    start: _Record | None = None
    for rec in sorted(records, key=lambda r: r.seq):
        kind = rec.kind
        if kind == RecordKind.TIME_SET and rec.b and abs(rec.a - rec.b) > CLOCK_JUMP_S:
            way = "back" if rec.a < rec.b else "forward"
            by = format_duration(timedelta(seconds=abs(rec.a - rec.b)))
            found.append(ClockFinding(rec.seq, f"the pen's clock was moved {way} by {by} "
                                               f"(record {rec.seq})"))
        if kind == RecordKind.SESSION_START:
            start = rec
        elif kind == RecordKind.SESSION_END:
            began, ended = _seconds(start.time) if start else 0, _seconds(rec.time)
            if began and ended and ended < began:
                found.append(ClockFinding(
                    rec.seq, f"the session ending at record {rec.seq} is stamped before it "
                    "began: the pen's clock was moved; rule 6 counts from the latest time "
                    "the pen showed during it"))
            start = None
        elif kind == RecordKind.BOOT:
            start = None
    return found
