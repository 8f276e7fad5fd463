"""Protocol benchmark: host log-page decode rate and payload efficiency over BLE.

Run: ``.venv/bin/python bench/protocol/bench_protocol.py`` (or ``make bench``).
Targets: the host decodes >= 200,000 log records/s; efficiency >= 95 % at MTU 247.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "protocol"), str(ROOT / "firmware")]

from pen import wire  # noqa: E402

from scalppen_protocol.codec import decode_frame, encode_frame  # noqa: E402
from scalppen_protocol.codes import MAX_PAGE_RECORDS, MsgType  # noqa: E402
from scalppen_protocol.fragment import fragment  # noqa: E402


def log_page(first: int, count: int) -> bytes:
    records = [
        {"seq": first + i, "time": 1_795_000_000 + 60 * i, "kind": 6, "flags": 0, "code": 0,
         "depth_um": 500, "a": 600_000, "b": 70_200 + i}
        for i in range(count)
    ]
    return encode_frame(MsgType.LOG_PAGE, 9, {"first_seq": 1, "last_seq": first + count,
                                              "records": records})


def rate(label: str, fn, frames: list[bytes], records_per_frame: int, seconds: float = 1.5) -> float:
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for f in frames:
            fn(f)
        n += len(frames)
    elapsed = time.perf_counter() - start
    per_s = n * records_per_frame / elapsed
    print(f"  {label:<44} {per_s:>12,.0f} records/s")
    return per_s


def efficiency(frame: bytes, mtu: int) -> float:
    frags = fragment(frame, mtu, 1)
    on_air = sum(len(f) + 3 for f in frags)  # ATT opcode + handle per notification
    return len(frame) / on_air


def main() -> int:
    frames = [log_page(1 + i * MAX_PAGE_RECORDS, MAX_PAGE_RECORDS) for i in range(8)]
    print(f"log page: {MAX_PAGE_RECORDS} records, {len(frames[0])} bytes per frame")
    print("host decode rate")
    compiled = rate("construct compiled (decode_frame)", decode_frame, frames, MAX_PAGE_RECORDS)
    rate("construct not compiled", lambda f: decode_frame(f, compiled=False), frames,
         MAX_PAGE_RECORDS)
    rate("firmware codec under CPython (wire.decode)", wire.decode, frames, MAX_PAGE_RECORDS)
    print("payload efficiency (message bytes / ATT bytes on the air)")
    telemetry = encode_frame(MsgType.EV_TELEMETRY, 1, {
        "elapsed_ms": 1, "strokes": 2, "depth_um": 500, "rate_x10": 1170, "motor_ma": 200,
        "temp_c10": 250, "battery_pct": 80, "contact": 1, "state": 2})
    effs = {}
    for mtu in (23, 185, 247, 517):
        effs[mtu] = efficiency(frames[0], mtu)
        print(f"  MTU {mtu:>3}: log page {effs[mtu]:6.1%}   telemetry "
              f"{efficiency(telemetry, mtu):6.1%}")
    ok_rate = compiled >= 200_000
    ok_eff = effs[247] >= 0.95
    print(f"target decode >= 200,000 records/s: {'met' if ok_rate else 'NOT met'}")
    print(f"target efficiency >= 95 % at MTU 247: {'met' if ok_eff else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
