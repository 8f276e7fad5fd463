"""The pen's firmware request handler served over an in-memory loopback link.

``pen.handler.Handler`` over ``pen.core.Pen`` and ``pen.store.Store`` on a flash
directory (built as ``tests/firmware/rig.py`` does), answering every frame that
arrives on the pen's end of a :func:`~scalppen.transports.loopback.loopback_pair`.
No radio, no fragments and no virtual time: the fast path to the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from scalppen.client import Pen as Client
from scalppen.transports.base import LinkLost
from scalppen.transports.loopback import LoopbackTransport
from tests.e2e.sync_fixtures import CuttableLoopback
from tests.e2e.vpen_fixtures import within

BOARD = Path(__file__).resolve().parents[2] / "hardware" / "boards" / "pen-s3-revb.json"
SERIAL = "SP3-100PBK"


class FirmwarePen:
    """The firmware's core, store and handler on ``flash`` (a directory)."""

    def __init__(self, flash: Path, unix: int = 1_780_000_000) -> None:
        from pen.board import Board
        from pen.core import Pen
        from pen.fsio import Fs
        from pen.handler import Handler
        from pen.store import Store

        self.board = Board(json.loads(BOARD.read_text()))
        self.store = Store(Fs(str(flash)))
        self.pen = Pen(self.board, self.store, unix)
        self.pen.serial = SERIAL
        self.handler = Handler(self.pen)
        self.served = 0
        self._server: asyncio.Task[None] | None = None

    async def _serve(self, end: LoopbackTransport) -> None:
        """Answer every request on ``end`` until its link goes down."""
        with contextlib.suppress(LinkLost):
            while True:
                frame = await end.recv_frame()
                self.served += 1
                for answer in self.handler.handle(frame, True):
                    await end.send_frame(answer)

    async def connect(self) -> tuple[Client, CuttableLoopback]:
        """A new link (the last one is gone) and a client on it that said HELLO."""
        await self.stop()
        host = CuttableLoopback("host")
        end = LoopbackTransport("pen")
        host.peer, end.peer = end, host
        await end.connect()
        self.handler.link_reset()
        self._server = asyncio.create_task(self._serve(end), name="firmware-pen")
        client = Client(host, timeout=5.0)
        await within(client.__aenter__())
        return client, host

    async def stop(self) -> None:
        """End the server of the last link (it ends by itself once that link drops)."""
        server, self._server = self._server, None
        if server is not None:
            await within(server)
