"""smpclient's bleak transport on a link the toolkit already holds.

``SMPBLETransport`` (smpclient 7.3) finds the device by scanning and makes its own
``BleakClient``. On the operating system's stack (BlueZ) the toolkit's
``BleakClient`` is already connected and its link encrypted by the bond, so this
transport adopts it instead: the same post-connect steps as smpclient's
``_connect`` (the SMP characteristic, the write size, notifications) without a
second connection or pairing. It works on any bleak backend, the toolkit's bumble
one included, which is how the tests drive it against the twin.

The link stays the toolkit's: ``disconnect`` stops the notifications only. A
link that drops ends a waiting request at once (smpclient raises
``SMPTransportDisconnected``), as the toolkit's own disconnect callback is not
smpclient's: a watcher polls the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from smpclient.transport import SMP_CHARACTERISTIC_UUID
from smpclient.transport.ble import SMPBLETransport, SMPBLETransportNotSMPServer

_WATCH_S = 0.1


class AdoptedBLETransport(SMPBLETransport):
    """An ``SMPBLETransport`` over ``client``, a connected ``bleak.BleakClient``."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self._client = client
        self._watch: asyncio.Task[None] | None = None

    async def connect(self, address: str, timeout_s: float) -> None:
        client = self._client
        if not client.is_connected:
            raise SMPBLETransportNotSMPServer("the link to the pen is down")
        char = client.services.get_characteristic(SMP_CHARACTERISTIC_UUID)
        if char is None:
            raise SMPBLETransportNotSMPServer("the pen has no SMP characteristic")
        self._smp_characteristic = char
        if self._bluez_backend(client._backend):
            await client._backend._acquire_mtu()  # as smpclient does on BlueZ
            self._max_write_without_response_size = client.mtu_size - 3
        else:
            self._max_write_without_response_size = char.max_write_without_response_size
        self._disconnected_event.clear()
        await asyncio.wait_for(client.start_notify(
            char, self._notify_callback),  # type: ignore[arg-type]  # smpclient types it bytes
            timeout_s)
        self._watch = asyncio.create_task(self._watch_link())

    async def _watch_link(self) -> None:
        while self._client.is_connected:
            await asyncio.sleep(_WATCH_S)
        self._disconnected_event.set()

    async def disconnect(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._client.is_connected:
            with contextlib.suppress(Exception):  # the link is the toolkit's to close
                await self._client.stop_notify(self._smp_characteristic)
