"""Firmware core benchmark inside MicroPython's unix port, from the .mpy bundle.

Prints: heap in use (gc.mem_alloc after gc.collect) once the core is imported and
booted, and again after 1,000 control ticks of a running session (this build is
64-bit; the 32-bit pen needs about 1/1.35 of it, and the target is judged on that
estimate); and the cost of one control tick: bytes allocated (micropython.mem_total,
repeatable) and median microseconds on this machine, of N ticks of pen + plant
minus N ticks of the plant alone, divided by N.

Under a request flood the shell (``pen/app.py``) hands the handler at most
``_RX_PER_TICK`` requests per control tick, and only ``_RX_PER_TICK_RUNNING``
while needles move, when LOG_READ pages are also capped (RUNNING_PAGE_RECORDS).
The benchmark times (median in this VM) a running control
tick, one GET_STATUS, one full LOG_READ page (160 records, the dearest request)
and one capped page, and prints the worst running tick as a multiple of a plain
one. These are relative figures: the tick's time on the ESP32-S3 is to be
measured on silicon.

Run: ``.venv/bin/python bench/firmware/bench_firmware.py``. Target: <= 64 KB heap
after boot.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "protocol"))

from tests.upy.runner import CASES, FIRMWARE, TEST_FIRMWARE, run_upy  # noqa: E402

from scalppen_protocol.codes import RUNNING_PAGE_RECORDS  # noqa: E402

HEAP_TARGET = 64 * 1024  # on the pen (32-bit)
BYTES_32_PER_64 = 1 / 1.35
N = 1000

SETUP = """
import gc
from pen import wire
from pen import board as _board
from pen.core import Pen
from pen.handler import Handler
from pen.fsio import Fs
from pen.store import Store
from pen import permit, wear, motorctl, depthctl, safety
import json
with open('/boards/pen-s3-revb.json') as f:
    board = _board.settings(json.load(f))
# as pen/app.py: the board module's code is needed for the load only
import sys
del sys.modules['pen.board'], _board
import pen
del pen.board
store = Store(Fs('/data/pen'))
pen = Pen(board, store)
handler = Handler(pen)
"""

SESSION = """
from plant import Plant
plant = Plant()
t = [0]
def ticks(n, with_pen):
    inp = plant.inp
    out = pen.out
    for _ in range(n):
        t[0] += 10
        if with_pen:
            out = pen.tick(t[0], inp)
        plant.step(out, 10)
def arm_and_start():
    handler.handle(wire.encode(wire.T_SET_KEY, 1, {'key': bytes(range(1, 33))}), True)
    key = bytes(range(1, 33))
    tn = b'benchTim'
    handler.handle(wire.encode(wire.T_SET_TIME, 2, {'unix': 1750000000, 'nonce': tn,
                                                     'tag': permit.time_tag(key, 1750000000, tn)}),
                   True)
    ticks(150, True)
    p = {'max_depth_um': 1000, 'max_duration_s': 600, 'issued_at': 1749999990,
         'expires_at': 1750003600, 'nonce': b'benchNon', 'patient': bytes(8)}
    p['tag'] = permit.sign(bytes(range(1, 33)), p)
    for t_, f in ((wire.T_ARM, p), (wire.T_SET_DEPTH, {'depth_um': 1000}), (wire.T_START, {})):
        r = wire.decode(handler.handle(wire.encode(t_, 3, f), True)[0])
        assert r[0] == wire.T_ACK, r
    ticks(100, True)
    assert pen.state == wire.S_RUNNING
arm_and_start()
"""


COST = """
import micropython, time
def cost(n, pen_too):
    m0 = micropython.mem_total()
    t0 = time.ticks_us()
    ticks(n, pen_too)
    print('COST', micropython.mem_total() - m0, time.ticks_diff(time.ticks_us(), t0))
"""


def _cost(out: str) -> tuple[int, int]:
    parts = out.split("COST")[1].split()
    return int(parts[0]), int(parts[1])


def _run(code: str, data: Path) -> tuple[str, int]:
    res = run_upy(
        code,
        {"/fw": FIRMWARE, "/tf": TEST_FIRMWARE, "/cases": CASES,
         "/boards": ROOT / "hardware" / "boards", "/data": data},
        path=["/fw", "/tf"],
    )
    if res.exit_code:
        raise SystemExit(f"MicroPython run failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout, res.heap_kb


FLOOD = """
import time
for i in range(400):
    store.append(wire.K_BOOT, 1750000000 + i, 0, 0, i, i)
