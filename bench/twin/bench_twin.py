"""The twin: the firmware bundle in MicroPython's unix port, against the in-process pen.

Measured side by side in one run (figures in docs/benchmarks.md):

1. speed: wall time of one 15-minute session (a host paired and receiving the
   telemetry, the pen's time unpaced), in the twin and in the in-process pen;
   goal for the twin >= 60x real time.
2. bridge: messages between the twin and CPython per control tick during that
   session (goal <= 1), and the wall time of a tick in the twin (p50/p99/max: the
   firmware's tick plus one bridge round trip).
3. log sync: 10,000 records synced from the twin by the host, as a share of raw
   full-size notifications the twin's firmware pushes on the same link (goal >= 80 %).
4. heap: the smallest pen heap (``-X heapsize`` less the stand-ins' own allowance)
   at which boot + pairing + a full session + a 10,000-record log sync complete with
   no MemoryError and no reset; goal <= 128 KB on this 64-bit build, with the 32-bit
   pen's estimate beside it (64-bit objects take about 1.35x).

Run: ``.venv/bin/python bench/twin/bench_twin.py [--records N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for sub in ("host", "protocol", "hardware"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from bleak import BleakClient  # noqa: E402

from scalppen import store as S  # noqa: E402
from scalppen.client import Pen  # noqa: E402
from scalppen.policy.permits import sign_permit  # noqa: E402
from scalppen.twin import make_twin  # noqa: E402
from scalppen.workflows.logsync import sync_log  # noqa: E402
from scalppen.workflows.pairing import pair_pen  # noqa: E402
from scalppen.workflows.radio import Radio  # noqa: E402
from scalppen_hardware import ble_radio  # noqa: E402
from scalppen_hardware.twin.process import STANDIN_HEAP_KB  # noqa: E402
from scalppen_hardware.virtual_pen import VirtualPen  # noqa: E402
from scalppen_protocol import gatt  # noqa: E402
from scalppen_protocol.codes import PenState, RecordKind  # noqa: E402
from scalppen_protocol.messages import LOG_RECORD_SIZE  # noqa: E402

EPOCH = 1_780_000_000
SESSION_S = 900
TIMEOUT = 120.0
SEG_RECORDS = 128
BYTES_32_PER_64 = 1 / 1.35
SYNC_HEAP_KB = 512


def say(label: str, value: str) -> None:
    print(f"  {label:<52} {value}", flush=True)


async def wait_until(pred: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def pair(pen: Any, radio: Radio, db: S.Store) -> str:
    address = pen.radio.address.to_string(False)

    async def passkey() -> str:
        await wait_until(lambda: pen.passkey is not None, 20.0, "the passkey")
        return f"{pen.passkey:06d}"

    def now() -> datetime:
        return datetime.fromtimestamp(pen.unix_time(), UTC)

    paired = await asyncio.wait_for(pair_pen(radio, db, address, passkey, now), TIMEOUT)
    return paired.info.serial


async def full_session(pen: Any, radio: Radio, db: S.Store, serial: str) -> tuple[float, int]:
    """A 15-minute session from START to the pen's own stop; wall seconds, events."""
    address = pen.radio.address.to_string(False)
    hw = pen.hw
    hw.set_battery(95)
    hw.set_contact(True)
    key = S.get_permit_key(db, serial)
    assert key is not None
    events = [0]
    async with Pen(radio.transport(address, attempts=2), timeout=20.0) as client:
        client.on_event(lambda _ev: events.__setitem__(0, events[0] + 1))
        now = pen.unix_time()
        permit = sign_permit(key, 500, SESSION_S, now - 5, now + 300, b"bench-tw").as_dict()
        await client.arm(permit)
        await client.set_depth(500)
        await client.set_speed(0)  # 100 strokes/s: the default cartridge lasts 15 minutes
        await client.start()
        t0 = time.perf_counter()
        while True:
            await asyncio.sleep(0.25)
            status = await client.status()
            if status.state not in (PenState.RUNNING, PenState.PAUSED, PenState.ARMED):
                break
            if time.perf_counter() - t0 > TIMEOUT:
                raise RuntimeError("the session did not end")
        return time.perf_counter() - t0, events[0]


async def session_speed(kind: str, tmp: Path) -> dict[str, Any]:
    link = ble_radio.new_link()
    db = S.open_store(tmp / f"{kind}.db")
    try:
        async with Radio(link, keystore=tmp / f"{kind}-bonds.json") as radio:
            if kind == "twin":
                pen: Any = make_twin(tmp / f"{kind}-flash", link, speed=None, epoch=EPOCH)
            else:
                pen = VirtualPen(tmp / f"{kind}-flash", link, speed=None, epoch=EPOCH)
            pen.hw.insert_cartridge("new")
            await pen.start()
            try:
                serial = await pair(pen, radio, db)
                out: dict[str, Any] = {}
                if kind == "twin":
                    pen.tick_samples = []
                    m0, s0 = pen.bridge.messages, pen.bridge.syncs
                wall, events = await full_session(pen, radio, db, serial)
                out["wall"] = wall
                out["events"] = events
                if kind == "twin":
                    out["per_tick"] = (pen.bridge.messages - m0) / max(1, pen.bridge.syncs - s0)
                    out["calls"] = pen.bridge.call_names.most_common(6)
                    out["ticks"] = list(pen.tick_samples)
                    pen.tick_samples = None
                return out
            finally:
                await pen.stop()
    finally:
        db.close()


