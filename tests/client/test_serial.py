"""SerialTransport over a real pseudo-terminal, with a scripted pen on the master side."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import tty
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from pen import link, wire

from scalppen.client import LinkLost, Pen
from scalppen.transports.serial import PortBusy, PortNotFound, SerialTransport
from scalppen_protocol.codes import ErrorCode
from tests.client.scripted_pen import ScriptedPen, run

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal"),
]


class PtyPen:
    """The scripted pen on the master end of a pty, driven by the event loop."""

    def __init__(self, pen: ScriptedPen) -> None:
        self.pen = pen
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.deframer = link.Deframer()
        self.damage_next = 0
        self.closed = False

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        for item in self.deframer.feed(data):
            if isinstance(item, Exception):
                self.pen.errors.append(item)
                continue
            for answer in self.pen.handle(item):
                self.send(answer)

    def send(self, frame: bytes) -> None:
        packet = link.encode_packet(frame)
        if self.damage_next:
            self.damage_next -= 1
            bad = bytearray(packet)
            bad[3] = bad[3] ^ 0x01 or 0x02  # flip a bit; never make a zero
            os.write(self.master, bytes(bad))
        os.write(self.master, packet)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


@asynccontextmanager
async def pty_pen(scripted: ScriptedPen | None = None) -> AsyncIterator[PtyPen]:
    far = PtyPen(scripted or ScriptedPen())
    far.start()
    try:
        yield far
    finally:
        far.close()


def test_pen_over_a_pty() -> None:
    async def body() -> None:
        async with pty_pen() as far:
            far.pen.log_last = 200
            async with Pen(SerialTransport(far.path), timeout=2.0) as client:
                assert client.info is not None and client.info.model == "SP-1"
                assert (await client.status()).battery_pct == 81
                result = await client.sync_log(1)
                assert len(result.records) == 200 and result.complete
                await client.set_depth(750)
                assert not client.problems
            assert far.pen.errors == []

    run(body())


def test_bad_crc_packet_is_dropped_and_reported() -> None:
    async def body() -> None:
        async with pty_pen() as far:
            transport = SerialTransport(far.path)
            async with Pen(transport, timeout=2.0) as client:
                far.damage_next = 1
                status = await client.status()  # the intact copy that follows is used
                assert status.battery_pct == 81
                assert transport.link_errors == 1
                assert [p.kind for p in client.problems] == ["link"]
                assert client.problems[0].code is ErrorCode.BAD_CRC
                far.damage_next = 1
                assert (await client.wear()).needles == 12
                assert transport.link_errors == 2

    run(body())


def test_garbage_on_the_line_is_survived() -> None:
    async def body() -> None:
        async with pty_pen() as far:
            transport = SerialTransport(far.path)
            async with Pen(transport, timeout=2.0) as client:
                os.write(far.master, b"\x00boot log line\r\n\x00\x05\x01\x02\x00")
                await asyncio.sleep(0.1)
                assert transport.link_errors >= 1
                assert (await client.status()).battery_pct == 81

    run(body())


def test_no_such_port() -> None:
    async def body() -> None:
        with pytest.raises(PortNotFound, match="no serial port"):
            await SerialTransport("/dev/scalppen-does-not-exist").connect()

    run(body())


def test_port_busy() -> None:
    async def body() -> None:
        async with pty_pen() as far:
            first = SerialTransport(far.path)
            await first.connect()
            try:
                with pytest.raises(PortBusy, match="busy"):
                    await SerialTransport(far.path).connect()
            finally:
                await first.close()

    run(body())


def test_unplugged_pen_fails_pending_requests() -> None:
    async def body() -> None:
        async with pty_pen() as far:
            far.pen.silent[wire.T_GET_STATUS] = -1
            async with Pen(SerialTransport(far.path), timeout=10.0) as client:
                task = asyncio.create_task(client.status())
                while far.pen.counts[wire.T_GET_STATUS] == 0:
                    await asyncio.sleep(0.005)
                started = time.monotonic()
                far.close()  # the other end goes away
                with pytest.raises(LinkLost):
                    await task
                assert time.monotonic() - started < 2.0

    run(body())


def test_close_is_idempotent_and_stops_the_reader() -> None:
    async def body() -> None:
        async with pty_pen() as far:
            transport = SerialTransport(far.path)
            await transport.connect()
            thread = transport._thread
            await transport.close()
            await transport.close()
            assert thread is not None and not thread.is_alive()
            assert not transport.connected

    run(body())
