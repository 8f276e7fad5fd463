"""A small virtual pen for BLE tests: the virtual ``bluetooth`` + ``pen.ble`` with an echo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bumble.link import LocalLink

from scalppen_hardware import ble_radio

PEN_ADDRESS = "C0:5C:A1:00:00:01"
INFO = {
    "name": "ScalpPen-0001",
    "manufacturer": "Scalppen Medical",
    "model": "SP-1",
    "serial": "SP1-000001",
    "firmware": "0.1.0",
    "hardware": "rev-b",
    "battery": 87,
}
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 25.0) -> T:
    """Run one test scenario on a fresh loop; a hang fails after ``timeout`` s."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class VirtualPen:
    """The pen's radio, BLE stack and GATT service, with an echoing ``on_rx``."""

    def __init__(self, link: LocalLink, secrets: Path, address: str = PEN_ADDRESS) -> None:
        self.radio = ble_radio.VirtualRadio(link, address, name="pen")
        self.secrets = secrets
        self.rx: list[bytes] = []
        self.passkeys: list[int | None] = []
        self.link_events: list[bool] = []
        self.echo = True
        #: The pairing window the pen's button opens, and the pen's clock (ms).
        self.window_open = False
        self.clock_ms = 0
        self._passkey_shown = asyncio.Event()
        self.ble: Any = None
        self.pen: Any = None

    def boot(self) -> None:
        ble_radio.attach(self.radio)
        import bluetooth
        from pen.ble import PenBle

        self.ble = bluetooth.BLE()
        self.pen = PenBle(
            self.ble,
            INFO,
            str(self.secrets),
            on_rx=self._on_rx,
            on_passkey=self._on_passkey,
            on_link=self.link_events.append,
            window_open=lambda: self.window_open,
            clock=lambda: self.clock_ms,
        )

    async def reboot(self) -> None:
        await self.radio.power_off()
        self.boot()
        await self.ble.idle()

    def _on_rx(self, conn: int, data: bytes) -> None:
        self.rx.append(bytes(data))
        if self.echo:
            self.pen.send(bytes(data))

    def _on_passkey(self, conn: int, passkey: int | None) -> None:
        self.passkeys.append(passkey)
        if passkey is not None:
            self._passkey_shown.set()

    def passkey_provider(self, offset: int = 0) -> Callable[[], Awaitable[int]]:
        """What the user types: the passkey the pen shows (plus ``offset``, to get it wrong)."""

        async def provide() -> int:
            await asyncio.wait_for(self._passkey_shown.wait(), 10)
            self._passkey_shown.clear()
            shown = [p for p in self.passkeys if p is not None][-1]
            return (shown + offset) % 1000000

        return provide

    @property
    def shown_passkeys(self) -> list[int]:
        return [p for p in self.passkeys if p is not None]


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true; TimeoutError otherwise."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
