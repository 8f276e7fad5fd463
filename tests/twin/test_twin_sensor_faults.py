"""Sensor faults on the twin (the real firmware bundle in MicroPython over the
models): a hall sensor that loses one pulse in four, and a fuel gauge that drops
off the I2C bus, each mid-session. The pen stops the needles and says why
(rules 8, 12, 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalppen_protocol.codes import ErrorCode, PenState
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig


@pytest.mark.parametrize(("fault", "params", "code"), [
    ("hall_pulse_loss", {"every": 4}, ErrorCode.FAULT_STROKE_MISMATCH),
    ("gauge_off_bus", {}, ErrorCode.FAULT_GAUGE),
])
def test_a_sensor_fault_mid_session_stops_the_twin(tmp_path: Path, fault: str,
                                                   params: dict[str, int],
                                                   code: ErrorCode) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            pen = await r.pen()
            try:
                await r.start_session(pen)
                hw = r.twin.hw
                await r.twin.run_for(1500)  # past the soft start and the settle
                assert hw.motor.duty > 0.0
                boots = r.twin.boots
                strokes = hw.body.strokes
                hw.inject(fault, **params)
                await wait_until(lambda: hw.motor.duty == 0.0, 20.0, "the motor to stop")
                # stopped within a rate window (hall) or a gauge poll (gauge), not later
                assert hw.body.strokes - strokes < 90
                assert r.twin.boots == boots  # a fault, not a reset
                status = await r.until_status(
                    pen, lambda s: s.state in (PenState.FAULT, PenState.HOMING, PenState.IDLE),
                    "the fault")
                assert status.fault == code
                assert hw.depth_um <= 50 or status.state != PenState.RUNNING
            finally:
                await within(pen.close())

    run(scenario(), 150)
