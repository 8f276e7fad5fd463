"""The twin's USB serial is its MicroPython REPL, as the pen's is."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import serial

from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_mpremote_runs_code_on_the_real_interpreter(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as rig:
            port = rig.twin.open_serial()
            done = await _in_thread(lambda: subprocess.run(
                [MPREMOTE, "connect", port, "exec", "import sys; print(sys.platform)", "+",
                 "ls", "/"], capture_output=True, text=True, timeout=60))
            assert done.returncode == 0, done.stderr
            lines = done.stdout.splitlines()
            assert lines[0] == "linux"  # the unix port's platform
            listing = "\n".join(lines[1:])
            assert "boot.py" in listing and "main.py" in listing and "a/" in listing
            # sizes as littlefs reports them, not zeros
            assert f"{(rig.tmp / 'pen-flash' / 'boot.py').stat().st_size} boot.py" in listing

    run(scenario(), 90)


def test_ctrl_c_on_the_usb_serial_stops_the_needles(tmp_path: Path) -> None:
    # Someone breaks into the pen's REPL in the middle of a session: the motor must
    # stop at once (rule 21), not keep the duty the interrupted loop last set.
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as rig:
            await rig.pair()
            pen = await rig.pen()
            try:
                await rig.start_session(pen)
                port = rig.twin.open_serial()

                def break_in() -> bytes:
                    with serial.Serial(port, 115200, timeout=0.2) as s:
                        s.write(b"\r\x03")
                        out = b""
                        end = time.monotonic() + 5
                        while b">>> " not in out and time.monotonic() < end:
                            out += s.read(4096)
                        return out

                boots = rig.twin.boots
                out = await _in_thread(break_in)
                assert b"KeyboardInterrupt" in out and out.endswith(b">>> "), out
                hw = rig.twin.hw
                await wait_until(lambda: hw.stroke_rate < 1.0, 10.0, "the needles to stop")
                # Stopped by the firmware, not by a watchdog reset: the REPL stays
                # (the watchdog, which cannot be stopped, got a maintenance timeout).
                await rig.twin.run_for(5000)
                assert rig.twin.boots == boots and rig.twin.hw is hw
                assert hw.motor.duty == 0.0
            finally:
                await within(pen.close(), 10.0)

    run(scenario(), 120)