def timed(fn, n=60):
    # median microseconds of fn() in this VM
    ts = []
    for _ in range(n):
        t0 = time.ticks_us()
        fn()
        ts.append(time.ticks_diff(time.ticks_us(), t0))
    ts.sort()
    return ts[n // 2]
def request(t, f):
    frame = wire.encode(t, 9, f)
    return lambda: handler.handle(frame, True)
full = {'from_seq': 1, 'max_records': wire.MAX_PAGE_RECORDS}
assert len(wire.decode(request(wire.T_LOG_READ, full)()[0])[2]['records']) == 160
print('IDLE', timed(request(wire.T_LOG_READ, full)))
"""

FLOOD_RUNNING = """
def one_tick():
    ticks(1, True)
assert pen.state == wire.S_RUNNING
rec = wire.decode(request(wire.T_LOG_READ, full)()[0])[2]['records']
assert len(rec) == wire.RUNNING_PAGE_RECORDS
print('RUN', timed(one_tick), timed(request(wire.T_GET_STATUS, {})),
      timed(request(wire.T_LOG_READ, full)))
"""


def _rx_per_tick(name: str) -> int:
    """A request budget as ``pen/app.py`` declares it."""
    text = (ROOT / "firmware" / "pen" / "app.py").read_text()
    return int(text.split(name + " = const(")[1].split(")")[0])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        def fresh() -> Path:
            d = Path(tempfile.mkdtemp(dir=tmp))
            return d

        out, _ = _run(SETUP + "gc.collect()\nprint('HEAP', gc.mem_alloc())\n", fresh())
        boot_heap = int(out.split("HEAP")[1].split()[0])
        out, _ = _run(SETUP + SESSION + f"ticks({N}, True)\n"
                      "gc.collect()\nprint('HEAP', gc.mem_alloc(), pen.state)\n", fresh())
        parts = out.split("HEAP")[1].split()
        run_heap, state = int(parts[0]), int(parts[1])
        plant_b, plant_us = _cost(_run(SETUP + SESSION + COST + f"cost({N}, False)\n",
                                       fresh())[0])
        both_b, both_us = _cost(_run(SETUP + SESSION + COST + f"cost({N}, True)\n",
                                     fresh())[0])
        per_tick_b = (both_b - plant_b) / N
        per_tick_us = (both_us - plant_us) / N
        out, _ = _run(SETUP + FLOOD + SESSION + FLOOD_RUNNING, fresh())
    us_page = float(out.split("IDLE")[1].split()[0])
    us_tick, us_status, us_short = (float(x) for x in out.split("RUN")[1].split()[:3])
    per_rx, per_rx_running = _rx_per_tick("_RX_PER_TICK"), _rx_per_tick("_RX_PER_TICK_RUNNING")
    worst_running = us_tick + per_rx_running * max(us_status, us_short)
    worst_idle = per_rx * max(us_status, us_page)
    pen_heap = boot_heap * BYTES_32_PER_64
    ok = pen_heap <= HEAP_TARGET
    print("firmware core in MicroPython's unix port (64-bit), from the .mpy bundle")
    print(f"  heap after import + boot      : {boot_heap:7d} B ({boot_heap / 1024:.1f} KB; the "
          f"32-bit pen about {pen_heap / 1024:.1f} KB; target <= {HEAP_TARGET // 1024} KB: "
          f"{'ok' if ok else 'OVER'})")
    print(f"  heap after {N} running ticks : {run_heap:7d} B ({run_heap / 1024:.1f} KB; state {state})")
    print(f"  per control tick (running, pen only): {per_tick_b:,.0f} B allocated, "
          f"{per_tick_us:,.1f} us on this machine")
    print("  request flood, median us in this VM (relative figures; silicon differs):")
    print(f"    running control tick (pen + plant)    : {us_tick:8.0f}")
    print(f"    GET_STATUS request                    : {us_status:8.0f}")
    print(f"    LOG_READ, full 160-record page        : {us_page:8.0f}")
    print(f"    LOG_READ, page while running ({RUNNING_PAGE_RECORDS} rec.) : {us_short:8.0f}")
    print(f"    worst running tick ({per_rx_running} request/tick)    : {worst_running:8.0f}"
          f"  ({worst_running / us_tick:.1f} x a running tick)")
    print(f"    requests in an idle tick ({per_rx}/tick)     : {worst_idle:8.0f}"
          f"  (needles retracted)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
