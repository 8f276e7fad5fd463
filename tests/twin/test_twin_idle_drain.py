"""Idle drain (issue 14 item 7): the virtual pen went from 80 % to 0 in 2.5 virtual
hours at idle, because the firmware kept the stepper driver's holding current on
(120 mA of the board's 190 mA) with the needles home. Now the driver is off when
retracted and idle, and the cell drains at the MCU's idle current with the radio
advertising (the board's base_load_ma, docs/fidelity.md) until it powers itself off
(tests/twin/test_twin_auto_off.py); the charger charges it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.vpen_fixtures import run, within
from tests.twin.twin_rig import twin_rig

BOARD = Path(__file__).resolve().parents[2] / "hardware" / "boards" / "pen-s3-revb.json"


def test_an_idle_pen_drains_at_its_idle_current_and_charges(tmp_path: Path) -> None:
    bat = json.loads(BOARD.read_text())["battery"]
    # nine virtual minutes awake at the idle current (the pen sleeps after ten):
    # what it costs of the cell, in percent
    expected = bat["base_load_ma"] / bat["capacity_mah"] * 100 * 540 / 3600

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await within(r.twin.run_for(10_000))  # homed, idle
            assert not r.twin.hw.body.stepper.enabled  # no holding current at idle
            soc0 = r.twin.hw.body.battery.soc
            await within(r.twin.run_for(540_000), 600.0)
            assert not r.twin.asleep
            used = soc0 - r.twin.hw.body.battery.soc
            assert 0.8 * expected < used < 1.3 * expected, (used, expected)
            assert not r.twin.hw.body.stepper.enabled
            r.twin.hw.plug_charger(True)
            soc1 = r.twin.hw.body.battery.soc
            await within(r.twin.run_for(300_000), 300.0)
            assert r.twin.hw.body.battery.soc > soc1 + 3  # 400 mA for 5 min: ~5 %

    run(scenario(), 900)
