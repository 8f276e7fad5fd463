"""Log sync under link loss: the pen's log, the host's copy, and a link that is cut
at one chosen message boundary.

A sync is a run of messages: LOG_READ requests the host writes and LOG_PAGE
answers it receives (over BLE, fragment by fragment). A :class:`Cutter` numbers
them as they are delivered (:class:`Event`) and severs the link at one
:class:`Cut`: just *before* an event (it is never delivered) or just *after* it
(it is, nothing later is). The transports here (:class:`CuttableLoopback`,
:class:`CuttableBle`) put a cutter between the host's client and the link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scalppen import store as S
from scalppen.transports.base import LinkLost
from scalppen.transports.ble import BleTransport
from scalppen.transports.loopback import LoopbackTransport
from scalppen_protocol.codec import decode_frame
from scalppen_protocol.codes import MsgType, RecordKind
from tests.e2e.vpen_fixtures import wait_until

#: The fields of a log record, in wire order.
FIELDS = ("seq", "time", "kind", "flags", "code", "depth_um", "a", "b")
#: A log record as a tuple of :data:`FIELDS`.
Row = tuple[int, ...]
#: The FIRST bit of a fragment's control byte (PROTOCOL.md, fragmentation).
FIRST = 0x80

# -- the pen's log and the host's copy ---------------------------------------------------

_SESSION = (
    (RecordKind.CARTRIDGE_IN, 0, 0),
    (RecordKind.ARMED, 500, 600),
    (RecordKind.SESSION_START, 500, 600),
    (RecordKind.SESSION_WARN, 500, 600_000),
    (RecordKind.SESSION_END, 500, 660_000),
    (RecordKind.CARTRIDGE_OUT, 0, 0),
)


def fill_log(store: Any, n: int, t0: int) -> int:
    """Append ``n`` records of ordinary sessions through the firmware's ``Store``.

    Every field varies from record to record (time, flags, code, depth, a, b), so a
    record stored with the wrong values or under the wrong seq shows. Returns the
    pen's newest seq.
    """
    last = 0
    for i in range(n):
        kind, depth, a = _SESSION[i % len(_SESSION)]
        day = i // len(_SESSION)
        last = store.append(int(kind), t0 + day * 86_400 * 3 + i * 7, (i * 37) & 0xFFFF,
                            depth + (day % 3) * 250 if depth else 0, a + i,
                            (i * 7919) & 0xFFFFFFFF, i & 0x0F)
    store.commit()
    return last


def pen_rows(store: Any) -> list[Row]:
    """Every record the pen's firmware store holds, oldest first."""
    from pen.store import unpack_record  # the firmware module in use

    rows: list[Row] = []
    while True:
        _first, _last, recs = store.read(rows[-1][0] + 1 if rows else 1, 160)
        if not recs:
            return rows
        rows += [tuple(unpack_record(r)[f] for f in FIELDS) for r in recs]


def host_rows(db: S.Store, serial: str) -> list[Row]:
    """Every record the host stored for ``serial``, by seq, as the pen sent them."""
    rows = db.query(f"SELECT {', '.join(FIELDS)} FROM log_records WHERE pen_serial = ?"
                    " ORDER BY seq", (serial,))
    return [tuple(int(r[f]) for f in FIELDS) for r in rows]


def log_reads(frames: list[bytes]) -> list[int]:
    """The ``from_seq`` of every LOG_READ among ``frames`` (requests the host sent)."""
    decoded = [decode_frame(f) for f in frames]
    return [int(f.fields["from_seq"]) for f in decoded if f.msg_type == MsgType.LOG_READ]


