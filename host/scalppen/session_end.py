"""How a stored session ended, in words, from the pen's own SESSION_END record."""

from __future__ import annotations

from scalppen.refusals import describe
from scalppen.store import Session, Store
from scalppen.store.logsync import END_INTERRUPTED, stored_record
from scalppen_protocol.codes import RecordKind


def end_reason(db: Store, session: Session) -> str:
    """How ``session`` ended: the pen's reason (a fault, the cap, a worn cartridge, a
    pause not resumed), a power cut, or the permitted time or a STOP."""
    if session.end_seq is None:
        return "ended" if session.complete else "open or cut short (no end record)"
    rec = stored_record(db, session.pen_serial, session.end_seq)
    if rec is None or rec.kind != RecordKind.SESSION_END:
        return "ended"
    if rec.flags & END_INTERRUPTED:
        return "closed after a reset (power cut)"
    return describe(rec.code) if rec.code else "permitted time reached or stopped"
