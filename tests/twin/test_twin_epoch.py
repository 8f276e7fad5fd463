"""The twin's clock is the ESP32's (2000 epoch); the firmware keeps Unix time anyway.

Sibling of tests/firmware/test_epoch.py against the firmware bundle running in
MicroPython: ``time.gmtime(0)`` there is 2000-01-01, as on the ESP32, and the pen
reads and writes its RTC in Unix seconds through the app's conversion.
"""

from __future__ import annotations

import time
from pathlib import Path

from scalppen_protocol.auth import set_time_fields
from tests.e2e.vpen_fixtures import run
from tests.twin.twin_rig import EPOCH, twin_rig

Y2K = 946_684_800


def test_the_twin_pen_keeps_unix_time_over_the_esp32_epoch(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as rig:
            twin = rig.twin
            assert await twin.probe("__import__('time').gmtime(0)[:3]") in ([2000, 1, 1],
                                                                            (2000, 1, 1))
            # At boot the core got the RTC in Unix seconds (not "never set").
            clock = await twin.probe("app.pen.clock()")
            assert abs(clock - twin.unix_time()) <= 2 and clock > EPOCH - 60
            # A host's time (a day later) goes into the RTC as a calendar date.
            later = EPOCH + 86_400
            # (as a host does: the permit key first, then the clock signed with it)
            key = bytes(range(1, 33))
            assert await twin.probe(f"result = app.pen.set_key({key!r}, True)", exec_=True) == 0
            fields = set_time_fields(key, later)
            assert await twin.probe(f"result = app.pen.set_time({fields!r})", exec_=True) == 0
            await twin.run_for(2_500)
            year, month, day = (await twin.probe(
                "__import__('machine').RTC().datetime()"))[:3]
            assert (year, month, day) == time.gmtime(later)[:3], year
            assert abs(twin.unix_time() - (later + 2)) <= 2
            rtc_2000 = await twin.probe("__import__('time').time()")
            assert abs(rtc_2000 - (later + 2 - Y2K)) <= 2
            assert await twin.probe("__import__('pen.app').app._UNIX_OFFSET") == Y2K

    run(scenario(), 90)
