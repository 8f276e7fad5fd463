"""Log sync with the link lost at every message boundary: the resumed sync loses
nothing and duplicates nothing.

The pen's log holds about 700 records (five LOG_PAGEs of up to 160 records; the
client keeps three LOG_READs in flight). One uninterrupted sync is recorded
message by message; then, for each boundary, a fresh host store syncs, the link is
cut exactly there (just before a message is delivered, and just after), the host
gets ``LinkLost``, reconnects and syncs again. Each time the host holds exactly
the pen's records (seq and every field), once, without a gap; the cut sync kept
every page that got across, the resumed one asked from the last stored record + 1,
and a third sync adds nothing.

Two paths:

- **loopback**, exhaustive: the firmware's ``pen.handler.Handler`` over its core
  and store (``tests/e2e/fw_loopback.py``) on ``scalppen.transports.loopback``;
  a message is a whole frame: 5 LOG_READs + 5 LOG_PAGEs, both sides of each: 20
  cuts, all run.
- **the twin over virtual BLE**: the firmware bundle in MicroPython (the twin) on
  the bumble radio, the same cuts as the in-process pen below; the log is filled
  by the twin's own store (a chunk per tick).
- **virtual BLE**: the full firmware in ``VirtualPen`` on the bumble radio, the
  host's ``Radio`` and a ``BleTransport`` whose ATT writes and notification
  fragments are counted below the reassembly; the cut is ``radio_silence`` (both
  controllers report a supervision timeout). A full LOG_PAGE is 15 notifications
  at the pen's MTU 247: 5 writes + 66 fragments = 71 messages, 142 cuts, about
  0.3 s of wall time each: too slow for CI. CI runs 40 of them: both sides of
  every request, before the first and both sides of the last fragment of every
  page (25), and cuts inside every page: after its first fragment, before its
  middle one and before its last (15). ``SCALPPEN_SYNC_CUTS=all`` runs all 142
  (about a minute).

A last test cuts the link at the pen the moment a LOG_READ reaches it, while the
host's ATT write is still unanswered.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.client import LinkLost
from scalppen.client import Pen as Client
from scalppen.workflows.logsync import sync_log
from tests.e2e.fw_loopback import SERIAL, FirmwarePen
from tests.e2e.sync_fixtures import (
    Cut,
    CuttableBle,
    CuttableLoopback,
    Reference,
    Row,
    check_complete,
    check_prefix,
    every_cut,
    fill_log,
    host_rows,
    log_reads,
    pen_rows,
)
from tests.e2e.vpen_fixtures import Rig, radio_silence, rig, run, wait_until, within
from tests.twin.twin_rig import TwinRig, twin_rig

pytestmark = pytest.mark.timeout(120)

RECORDS = 700  # with the pen's own records: five pages
PAGE = 160  # records per LOG_PAGE at the pen's MAX_FRAME
ALL_CUTS = os.environ.get("SCALPPEN_SYNC_CUTS") == "all"

Link = CuttableLoopback | CuttableBle


@dataclass
class SyncPath:
    """How to reach one pen for a sync, and what its log holds."""

    tmp: Path
    serial: str
    connect: Callable[[], Awaitable[tuple[Client, Link]]]
    pen_rows: Callable[[], list[Row]]
    runs: int = 0

    def fresh_store(self) -> S.Store:
        self.runs += 1
        return S.open_store(self.tmp / f"host-{self.runs}.db")


async def reference(path: SyncPath) -> Reference:
    """One uninterrupted sync into a fresh store: its messages and pages."""
    db = path.fresh_store()
    try:
        client, link = await path.connect()
        cutter = link.arm(None)
        summary = await within(sync_log(client, db, path.serial))
        await within(client.close())
        pen = path.pen_rows()
        check_complete(db, path.serial, pen, "uninterrupted sync")
        assert summary.new == len(pen) and summary.from_seq == 1
    finally:
        db.close()
    starts = log_reads(cutter.sent)
    assert starts == list(range(1, len(pen) + 1, PAGE)), starts
    sizes = [min(PAGE, len(pen) - (s - 1)) for s in starts]
    assert cutter.responses == len(starts) or cutter.frame + 1 == len(starts)
    return Reference(list(cutter.delivered), sizes)


async def cut_and_resume(path: SyncPath, ref: Reference, cut: Cut) -> None:
    """Sync with the link cut at ``cut``, then resume; check the host's copy."""
    where = f"cut {cut}"
    db = path.fresh_store()
    try:
        client, link = await path.connect()
        cutter = link.arm(cut)
        lost: LinkLost | None = None
        try:
            await within(sync_log(client, db, path.serial))
        except LinkLost as exc:
            lost = exc
        finally:
            await within(client.close())
        assert cutter.fired, f"{where}: the sync never reached that boundary"
        pen = path.pen_rows()
        got_across = ref.stored_after(cutter.delivered)
        if got_across < len(pen):
            assert lost is not None, f"{where}: the sync ended without LinkLost"
        else:  # the cut came after the last page: the sync had finished
            assert lost is None, f"{where}: {lost!r} after the last page arrived"
        check_prefix(host_rows(db, path.serial), pen, got_across, where)
        await resume(path, db, pen, got_across, where)
    finally:
        db.close()


