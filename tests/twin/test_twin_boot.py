"""The twin boots the bundle as the pen does and talks to the host over Bluetooth."""

from __future__ import annotations

from pathlib import Path

from scalppen_protocol.codes import PenState
from tests.e2e.vpen_fixtures import run, within
from tests.twin.twin_rig import twin_rig


def test_the_bundle_boots_in_micropython_and_marks_itself_good(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as rig:
            twin = rig.twin
            assert await twin.probe("__import__('sys').implementation.name") == "micropython"
            assert await twin.probe("__import__('sys').platform") == "linux"
            # The app came from slot a's .mpy files, started by boot.py and main.py.
            assert await twin.probe("__import__('pen.app').app.__file__") == "/a/pen/app.mpy"
            # the board module's code is gone once the board is read (pen/app.py):
            # its heap is back, the board kept as plain data
            assert await twin.probe("'pen.board' not in __import__('sys').modules and "
                                    "not hasattr(__import__('pen'), 'board')")
            assert await twin.probe("app.board.wire_limits['grid_um']") == 250
            await twin.run_for(2000)
            assert (rig.tmp / "pen-flash" / "good").read_text() == "a"
            assert await twin.probe("app.pen.state") == PenState.IDLE
            assert "Traceback" not in twin.console_text(), twin.console_text()

    run(scenario(), 60)


def test_a_host_pairs_says_hello_and_reads_status(tmp_path: Path) -> None:
    # NimBLE never reports the host's CCCD write: the pen must count the host as
    # linked once the link is authenticated and the host said HELLO, or it is mute.
    async def scenario() -> None:
        async with twin_rig(tmp_path) as rig:
            paired = await rig.pair()
            assert paired.info.serial.startswith("SP3-")
            pen = await rig.pen()
            try:
                status = await within(pen.status())
                assert status.state == PenState.IDLE
                assert await rig.twin.probe("app.pen.clock()") > 1_700_000_000
            finally:
                await pen.close()

    run(scenario(), 90)
