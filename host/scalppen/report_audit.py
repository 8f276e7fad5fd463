"""The report's clinic audit: the permits issued and where from, and the report
narrowed to one room or one user.

A session carries no room of its own: it belongs to the permit that armed its pen
(issued on that pen from its issue to its expiry, give or take the clocks' skew),
and so to the room and user that issued it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from scalppen.store.history import CLOCK_SKEW_S

if TYPE_CHECKING:
    from scalppen.report import ReportData
    from scalppen.store.rows import IssuedPermit, Session


def permit_of(session: Session, permits: list[IssuedPermit]) -> IssuedPermit | None:
    """The permit that armed the pen for ``session`` (None: not issued from this database)."""
    start = session.started_at or session.ended_at
    if start is None:
        return None
    skew = timedelta(seconds=CLOCK_SKEW_S)
    found = [p for p in permits if p.pen_serial == session.pen_serial
             and p.issued_at - skew <= start <= p.expires_at + skew]
    return max(found, key=lambda p: p.issued_at) if found else None


def stamped(rows: Sequence[Any]) -> bool:
    """True when any row says where and by whom it was made (a column worth showing)."""
    return any(r.made_on or r.made_by for r in rows)


def made_by(row: Any) -> str:
    """"Room 2, dr.lee"."""
    return ", ".join(x for x in (row.made_on, row.made_by) if x)


def narrowed(data: ReportData, *, room: str | None, user: str | None) -> ReportData:
    """Only what was made in ``room`` and by ``user`` (either may be None: any)."""
    if room is None and user is None:
        return data

    def ours(row: Any, on: str = "made_on", by: str = "made_by") -> bool:
        return ((room is None or getattr(row, on).casefold() == room.casefold())
                and (user is None or getattr(row, by).casefold() == user.casefold()))

    permits = [p for p in data.permits if ours(p)]
    sessions = [s for s in data.sessions if (p := permit_of(s, data.permits)) and ours(p)]
    scope = " and ".join(x for x in (f"room {room}" if room else "",
                                      f"user {user}" if user else "") if x)
    return replace(
        data,
        title=f"{data.title} ({scope})",
        permits=permits,
        sessions=sessions,
        clearances=[c for c in data.clearances if ours(c)],
        clearance_attempts=[a for a in data.clearance_attempts if ours(a)],
        adverse=[a for a in data.adverse if ours(a)],
        screenings=[s for s in data.screenings if ours(s)],
    )


def permits_html(data: ReportData) -> str:
    """The permits issued: when, for which pen and patient, up to what, from where."""
    from scalppen.report import _table, _when

    names = {p.id: p.name for p in data.profiles}
    return _table(
        "Permits issued: where from and by whom (clinic audit)",
        ["issued", "pen", "profile", "depth (mm)", "minutes", "room", "user"],
        [
            (
                _when(p.issued_at),
                p.pen_serial,
                names.get(p.profile_id, "") if p.profile_id is not None else "",
                f"{p.max_depth_um / 1000:.2f}",
                f"{p.max_duration_s / 60:.0f}",
                p.made_on,
                p.made_by,
            )
            for p in data.permits
        ],
        css="permits",
        empty="None issued from this database.",
    )