async def resume(path: SyncPath, db: S.Store, pen: list[Row], stored: int, where: str) -> None:
    """Reconnect and sync twice: the first completes the copy, the second adds nothing."""
    last = S.last_synced_seq(db, path.serial)
    assert last == (pen[stored - 1][0] if stored else None), where
    client, link = await path.connect()
    try:
        spy = link.arm(None)
        summary = await within(sync_log(client, db, path.serial))
        resumed_from = 1 if last is None else last + 1
        assert summary.from_seq == resumed_from, where
        reads = log_reads(spy.sent)
        if last is not None:  # first the pen's record `last`: is it still the log stored?
            assert reads[0] == last, f"{where}: the pen's log was not checked ({reads})"
            reads = reads[1:]
        assert reads[0] == resumed_from, f"{where}: resumed from the wrong seq"
        assert (summary.new, summary.duplicates, summary.gaps) == (len(pen) - stored, 0, []), (
            f"{where}: resumed sync {summary}")
        check_complete(db, path.serial, pen, f"{where}, resumed")
        third = await within(sync_log(client, db, path.serial))
        assert (third.from_seq, third.new, third.duplicates) == (pen[-1][0] + 1, 0, 0), where
        check_complete(db, path.serial, pen, f"{where}, third sync")
    finally:
        await within(client.close())


async def cut_everywhere(path: SyncPath, cuts: Callable[[Reference], list[Cut]]) -> int:
    """Every chosen cut of the reference sync; returns how many ran."""
    ref = await reference(path)
    chosen = cuts(ref)
    for cut in chosen:
        await cut_and_resume(path, ref, cut)
    return len(chosen)


# ---- (a) the firmware's handler over loopback, every boundary ---------------------------------