# -- message boundaries -------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One message of a sync as it reaches the other side.

    ``kind``: ``"req"`` a request the host wrote (``index`` counts requests),
    ``"resp"`` a whole response frame (``index`` counts response frames),
    ``"frag"`` one notification fragment (``index``: its response frame,
    ``frag``: its index within that frame).
    """

    kind: str
    index: int
    frag: int = 0

    def __str__(self) -> str:
        if self.kind == "frag":
            return f"fragment {self.frag} of response {self.index}"
        return f"{'request' if self.kind == 'req' else 'response'} {self.index}"


@dataclass(frozen=True)
class Cut:
    """Sever the link just before ``event`` is delivered, or just after."""

    event: Event
    after: bool

    def __str__(self) -> str:
        return f"{'after' if self.after else 'before'} {self.event}"


def every_cut(events: list[Event]) -> list[Cut]:
    """Both sides of every event, in order."""
    return [Cut(e, after) for e in events for after in (False, True)]


@dataclass
class Cutter:
    """Numbers the messages of one sync and severs the link at ``cut`` (None: never)."""

    cut: Cut | None
    sever: Callable[[], None]
    delivered: list[Event] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    fired: bool = False
    requests: int = 0
    responses: int = 0
    frame: int = -1  # response frame of the last fragment seen (BLE)

    def hold(self, event: Event) -> bool:
        """True when ``event`` must not be delivered (the link is cut at or before it)."""
        if self.fired:
            return True
        if self.cut == Cut(event, after=False):
            self._fire()
            return True
        return False

    def passed(self, event: Event) -> None:
        """``event`` was delivered; cut now if the cut is right after it."""
        self.delivered.append(event)
        if self.cut == Cut(event, after=True):
            self._fire()

    def _fire(self) -> None:
        self.fired = True
        self.sever()

    def next_request(self) -> Event:
        self.requests += 1
        return Event("req", self.requests - 1)

    def next_response(self) -> Event:
        self.responses += 1
        return Event("resp", self.responses - 1)

    def fragment(self, data: bytes) -> Event:
        if data[0] & FIRST:
            self.frame += 1
        return Event("frag", self.frame, data[1])


class CuttableLoopback(LoopbackTransport):
    """The host's end of a loopback link, with a :class:`Cutter` on its frames."""

    cutter: Cutter | None = None

    def arm(self, cut: Cut | None) -> Cutter:
        """Count (and maybe cut) from the next message on."""
        self.cutter = Cutter(cut, self.drop)
        return self.cutter

    async def send_frame(self, frame: bytes) -> None:
        c = self.cutter
        if c is None:
            return await super().send_frame(frame)
        event = c.next_request()
        if c.hold(event):
            raise LinkLost(f"cut {c.cut}")
        c.sent.append(bytes(frame))
        await super().send_frame(frame)
        c.passed(event)

    async def recv_frame(self, timeout: float | None = None) -> bytes:
        frame = await super().recv_frame(timeout)
        c = self.cutter
        if c is None:
            return frame
        if c.fired:  # answered before the cut, but it never made it across
            raise LinkLost(f"cut {c.cut}")
        event = c.next_response()
        if c.hold(event):
            raise LinkLost(f"cut {c.cut}")
        c.passed(event)
        return frame


class CuttableBle(BleTransport):
    """The host's BLE transport with a :class:`Cutter` on its ATT writes and on the
    notification fragments, below the reassembly: a cut may fall between two
    fragments of one LOG_PAGE."""

    def __init__(self, *args: Any, sever: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sever = sever
        self.cutter: Cutter | None = None
        # Requests are numbered as their write starts (one at a time, as the
        # transport writes them anyway), so "before request n" means requests
        # 0..n-1 were acknowledged and n never left.
        self._in_order = asyncio.Lock()

    def arm(self, cut: Cut | None) -> Cutter:
        """Count (and maybe cut) from the next message on."""
        self.cutter = Cutter(cut, self._sever)
        return self.cutter

    async def send_frame(self, frame: bytes) -> None:
        c = self.cutter
        if c is None:
            return await super().send_frame(frame)
        assert len(self._framer.split(frame)) == 1, "a request spans several writes"
        async with self._in_order:
            event = c.next_request()
            if c.hold(event):
                await wait_until(lambda: not self.connected, 5.0, "the host to see the cut")
                raise LinkLost(f"cut {c.cut}")
            c.sent.append(bytes(frame))
            await super().send_frame(frame)
            c.passed(event)

    def _on_notify(self, char: object, data: bytearray) -> None:
        c = self.cutter
        if c is None:
            return super()._on_notify(char, data)
        if c.fired:
            return None  # in flight when the link went: lost with it
        event = c.fragment(bytes(data))
        if c.hold(event):
            return None
        super()._on_notify(char, data)
        c.passed(event)
        return None


# -- the checks -----------------------------------------------------------------------------


@dataclass
class Reference:
    """One uninterrupted sync: its messages, and the records each response carried."""

    events: list[Event]
    page_records: list[int]  # records per response frame, in order

    def stored_after(self, delivered: list[Event]) -> int:
        """Records the host must hold once ``delivered`` got across: every page whose
        last message (the frame, or its last fragment) was delivered."""
        last = {e.index: e for e in self.events if e.kind != "req"}
        return sum(self.page_records[i] for i, e in last.items() if e in delivered)


def check_prefix(stored: list[Row], pen: list[Row], expected: int, where: str) -> None:
    """After a cut: the host holds exactly the first ``expected`` records of the pen."""
    assert len(stored) == expected, (
        f"{where}: the host stored {len(stored)} records, {expected} got across")
    assert stored == pen[:expected], f"{where}: stored records differ from the pen's"


def check_complete(db: S.Store, serial: str, pen: list[Row], where: str) -> None:
    """The host holds every record of the pen, once, with its values, and no gap."""
    stored = host_rows(db, serial)
    seqs = [r[0] for r in stored]
    assert len(seqs) == len(set(seqs)), f"{where}: duplicate seqs"
    assert seqs == list(range(pen[0][0], pen[-1][0] + 1)), f"{where}: a gap in {seqs[:3]}.."
    assert stored == pen, f"{where}: the host's records differ from the pen's"
    assert S.list_gaps(db, serial) == [], f"{where}: gaps {S.list_gaps(db, serial)}"

