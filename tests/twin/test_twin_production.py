"""A production build (``scalppen build --production``; issue 13 item 4) in the twin:
it says so in INFO, serves no bench UART, and never falls back to the REPL: Ctrl-C
on the USB port stops the needles and resets the pen, which boots the app again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import serial

from scalppen.flash.build import build_bundle, find_board, load_bundle
from scalppen.twin import boards_dir, firmware_dir
from tests.e2e.vpen_fixtures import run, wait_until, within
from tests.twin.twin_rig import twin_rig
from tests.twin.twin_watch import probe


def _ctrl_c(port: str) -> bytes:
    with serial.Serial(port, 115200, timeout=0.2) as s:
        s.write(b"\r\x03")
        out = b""
        end = time.monotonic() + 4
        while time.monotonic() < end:
            out += s.read(4096)
        return out


def test_a_production_pen_reports_it_and_never_shows_the_repl(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    manifest = build_bundle(firmware_dir(), bundle, find_board(boards_dir(), "pen-s3-revb"),
                            production=True)
    assert manifest.profile == "production" and load_bundle(bundle).profile == "production"

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0, bundle_dir=bundle) as r:
            await r.pair()
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.profile == "production"
                await r.start_session(pen, 500)
            finally:
                await within(pen.close())
            assert await probe(r.twin, "app.bench is None")  # no bench UART
            twin = r.twin
            boots = twin.boots
            port = twin.open_serial()
            out = await asyncio.get_running_loop().run_in_executor(None, _ctrl_c, port)
            assert b">>>" not in out, out  # no REPL, ever
            await wait_until(lambda: twin.boots > boots, 20.0, "the pen to reset")
            await wait_until(lambda: twin.hw.stroke_rate < 1.0, 10.0, "the needles to stop")

    run(scenario(), 150)


def test_a_development_build_says_so() -> None:
    from scalppen.twin import factory_bundle

    assert load_bundle(factory_bundle()).profile == "development"