def test_sync_over_loopback_resumes_exactly_after_a_cut_at_every_frame_boundary(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        fw = FirmwarePen(tmp_path / "flash")
        fill_log(fw.store, RECORDS, 1_750_000_000)

        def rows() -> list[Row]:
            return pen_rows(fw.store)

        path = SyncPath(tmp_path, SERIAL, fw.connect, rows)
        ref = await reference(path)
        kinds = [e.kind for e in ref.events]
        assert kinds.count("req") == kinds.count("resp") == 5, kinds
        ran = await cut_everywhere(path, lambda ref: every_cut(ref.events))
        assert ran == 2 * len(ref.events) == 20
        await fw.stop()

    run(scenario(), timeout=60.0)


# ---- (b) the full virtual pen over the virtual BLE link ------------------------------------------


def _ble_path(r: Rig) -> SyncPath:
    async def connect() -> tuple[Client, Link]:
        await wait_until(lambda: r.app.ble.conn is None and r.app.ble.advertising, 5.0,
                         "the pen to see the last link go and advertise")
        assert r.radio.central is not None
        transport = CuttableBle(r.address, backend=r.radio.central.client_backend,
                                attempts=1, retry_delay=0.05,
                                sever=lambda: radio_silence(r.vpen, r.radio))
        client = Client(transport, timeout=5.0)
        await within(client.__aenter__(), 15.0)
        return client, transport

    return SyncPath(r.tmp, r.serial, connect, lambda: pen_rows(r.app.store))


def _frame_edges(ref: Reference) -> list[Cut]:
    """Both sides of every request and of every whole response frame."""
    cuts = [c for c in every_cut(ref.events) if c.event.kind == "req"]
    for i in range(len(ref.page_records)):
        frags = [e for e in ref.events if e.kind == "frag" and e.index == i]
        cuts += [Cut(frags[0], False), Cut(frags[-1], False), Cut(frags[-1], True)]
    return cuts


def _inside_frames(ref: Reference) -> list[Cut]:
    """Between two fragments of one LOG_PAGE: after the first, mid-page, before the last."""
    cuts: list[Cut] = []
    for i in range(len(ref.page_records)):
        frags = [e for e in ref.events if e.kind == "frag" and e.index == i]
        assert len(frags) >= 3, f"page {i} has {len(frags)} fragments"
        for cut in (Cut(frags[0], True), Cut(frags[len(frags) // 2], False),
                    Cut(frags[-1], False)):
            if cut not in cuts:
                cuts.append(cut)
    return cuts


async def _ble_rig_sync(tmp: Path, cuts: Callable[[Reference], list[Cut]]) -> tuple[Reference, int]:
    async with rig(tmp) as r:
        await r.pair()
        fill_log(r.app.store, RECORDS, r.vpen.unix_time() - 400 * 86_400)
        path = _ble_path(r)
        ref = await reference(path)
        ran = await cut_everywhere(path, cuts)
        return ref, ran


# ---- (c) the twin: the firmware bundle in MicroPython, over the virtual BLE link ----------

PROBE_HEAP_KB = 512

_TWIN_FILL = """
import sys
st = app.store
t0 = {t0}
kinds = {kinds}
for i in range({start}, {end}):
    kind, depth, a = kinds[i % len(kinds)]
    day = i // len(kinds)
    st.append(kind, t0 + day * 259200 + i * 7, (i * 37) & 0xFFFF,
              depth + (day % 3) * 250 if depth else 0, a + i, (i * 7919) & 0xFFFFFFFF, i & 0x0F)
st.commit()
result = 1
"""

_TWIN_ROWS = """
from pen.store import unpack_record
rows = []
while True:
    recs = app.store.read(rows[-1][0] + 1 if rows else {first}, 8)[2]
    if not recs or len(rows) >= 25:
        break
    rows += [[unpack_record(r)[f] for f in {fields}] for r in recs]
result = rows[:25]
"""


async def _twin_fill(r: TwinRig, n: int, t0: int) -> None:
    # the same records as sync_fixtures.fill_log, appended by the twin's own store
    from tests.e2e.sync_fixtures import _SESSION

    kinds = [(int(k), d, a) for k, d, a in _SESSION]
    for start in range(0, n, 100):  # a chunk per tick: the watchdog is fed in between
        await r.twin.probe(_TWIN_FILL.format(t0=t0, kinds=kinds, start=start,
                                             end=min(n, start + 100)), 30.0, exec_=True)


async def _twin_rows(r: TwinRig) -> list[Row]:
    from tests.e2e.sync_fixtures import FIELDS

    rows: list[Row] = []
    while True:  # 25 records per tick: a probe must not take the pen's heap
        part = await r.twin.probe(_TWIN_ROWS.format(first=rows[-1][0] + 1 if rows else 1,
                                                    fields=list(FIELDS)), 30.0, exec_=True)
        rows += [tuple(int(x) for x in row) for row in part]
        if len(part) < 25:
            return rows


def _twin_path(r: TwinRig, rows: list[Row]) -> SyncPath:
    async def connect() -> tuple[Client, Link]:
        for _ in range(500):
            if await r.twin.probe("app.ble.conn is None and app.ble.advertising"):
                break
        else:
            raise AssertionError("the twin did not advertise again")
        assert r.radio.central is not None
        transport = CuttableBle(r.address, backend=r.radio.central.client_backend,
                                attempts=2, retry_delay=0.05,
                                sever=lambda: radio_silence(r.twin, r.radio))
        client = Client(transport, timeout=10.0)
        await within(client.__aenter__(), 20.0)
        return client, transport

    return SyncPath(r.tmp, r.serial, connect, lambda: rows)


async def _twin_rig_sync(tmp: Path,
                         cuts: Callable[[Reference], list[Cut]]) -> tuple[Reference, int]:
    # The test reads the pen's log with probes (25 records a tick); probes cost
    # heap the pen would not spend, and this pen's heap is fragmented at its default size
    # (docs/benchmarks.md, the twin's smallest heap): give them room.
    async with twin_rig(tmp, speed=None, heap_kb=PROBE_HEAP_KB) as r:
        await r.pair()
        await _twin_fill(r, RECORDS, r.twin.unix_time() - 400 * 86_400)
        rows = await _twin_rows(r)
        assert len(rows) > RECORDS
        path = _twin_path(r, rows)
        ref = await reference(path)
        ran = await cut_everywhere(path, cuts)
        return ref, ran


def test_twin_sync_resumes_exactly_after_a_cut_at_request_and_page_edges(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        ref, ran = await _twin_rig_sync(tmp_path, _frame_edges)
        assert ran == 5 * 2 + 3 * len(ref.page_records)

    run(scenario(), timeout=240.0)


def test_twin_sync_resumes_exactly_after_a_cut_between_fragments_of_a_page(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        ref, ran = await _twin_rig_sync(tmp_path, _inside_frames)
        assert ran == 3 * len(ref.page_records) == 15

    run(scenario(), timeout=240.0)


def _edges_or_all(ref: Reference) -> list[Cut]:
    return every_cut(ref.events) if ALL_CUTS else _frame_edges(ref)


def test_sync_over_ble_resumes_exactly_after_a_cut_at_request_and_page_edges(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        ref, ran = await _ble_rig_sync(tmp_path, _edges_or_all)
        requests = sum(e.kind == "req" for e in ref.events)
        fragments = sum(e.kind == "frag" for e in ref.events)
        assert requests == len(ref.page_records) == 5, ref.events
        assert fragments == 4 * 15 + 6, fragments  # 160 records: 3535 bytes, 242 a fragment
        assert ran == (2 * len(ref.events) if ALL_CUTS else 2 * requests + 3 * requests)

    run(scenario(), timeout=110.0)


def test_sync_over_ble_resumes_exactly_after_a_cut_between_fragments_of_a_page(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        ref, ran = await _ble_rig_sync(tmp_path, _inside_frames)
        assert ran == 3 * len(ref.page_records) == 15

    run(scenario(), timeout=60.0)


def test_sync_gets_link_lost_when_the_link_drops_under_an_unanswered_log_read(
    tmp_path: Path,
) -> None:
    """The link goes the moment the pen's radio takes the second LOG_READ, before the
    ATT write is acknowledged. bumble then cancels the host's pending write; the
    client must still report ``LinkLost`` (it used to leak ``CancelledError``), the
    first page stays stored and the resumed sync completes the copy."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            fill_log(r.app.store, RECORDS, r.vpen.unix_time() - 400 * 86_400)
            path = _ble_path(r)
            ble = r.app.ble
            take = ble._on_rx
            writes: list[bytes] = []

            def on_rx(conn: int, data: bytes) -> None:
                take(conn, data)
                writes.append(bytes(data))
                if len(writes) == 2:
                    radio_silence(r.vpen, r.radio)

            db = path.fresh_store()
            try:
                client, _link = await path.connect()
                ble._on_rx = on_rx
                try:
                    with pytest.raises(LinkLost):
                        await within(sync_log(client, db, r.serial))
                finally:
                    ble._on_rx = take
                    await within(client.close())
                assert log_reads([w[2:] for w in writes]) == [1, 1 + PAGE]
                pen = path.pen_rows()
                check_prefix(host_rows(db, r.serial), pen, PAGE, "cut under the 2nd LOG_READ")
                await resume(path, db, pen, PAGE, "cut under the 2nd LOG_READ")
            finally:
                db.close()

    run(scenario())