FILL = """
st = app.store
st.max_segments = max(st.max_segments, {total} // {seg} + 4)
t = {t0}
kinds = {kinds}
last = 0
for i in range({start}, {end}):
    k, d, a, b = kinds[i % len(kinds)]
    last = st.append(k, t + i * 60, 0, d, a, b)
st.commit()
result = [st.first_seq(), last]
"""
FILL_CHUNK = 250  # records per tick: a longer stretch without a tick trips the watchdog


async def fill(twin: Any, n: int) -> tuple[int, int]:
    """Append ``n`` records of ordinary sessions through the firmware's own store,
    a chunk per tick (the pen keeps 8 x 128; the store is raised to hold them all)."""
    kinds = [(int(RecordKind.ARMED), 500, 600, 0), (int(RecordKind.SESSION_START), 500, 600, 117),
             (int(RecordKind.SESSION_WARN), 500, 600_000, 0),
             (int(RecordKind.SESSION_END), 500, 660_000, 77_000)]
    first = last = 0
    for start in range(0, n, FILL_CHUNK):
        code = FILL.format(total=n, seg=SEG_RECORDS, t0=EPOCH - 400 * 86400, kinds=kinds,
                           start=start, end=min(n, start + FILL_CHUNK))
        first, last = await twin.probe(code, TIMEOUT, exec_=True)
    return first, last


async def raw_rate(twin: Any, radio: Radio, payloads: int) -> tuple[float, int]:
    """Full-size notifications pushed by the twin's own PenBle.send, to a plain subscriber."""
    address = twin.radio.address.to_string(False)
    assert radio.central is not None
    client = BleakClient(address, backend=radio.central.client_backend, timeout=20.0)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    try:
        got = [0, 0]
        done = asyncio.Event()

        def on_notify(_c: Any, data: bytearray) -> None:
            got[0] += 1
            got[1] += len(data)
            if got[0] >= payloads:
                done.set()

        await asyncio.wait_for(client.start_notify(gatt.EVENT_CHAR_UUID, on_notify), TIMEOUT)
        await wait_until(lambda: True, 0.1, "")
        size = await twin.probe("app.ble.payload_size")
        # the firmware's own BLE object notifies; a 1 ms sleep every 8 lets them go out
        code = (f"p = bytes(range(256))[:{size}]\n"
                f"for i in range({payloads}):\n"
                "    app.ble._ble.gatts_notify(app.ble.conn, app.ble.tx_handle, p)\n"
                "    if i % 8 == 7:\n        __import__('time').sleep_ms(1)\n"
                "result = 1")
        t0 = time.perf_counter()
        await twin.probe(code, TIMEOUT, exec_=True)
        await asyncio.wait_for(done.wait(), TIMEOUT)
        dt = time.perf_counter() - t0
        return got[1] / dt, size
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def sync_share(tmp: Path, records: int) -> dict[str, Any]:
    link = ble_radio.new_link()
    db = S.open_store(tmp / "sync.db")
    try:
        async with Radio(link, keystore=tmp / "sync-bonds.json") as radio:
            # a heap large enough that memory does not limit the throughput measured
            twin = make_twin(tmp / "sync-flash", link, speed=None, epoch=EPOCH,
                             heap_kb=SYNC_HEAP_KB)
            await twin.start()
            try:
                serial = await pair(twin, radio, db)
                t0 = time.perf_counter()
                first, last = await fill(twin, records)
                fill_s = time.perf_counter() - t0
                address = twin.radio.address.to_string(False)
                rates = []
                for r in range(2):
                    fresh = S.open_store(tmp / f"sync-{r}.db")
                    S.upsert_pen(fresh, serial, ble_address=address)
                    async with Pen(radio.transport(address, attempts=2), timeout=20.0) as pen:
                        t0 = time.perf_counter()
                        res = await sync_log(pen, fresh, serial, now=datetime.now(UTC))
                        dt = time.perf_counter() - t0
                    fresh.close()
                    rates.append(res.new / dt)
                    if twin.errors:
                        raise RuntimeError("the twin failed: " + twin.errors[-1])
                await wait_until(lambda: True, 0.2, "")
                raw_bps, size = await raw_rate(twin, radio, 2000)
                return {"fill_s": fill_s, "records": last - first + 1, "sync": max(rates),
                        "raw_bps": raw_bps, "size": size}
            except BaseException:
                print(twin.console_text()[-2000:])
                raise
            finally:
                await twin.stop()
    finally:
        db.close()


