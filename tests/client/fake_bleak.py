"""An in-memory bleak backend standing in for a pen's GATT server.

``BleakClient(address, backend=FakePenClient, world=world)`` talks to the
:class:`ScriptedPen` in ``world``: writes to the request characteristic are
reassembled with the FIRMWARE link layer (``pen.link``), answers go back as
notifications fragmented by ``pen.link`` at the world's MTU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from pen import link

from scalppen.transports.ble import PenUuids
from tests.client.scripted_pen import ScriptedPen

UUIDS = PenUuids(
    service="5ca1e000-0000-4000-8000-00000000beef",
    request="5ca1e001-0000-4000-8000-00000000beef",
    event="5ca1e002-0000-4000-8000-00000000beef",
)
ADDRESS = "AA:BB:CC:DD:EE:01"


@dataclass
class World:
    """The pen's side of the fake radio, shared by every client instance."""

    pen: ScriptedPen = field(default_factory=ScriptedPen)
    mtu: int = 23
    fail_connects: int = 0
    require_bond: bool = False
    bonded: bool = False
    passkey: int = 123456
    clients: list[FakePenClient] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    notify_counter: int = 0
    corrupt_next: list[bytes] = field(default_factory=list)


class FakePenClient(BaseBleakClient):
    """bleak client backend over a :class:`World`."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        self.world: World = kwargs.pop("world")
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback"),
            timeout=kwargs.pop("timeout"),
        )
        self.world.clients.append(self)
        self._connected = False
        self._notify: NotifyCallback | None = None
        self._reassembler = link.Reassembler()

    # -- connection -----------------------------------------------------------

    @property
    def name(self) -> str:
        return "SP-1"

    @property
    def mtu_size(self) -> int:
        return self.world.mtu

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        if self.world.fail_connects:
            self.world.fail_connects -= 1
            self.world.log.append("connect-failed")
            raise BleakError("connection failed (simulated)")
        self.services = self._make_services()
        self._connected = True
        self.world.log.append("connect")

    def _make_services(self) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        service = BleakGATTService(None, 10, UUIDS.service)
        collection.add_service(service)
        chars: list[tuple[int, str, list[Any]]] = [(11, UUIDS.request, ["write"]),
                                                   (13, UUIDS.event, ["notify"])]
        for handle, uuid, props in chars:
            collection.add_characteristic(
                BleakGATTCharacteristic(None, handle, uuid, props, lambda: self.world.mtu - 3,
                                        service))
        return collection

    async def disconnect(self) -> None:
        self._connected = False
        self.world.log.append("disconnect")

    def drop(self) -> None:
        """The radio link dies (the pen walked away)."""
        self._connected = False
        self.world.log.append("dropped")
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, passkey_provider: Callable[[], Any] | None = None,
                   **kwargs: Any) -> None:
        assert passkey_provider is not None
        typed = passkey_provider()
        if asyncio.iscoroutine(typed):
            typed = await typed
        if int(typed) != self.world.passkey:
            raise BleakError("authentication failed (wrong passkey)")
        self.world.bonded = True
        self.world.log.append("paired")

    async def unpair(self) -> None:
        self.world.bonded = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    # -- GATT -----------------------------------------------------------------

    def _check_security(self) -> None:
        if self.world.require_bond and not self.world.bonded:
            raise BleakGATTProtocolError(0x05)

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        self._check_security()
        self._notify = callback
        self.world.log.append("subscribe")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._notify = None

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any,
                              response: bool) -> None:
        if not self._connected:
            raise BleakError("not connected")
        self._check_security()
        assert response, "requests are written with response"
        assert characteristic.uuid == UUIDS.request
        assert len(data) <= self.world.mtu - 3, "fragment larger than the ATT MTU allows"
        self.world.log.append("write")
        await asyncio.sleep(0)
        frame = self._reassembler.feed(bytes(data))
        if frame is None:
            return
        for answer in self.world.pen.handle(frame):
            self.notify_frame(answer)

    def notify_frame(self, frame: bytes) -> None:
        """Send ``frame`` to the host as notifications (later, like a radio)."""
        parts = link.fragment(frame, self.world.mtu, self.world.notify_counter)
        self.world.notify_counter += 1
        for part in parts:
            self.notify_raw(part)

    def notify_raw(self, payload: bytes) -> None:
        """One notification as given (for damaged fragments)."""
        assert self._notify is not None, "notification before the host subscribed"
        asyncio.get_running_loop().call_soon(self._notify, bytearray(payload))

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any
                             ) -> bytearray:
        raise BleakError("not readable")

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any
                                   ) -> bytearray:
        raise BleakError("not readable")

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("not writable")


class FakeScanner(BaseBleakScanner):
    """A scanner backend that 'hears' a fixed list of advertisements."""

    heard: ClassVar[list[tuple[str, str | None, list[str], int]]] = []

    def __init__(self, detection_callback: Any, service_uuids: list[str] | None,
                 scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        for address, name, uuids, rssi in self.heard:
            adv = AdvertisementData(local_name=name, manufacturer_data={}, service_data={},
                                    service_uuids=uuids, tx_power=None, rssi=rssi,
                                    platform_data=())
            if not self.is_allowed_uuid(uuids):
                continue
            device = self.create_or_update_device(address, address, name, None, adv)
            self.call_detection_callbacks(device, adv)

    async def stop(self) -> None:
        return None
