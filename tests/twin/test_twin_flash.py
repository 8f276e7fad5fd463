"""`scalppen build` + `scalppen flash` over the twin's USB serial: after its reset the
pen runs, and reports over Bluetooth, the build that was flashed."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bleak import BleakClient

from scalppen.twin import boards_dir, firmware_dir
from scalppen_protocol import gatt
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig

SCALPPEN = str(Path(sys.executable).parent / "scalppen")


def _firmware_with_version(dest: Path, version: str) -> Path:
    fw = dest / "firmware"
    shutil.copytree(firmware_dir(), fw, ignore=shutil.ignore_patterns("__pycache__"))
    vfile = fw / "pen" / "version.py"
    text = re.sub(r'^VERSION = ".*"$', f'VERSION = "{version}"', vfile.read_text(), flags=re.M)
    vfile.write_text(text)
    return fw


def test_flash_a_new_version_and_the_pen_reports_it_after_its_reset(tmp_path: Path) -> None:
    new = "9.8.7"
    fw = _firmware_with_version(tmp_path, new)
    bundle = tmp_path / "bundle"

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            port = r.twin.open_serial()
            boots = r.twin.boots

            def cli(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run([SCALPPEN, *args], capture_output=True, text=True,
                                      timeout=120, cwd=tmp_path)

            built = await asyncio.get_running_loop().run_in_executor(None, lambda: cli(
                "build", "--firmware", str(fw), "--out", str(bundle),
                "--board", str(boards_dir() / "pen-s3-revb.json")))
            assert built.returncode == 0, built.stdout + built.stderr
            assert f"built firmware {new}" in built.stdout
            flashed = await asyncio.get_running_loop().run_in_executor(None, lambda: cli(
                "flash", "--port", port, "--bundle", str(bundle)))
            assert flashed.returncode == 0, flashed.stdout + flashed.stderr
            assert f"flashed firmware {new}" in flashed.stdout and "slot b" in flashed.stdout
            await wait_until(lambda: r.twin.boots > boots and r.twin.bridge is not None,
                             30.0, "the pen's reset")
            await r.twin.run_for(2000)
            flash = r.tmp / "pen-flash"
            assert (flash / "active").read_text() == "b"
            assert (flash / "good").read_text() == "b"  # the new build marked itself good
            assert await r.twin.probe("__import__('pen.app').app.__file__") == "/b/pen/app.mpy"
            assert r.radio.central is not None
            client = BleakClient(r.address, backend=r.radio.central.client_backend,
                                 timeout=20.0)
            await within(client.connect(), 20.0)
            try:
                revision = await within(client.read_gatt_char(
                    gatt.FIRMWARE_REVISION_CHAR_UUID))
            finally:
                await within(client.disconnect())
            assert revision.decode() == new

    run(scenario(), 240)


def test_a_build_that_does_not_start_rolls_back_to_the_last_good_one(tmp_path: Path) -> None:
    fw = _firmware_with_version(tmp_path, "6.6.6")
    app = fw / "pen" / "app.py"
    app.write_text('raise RuntimeError("this build cannot start")\n' + app.read_text())
    bundle = tmp_path / "bundle"

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as r:
            await r.twin.run_for(1000)
            assert (r.tmp / "pen-flash" / "good").read_text() == "a"
            port = r.twin.open_serial()
            boots = r.twin.boots

            def cli(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run([SCALPPEN, *args], capture_output=True, text=True,
                                      timeout=120, cwd=tmp_path)

            loop = asyncio.get_running_loop()
            built = await loop.run_in_executor(None, lambda: cli(
                "build", "--firmware", str(fw), "--out", str(bundle),
                "--board", str(boards_dir() / "pen-s3-revb.json")))
            assert built.returncode == 0, built.stdout + built.stderr
            flashed = await loop.run_in_executor(None, lambda: cli(
                "flash", "--port", port, "--bundle", str(bundle)))
            assert flashed.returncode == 0, flashed.stdout + flashed.stderr
            flash = r.tmp / "pen-flash"
            # three starts of slot b on trial, each failing and resetting, then boot.py
            # goes back to slot a, which runs and answers again
            await wait_until(lambda: (flash / "active").read_text() == "a"
                             and r.twin.boots >= boots + 4 and r.twin.bridge is not None,
                             60.0, "the rollback")
            await r.twin.run_for(2000)
            assert await r.twin.probe("__import__('pen.app').app.__file__") == "/a/pen/app.mpy"
            assert (flash / "good").read_text() == "a"
            assert "this build cannot start" in r.twin.console_text()
            assert "rolling back to slot a" in r.twin.console_text()

    run(scenario(), 240)
