"""The virtual pen's reboots: the real firmware over the same flash after power loss,
brown-out and a firmware crash; nothing resumes without a new start (rule 21)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from scalppen.policy.permits import sign_permit
from scalppen_hardware import ble_radio
from scalppen_hardware.virtual_pen import VirtualPen
from scalppen_protocol.auth import set_time_fields
from scalppen_protocol.messages import LogRecord

pytestmark = pytest.mark.timeout(120)

KEY = bytes(range(1, 33))


def _permit(unix: int, depth_um: int = 500, seconds: int = 600) -> dict[str, Any]:
    return sign_permit(KEY, depth_um, seconds, unix, unix + 300, os.urandom(8)).as_dict()


def _running_pen(vpen: VirtualPen) -> Any:
    """Arm and start the firmware directly (no host), on skin with a new cartridge."""
    vpen.hw.insert_cartridge("new")
    vpen.hw.set_contact(True)
    # A host is connected and said HELLO (these tests are about the body's power,
    # not the radio): a START with the link down is refused, as nobody would watch.
    vpen.app.ble._link_up = True
    vpen.app.handler.hello = True
    vpen.step(1500)  # homing, cartridge read
    pen = vpen.app.pen
    unix = vpen.unix_time()
    assert pen.set_key(KEY, True) == 0
    assert pen.set_time(set_time_fields(KEY, unix)) == 0
    assert pen.arm(_permit(unix)) == 0
    assert pen.set_depth(500) == 0
    assert pen.start() == 0
    vpen.step(3000)
    assert vpen.hw.stroke_rate > 90
    return pen


def _records(vpen: VirtualPen) -> list[dict[str, Any]]:
    _first, _last, recs = vpen.app.store.read(1, 160)
    return [dict(LogRecord.parse(r)) if isinstance(r, bytes | bytearray) else r for r in recs]


async def _with_pen(tmp_path: Path, scenario: Any) -> None:
    vpen = VirtualPen(tmp_path / "flash", ble_radio.new_link(), speed=None, epoch=time.time())
    await vpen.start()
    vpen.pause()
    try:
        await asyncio.wait_for(scenario(vpen), 60)
    finally:
        await vpen.stop()


@pytest.mark.parametrize("fault", ["power_loss", "brownout"])
def test_power_failure_mid_session_reboots_safe(tmp_path: Path, fault: str) -> None:
    async def scenario(vpen: VirtualPen) -> None:
        _running_pen(vpen)
        boots = vpen.boots
        vpen.hw.inject(fault)
        await vpen._tick_batch(20)  # the hardware reports the reset; the pen reboots
        assert vpen.boots == boots + 1
        vpen.step(2000)
        pen = vpen.app.pen
        assert pen.state != 2  # not RUNNING: nothing resumes by itself (rule 21)
        assert vpen.hw.stroke_rate == 0
        assert vpen.hw.depth_um < 100
        ends = [r for r in _records(vpen) if r["kind"] == 6]
        assert ends and ends[-1]["flags"] & 1  # the session is closed as interrupted
        assert pen.start() != 0  # the permit did not survive the reset

    asyncio.run(_with_pen(tmp_path, scenario))


def test_firmware_crash_stops_motor_and_reboots(tmp_path: Path) -> None:
    async def scenario(vpen: VirtualPen) -> None:
        pen = _running_pen(vpen)
        boots = vpen.boots

        def broken(*_: Any) -> None:
            raise RuntimeError("injected firmware bug")

        pen.tick = broken
        await vpen._tick_batch(20)
        assert vpen.errors and "injected" in str(vpen.errors[-1])
        assert vpen.boots == boots + 1
        vpen.step(500)
        assert vpen.hw.stroke_rate == 0
        assert vpen.app.pen.state != 2

    asyncio.run(_with_pen(tmp_path, scenario))


def test_watchdog_resets_a_pen_that_stops_feeding_it(tmp_path: Path) -> None:
    async def scenario(vpen: VirtualPen) -> None:
        _running_pen(vpen)
        boots = vpen.boots
        vpen.app.pen.broken = True  # the core found an internal error: no more feeding
        for _ in range(100):  # the board's watchdog timeout, in virtual time
            await vpen._tick_batch(20)
            if vpen.boots > boots:
                break
        assert vpen.boots == boots + 1
        vpen.step(500)
        assert vpen.hw.stroke_rate == 0 and vpen.app.pen.state != 2

    asyncio.run(_with_pen(tmp_path, scenario))