async def whole_flow(tmp: Path, heap_kb: int, records: int) -> tuple[bool, str]:
    """Boot, pair, a full session, a log sync of ``records``: all at ``heap_kb``."""
    link = ble_radio.new_link()
    db = S.open_store(tmp / f"heap-{heap_kb}.db")
    twin = make_twin(tmp / f"heap-{heap_kb}-flash", link, speed=None, epoch=EPOCH,
                     heap_kb=heap_kb)
    twin.hw.insert_cartridge("new")
    try:
        async with Radio(link, keystore=tmp / f"heap-{heap_kb}-bonds.json") as radio:
            await twin.start()
            try:
                serial = await pair(twin, radio, db)
                await full_session(twin, radio, db, serial)
                await fill(twin, records)
                address = twin.radio.address.to_string(False)
                async with Pen(radio.transport(address, attempts=2), timeout=20.0) as pen:
                    res = await sync_log(pen, db, serial, now=datetime.now(UTC))
                peak = await twin.probe("(__import__('gc').collect(), "
                                        "__import__('gc').mem_alloc())[1]")
            finally:
                await twin.stop()
        bad = "MemoryError" in twin.console_text() or twin.boots != 1
        if bad:
            return False, "MemoryError" if "MemoryError" in twin.console_text() else "reset"
        return res.new >= records, (f"{res.new:,} records synced, {peak:,} B live after "
                                    f"(stand-ins included)")
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc)[:80]}"
    finally:
        db.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(records: int, quick: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-twin-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"1-2. one {SESSION_S // 60}-minute session, host linked and receiving telemetry,"
              " pen's time unpaced")
        inproc = await session_speed("inproc", tmp)
        twin = await session_speed("twin", tmp)
        for label, r in (("in-process pen (CPython)", inproc), ("twin (MicroPython unix port)",
                                                                  twin)):
            say(label, f"{r['wall']:.2f} s wall = {SESSION_S / r['wall']:,.0f}x real time "
                f"({r['events']:,} events)")
        x = SESSION_S / twin["wall"]
        say("twin goal >= 60x real time", "met" if x >= 60 else "NOT met")
        say("bridge messages per tick (goal <= 1)", f"{twin['per_tick']:.3f} "
            f"({'met' if twin['per_tick'] <= 1.0 else 'NOT met'})")
        say("synchronous calls by kind (whole boot)", ", ".join(
            f"{name} {n:,}" for name, n in twin["calls"]))
        ticks = twin["ticks"]
        say("tick in the twin, wall (firmware + bridge)",
            f"p50 {pct(ticks, 0.5):.0f} us, p99 {pct(ticks, 0.99):.0f} us, "
            f"max {max(ticks):.0f} us over {len(ticks):,} ticks")
        print(f"3. log sync of {records:,} records from the twin (pen heap {SYNC_HEAP_KB} KB)")
        s = await sync_share(tmp, records)
        say("log filled by the firmware's own store", f"{s['records']:,} records in "
            f"{s['fill_s']:.1f} s")
        raw_rec = s["raw_bps"] / LOG_RECORD_SIZE
        say("log sync", f"{s['sync']:,.0f} records/s")
        say("raw notifications from the twin", f"{s['raw_bps'] / 1000:,.1f} kB/s of "
            f"{s['size']}-byte payloads = {raw_rec:,.0f} records/s")
        share = s["sync"] / raw_rec
        say("sync as a share of raw (goal >= 80 %)",
            f"{share:.0%} ({'met' if share >= 0.8 else 'NOT met'})")
        print(f"4. smallest pen heap for boot + pairing + a full session + a {records:,}-record "
              "sync")
        say("stand-ins' own allowance (not part of the pen's heap)", f"{STANDIN_HEAP_KB} KB")
        candidates = ([384, 256, 192, 128] if quick
                      else [512, 384, 320, 256, 224, 192, 160, 128, 112])
        smallest = None
        for kb in candidates:
            ok, note = await whole_flow(tmp, kb, records)
            say(f"pen heap {kb} KB (-X heapsize={kb + STANDIN_HEAP_KB}k)",
                ("completes: " if ok else "fails: ") + note)
            if not ok:
                break
            smallest = kb
        if smallest is None:
            say("smallest heap", f"none of {candidates} completes")
        else:
            say("smallest heap that completes (64-bit)", f"{smallest} KB; the 32-bit pen about "
                f"{smallest * BYTES_32_PER_64:.0f} KB")
            say("goal <= 128 KB on the 64-bit build", "met" if smallest <= 128 else "NOT met")
        _ = statistics
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="fewer heap sizes")
    args = ap.parse_args()
    sys.exit(asyncio.run(main(args.records, args.quick)))
