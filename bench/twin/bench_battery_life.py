"""Battery life of an idle pen: days from 80 % with the auto power-off (issue 14 item 7).

For each board in hardware/boards: the firmware bundle boots in the twin with its
cell at 80 %, nobody connects, and the pen runs awake (the board's base_load_ma,
the radio advertising) until it powers itself off after idle_off_s
(firmware/pen/idleoff.py); from there the cell's model runs on at the board's
deep-sleep current (its ``deep_sleep`` figures, with their sources) plus the
cell's self-discharge, until it is empty. Printed per board: the minutes awake
and what they cost, the current asleep, the days from 80 % to the 20 % reserve and
to empty; and, beside it, what the same pen lasted awake (no power-off).

Run: ``.venv/bin/python bench/twin/bench_battery_life.py``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for sub in ("host", "protocol", "hardware"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from scalppen.twin import make_twin  # noqa: E402
from scalppen_hardware import ble_radio, upy  # noqa: E402
from scalppen_hardware.board import list_boards, load_board  # noqa: E402
from scalppen_hardware.virtual_pen_hw import deep_sleep_ua, self_discharge_ma  # noqa: E402

START_PCT = 80.0
RESERVE_PCT = 20.0
DAY_S = 86_400
HOUR_US = 3_600_000_000


def say(label: str, value: str) -> None:
    print(f"  {label:<52} {value}", flush=True)


async def one_board(name: str, tmp: Path) -> None:
    board = load_board(name)
    bat = board["battery"]
    twin = make_twin(tmp / name, ble_radio.new_link(), board=name, speed=None,
                     soc_pct=START_PCT, epoch=1_780_000_000)
    t0 = time.monotonic()
    await twin.start()
    try:
        start_us = twin.clock.world_us
        while not twin.asleep:
            await asyncio.wait_for(twin.run_for(10_000), 60.0)
            if twin.clock.world_us - start_us > 3 * HOUR_US:
                raise RuntimeError(f"{name}: the idle pen did not power itself off in 3 h")
        awake_s = (twin.clock.world_us - start_us) / 1e6
        soc_asleep = twin.hw.body.battery.soc
    finally:
        await twin.stop()
        ble_radio.attach(None)
        upy.uninstall()
    hw = twin.hw  # the body and the sleeping chip: the cell runs on without a process
    asleep_at = hw.clock.world_us
    reserve_at = None
    while hw.asleep and hw.body.battery.soc > 0.0:
        hw.sleep_for(24 * 3_600_000, step_us=HOUR_US)
        if reserve_at is None and hw.body.battery.soc <= RESERVE_PCT:
            reserve_at = hw.clock.world_us
        if hw.clock.world_us - asleep_at > 20 * 365 * DAY_S * 1_000_000:
            break
    empty_s = awake_s + (hw.clock.world_us - asleep_at) / 1e6
    reserve_s = awake_s + ((reserve_at or hw.clock.world_us) - asleep_at) / 1e6
    sleep_ua = deep_sleep_ua(board) + self_discharge_ma(board) * 1000
    awake_h = START_PCT / 100 * bat["capacity_mah"] / bat["base_load_ma"]
    print(f"{name}: {bat['capacity_mah']} mAh, {bat['base_load_ma']} mA awake, "
          f"idle_off_s {board['limits'].get('idle_off_s', 600)}")
    say("awake before powering off", f"{awake_s / 60:.1f} min, "
        f"{START_PCT - soc_asleep:.2f} % of the cell")
    say("asleep: board + cell self-discharge", f"{deep_sleep_ua(board):.0f} uA + "
        f"{self_discharge_ma(board) * 1000:.0f} uA = {sleep_ua:.0f} uA")
    say(f"days from {START_PCT:.0f} % to the {RESERVE_PCT:.0f} % reserve",
        f"{reserve_s / DAY_S:.0f}")
    say(f"days from {START_PCT:.0f} % to empty", f"{empty_s / DAY_S:.0f}")
    say("without the power-off (awake all along)", f"{awake_h:.1f} h to empty")
    say("wall time", f"{time.monotonic() - t0:.1f} s")


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="scalppen-battery-") as d:
        for name in list_boards():
            await one_board(name, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
