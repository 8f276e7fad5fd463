"""The pen's bench UART: the same frames over a serial line (COBS + CRC-16), read-only
plus STOP, served by the firmware bundle in the twin (MicroPython, its ``machine.UART``
on the body's pty); the host's SerialTransport and the command line's ``--serial``
against it."""

from __future__ import annotations

import asyncio
import json
import os
import select
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from scalppen.client import Pen, PenRefused
from scalppen.flash.build import production_board
from scalppen.transports.serial import SerialTransport
from scalppen.twin import boards_dir, make_twin
from scalppen_hardware import ble_radio
from scalppen_hardware.twin.pen import TwinPen
from scalppen_protocol.codec import decode_frame, encode_frame
from scalppen_protocol.codes import (
    MAX_PAGE_RECORDS,
    RUNNING_PAGE_RECORDS,
    ErrorCode,
    MsgType,
    PenState,
)
from scalppen_protocol.serial_framing import decode_packet, encode_packet
from tests.e2e.vpen_fixtures import run, within
from tests.twin.twin_rig import twin_rig

pytestmark = pytest.mark.timeout(120)


def _run(tmp_path: Path, scenario: Callable[[TwinPen, str], Awaitable[None]]) -> None:
    async def main() -> None:
        vpen = make_twin(tmp_path / "flash", ble_radio.new_link(), speed=50, epoch=time.time())
        await vpen.start()
        try:
            cfg = vpen.board["bench_uart"]
            port = vpen.hw.uart_port(int(cfg["id"])).path
            await asyncio.wait_for(scenario(vpen, port), 90)
        finally:
            await vpen.stop()

    asyncio.run(main())


def test_bench_uart_serves_reads_and_stop_only(tmp_path: Path) -> None:
    async def scenario(vpen: TwinPen, port: str) -> None:
        async with Pen(SerialTransport(port), timeout=5.0) as pen:
            assert pen.info is not None and pen.info.serial == await vpen.probe("app.serial")
            status = await pen.status()
            assert status.battery_pct > 0
            page = await pen.read_log(1, 20)
            assert page.records and page.records[0].seq == 1
            await pen.wear()
            await pen.stop()  # always allowed: STOP is safe from anywhere
            for call, msg in (
                (pen.set_time(int(time.time()), bytes(range(32))), MsgType.SET_TIME),
                (pen.log_ack(1, bytes(range(32))), MsgType.LOG_ACK),
                (pen.set_key(bytes(range(32))), MsgType.SET_KEY),
                (pen.set_depth(500), MsgType.SET_DEPTH),
                (pen.start(), MsgType.START),
            ):
                with pytest.raises(PenRefused) as refused:
                    await call
                assert refused.value.code == ErrorCode.NOT_AUTHORIZED, msg
            assert await vpen.probe("app.pen.store.c['key']") in (None, "")  # nothing changed

    _run(tmp_path, scenario)


def test_bench_uart_survives_damaged_packets(tmp_path: Path) -> None:
    async def scenario(vpen: TwinPen, port: str) -> None:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"\x05\x01\x02\x03\x04\x00" + bytes(range(1, 200)) + b"\x00")
        finally:
            os.close(fd)
        await vpen.run_for(200)
        async with Pen(SerialTransport(port), timeout=5.0) as pen:
            assert (await pen.status()).battery_pct > 0
        assert await vpen.probe("app.link_errors") >= 2

    _run(tmp_path, scenario)


def test_command_line_over_the_bench_uart(tmp_path: Path) -> None:
    async def cli(*args: str) -> tuple[int, str]:
        env = dict(os.environ, SCALPPEN_HOME=str(tmp_path), COLUMNS="200")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scalppen.cli", "--db", str(tmp_path / "db"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return int(proc.returncode or 0), out.decode()

    async def scenario(vpen: TwinPen, port: str) -> None:
        code, out = await cli("--serial", port, "status")
        assert code == 0, out
        assert await vpen.probe("app.serial") in out and "idle" in out
        code, out = await cli("--serial", port, "logs", "sync")
        assert code == 0, out
        assert "new" in out
        code, out = await cli("--serial", port, "session", "start", "--depth", "0.5",
                              "--sterilised")
        assert code == 2 and "paired BLE link" in out and "Traceback" not in out

    _run(tmp_path, scenario)




def _read_packets(fd: int, want: int, seconds: float) -> list[bytes]:
    """Packets (COBS, 0-delimited) read from ``fd`` until ``want`` or the time is up."""
    buf = b""
    end = time.monotonic() + seconds
    while buf.count(b"\x00") < want and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            buf += os.read(fd, 65536)
    return [p for p in buf.split(b"\x00") if p]


def test_a_request_flood_on_the_bench_uart_never_blocks_a_running_tick(tmp_path: Path) -> None:
    # 60 full-page LOG_READs in one burst while the needles move. Written as they
    # came, the answers (tens of kB) would block machine.UART.write for seconds
    # (it waits for room in the driver's TX buffer) and the control loop with it.
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=20.0) as rig:
            await rig.pair()
            pen = await rig.pen()
            try:
                await rig.start_session(pen)
                twin = rig.twin
                port = twin.hw.uart_port(int(twin.board["bench_uart"]["id"])).path
                fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                try:
                    os.write(fd, b"".join(
                        encode_packet(encode_frame(MsgType.LOG_READ, seq, {
                            "from_seq": 1, "max_records": MAX_PAGE_RECORDS}))
                        for seq in range(60)))
                    reader = asyncio.get_running_loop().run_in_executor(
                        None, _read_packets, fd, 60, 20.0)
                    await twin.run_for(100)
                    # Metered: one request a tick while running, the rest wait.
                    assert await twin.probe("len(app.bench_q)") > 0
                    await twin.run_for(8000)
                    packets = await reader
                finally:
                    os.close(fd)
                assert await twin.probe("len(app.bench.blocked_us)") == 0
                assert (await within(pen.status())).state == PenState.RUNNING
                pages = [decode_frame(decode_packet(p)) for p in packets]
                assert len(pages) == 60 and {f.msg_type for f in pages} == {MsgType.LOG_PAGE}
                # Short pages while running, as on the radio.
                assert all(len(f.fields["records"]) <= RUNNING_PAGE_RECORDS for f in pages)
            finally:
                await within(pen.close(), 10.0)

    run(scenario(), 150)


def test_a_board_without_the_bench_uart_switched_on_has_none(tmp_path: Path) -> None:
    # A production build ships the board with the bench UART off.
    revb = json.loads((boards_dir() / "pen-s3-revb.json").read_text())
    board = tmp_path / "pen-production.json"
    board.write_text(json.dumps(production_board(revb)))

    async def main() -> None:
        vpen = make_twin(tmp_path / "flash", ble_radio.new_link(), board=str(board), speed=50,
                         epoch=time.time())
        await vpen.start()
        try:
            assert await vpen.probe("app.bench") is None
            port = vpen.hw.uart_port(int(revb["bench_uart"]["id"])).path
            fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(fd, encode_packet(encode_frame(MsgType.GET_STATUS, 1, {})))
                await vpen.run_for(500)
                assert _read_packets(fd, 1, 0.5) == []
            finally:
                os.close(fd)
        finally:
            await vpen.stop()

    asyncio.run(main())
