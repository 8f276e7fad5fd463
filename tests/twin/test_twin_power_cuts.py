"""Power cuts in the twin at moments spread over a session, beside the in-process
suite that cuts at each of the store's write points (tests/firmware/test_write_points.py).

Here the cut lands wherever the real firmware is in its own loop, in MicroPython,
with its flash on the host's disk: after the reset, every record the host had
synced is still on the pen, byte for byte; new records go on without reusing a
seq; the session is closed as interrupted; wear counters never go backwards;
nothing resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.client import PenRefused
from scalppen.workflows.logsync import sync_log
from scalppen_protocol.codes import PenState
from tests.e2e.sync_fixtures import host_rows
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig

#: virtual ms after START at which the power goes (ticks of 10 ms, spread out)
CUT_AFTER_MS = (30, 1_230, 4_570)


@pytest.mark.parametrize("after_ms", CUT_AFTER_MS)
def test_power_cut_mid_session_loses_nothing_acknowledged(tmp_path: Path,
                                                           after_ms: int) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.pair()
            pen = await r.pen()
            await within(sync_log(pen, r.db, r.serial, now=r.now()), 30.0)
            synced = host_rows(r.db, r.serial)
            wear0 = await within(pen.wear())
            await r.start_session(pen)
            await r.twin.run_for(after_ms)
            boots = r.twin.boots
            r.twin.hw.inject("power_loss")
            await within(pen.close())
            await wait_until(lambda: r.twin.boots > boots and r.twin.bridge is not None,
                             30.0, "the pen to power up again")
            await r.twin.run_for(2000)
            hw = r.twin.hw
            assert hw.stroke_rate < 1.0 and hw.motor.duty == 0.0

            again = await r.pen()
            try:
                assert (await within(again.status())).state != PenState.RUNNING
                with pytest.raises(PenRefused):
                    await within(again.start())
                wear1 = await within(again.wear())
                assert wear1.hp_strokes >= wear0.hp_strokes
                assert wear1.hp_sessions >= wear0.hp_sessions + 1
                result = await within(sync_log(again, r.db, r.serial, now=r.now()), 30.0)
                assert result.gaps == [] and result.duplicates == 0
            finally:
                await within(again.close())
            rows = host_rows(r.db, r.serial)
            assert rows[:len(synced)] == synced  # what was synced is still the pen's log
            seqs = [row[0] for row in rows]
            assert seqs == sorted(set(seqs)) and seqs == list(range(1, len(seqs) + 1))
            # a fresh store reads the whole log from the pen: the same records again
            fresh = S.open_store(r.tmp / "fresh.db")
            try:
                S.upsert_pen(fresh, r.serial, ble_address=r.address)
                check = await r.pen()
                try:
                    await within(sync_log(check, fresh, r.serial, now=r.now()), 30.0)
                finally:
                    await within(check.close())
                assert host_rows(fresh, r.serial) == rows
            finally:
                fresh.close()

    run(scenario(), 150)
