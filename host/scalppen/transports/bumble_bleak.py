"""A bleak backend over bumble: host code written for bleak runs on a bumble central.

The central is any bumble HCI transport (``usb:0``, ``serial:/dev/ttyACM0``,
``tcp-client:127.0.0.1:PORT`` for the virtual pen's HCI bridge, ...) or, in
tests, a controller on an in-process ``bumble.link.LocalLink``::

    central = await open_central("usb:0", keystore_path="~/.scalppen/bonds.json")
    scanner = BleakScanner(service_uuids=[PEN_SERVICE_UUID], backend=central.scanner_backend)
    client = BleakClient(device, backend=central.client_backend)
    await client.connect()
    await client.pair(passkey_provider=lambda: input("passkey shown on the pen: "))

``central.client_backend`` / ``central.scanner_backend`` are backend classes bound
to that central, so they can be passed wherever bleak takes ``backend=``; the
unbound :class:`BumbleBleakClient` / :class:`BumbleBleakScanner` take
``bumble_central=`` as a keyword instead.

Pairing is LE Secure Connections with MITM, bonding; this side has a keyboard
and a display, so against a display-only pen the user types the pen's passkey,
which ``passkey_provider`` returns (an int, a digit string, or an awaitable of
either). Bonds live in the central's key store; a connection to a bonded pen is
encrypted right after connecting, as operating systems do, so no new passkey is
asked. UUIDs are reported as lower-case 128-bit strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, DeviceConfiguration, Peer
from bumble.host import Host
from bumble.keys import MemoryKeyStore
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import Transport, open_transport
from bumble.transport.common import AsyncPipeSink

_log = logging.getLogger(__name__)

PasskeyProvider = Callable[[], int | str | Awaitable[int | str]]

DEFAULT_CENTRAL_ADDRESS = "F0:5C:A1:00:00:01"
DEFAULT_MTU = 247
_OPEN_TIMEOUT = 10.0
_OP_TIMEOUT = 10.0
_PAIR_TIMEOUT = 90.0

_PROPERTY_NAMES = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


def normalize_uuid(uuid: core.UUID | str | int) -> str:
    """Any UUID (bumble object, 16/32/128-bit string or int) as lower-case 128-bit text."""
    if isinstance(uuid, int):
        uuid = core.UUID.from_16_bits(uuid) if uuid <= 0xFFFF else core.UUID.from_32_bits(uuid)
    elif isinstance(uuid, str):
        text = uuid.strip().lower()
        if text.startswith("0x"):
            text = text[2:]
        uuid = core.UUID(text)
    raw = bytes(reversed(uuid.to_bytes(force_128=True))).hex()
    return f"{raw[0:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


def _address_text(address: hci.Address) -> str:
    return address.to_string(with_type_qualifier=False)


class BumbleCentral:
    """A bumble host in the central role, shared by the bleak backends bound to it.

    Build it with :func:`open_central`.

    Attributes:
        device: the bumble device (power on, with its key store).
        passkey_provider: the default provider for ``pair()``.
    """

    def __init__(
        self,
        device: Device,
        *,
        transport: Transport | None = None,
        controller: Any = None,
        passkey_provider: PasskeyProvider | None = None,
    ) -> None:
        self.device = device
        self.passkey_provider = passkey_provider
        self._transport = transport
        self._controller = controller
        self._scanners: list[BumbleBleakScanner] = []
        self._scan_lock = asyncio.Lock()
        self._delegates: dict[int, PairingDelegate] = {}
        self._connect_lock = asyncio.Lock()
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        device.pairing_config_factory = self._pairing_config
        central = self

        class _Client(BumbleBleakClient):
            _central = central

        class _Scanner(BumbleBleakScanner):
            _central = central

        _Client.__name__ = _Client.__qualname__ = "BumbleBleakClient"
        _Scanner.__name__ = _Scanner.__qualname__ = "BumbleBleakScanner"
        self.client_backend: type[BumbleBleakClient] = _Client
        self.scanner_backend: type[BumbleBleakScanner] = _Scanner

    @property
    def address(self) -> str:
        """This central's own address."""
        return _address_text(self.device.random_address)

    async def close(self) -> None:
        """Disconnect everything and release the transport."""
        for conn in list(self.device.connections.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.disconnect(), 2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.device.power_off(), 2.0)
        if self._controller is not None:
            detach = getattr(self._controller, "detach", None)
            if detach is not None:
                detach()
        if self._transport is not None:
            with contextlib.suppress(Exception):
                await self._transport.close()

    async def __aenter__(self) -> BumbleCentral:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def forget(self, address: str) -> None:
        """Delete the bond with ``address`` from this central's key store."""
        if self.device.keystore is not None:
            with contextlib.suppress(KeyError):
                await self.device.keystore.delete(_parse_address(address).to_string())
            with contextlib.suppress(KeyError):
                await self.device.keystore.delete(_address_text(_parse_address(address)))

    async def is_bonded(self, address: hci.Address) -> bool:
        """Whether the key store holds keys for ``address``."""
        keystore = self.device.keystore
        return keystore is not None and await keystore.get(str(address)) is not None

    # -- scanning -------------------------------------------------------------------

    async def _scan_add(self, scanner: BumbleBleakScanner, active: bool) -> None:
        async with self._scan_lock:
            if scanner not in self._scanners:
                self._scanners.append(scanner)
            if not self.device.is_scanning:
                await self.device.start_scanning(active=active, filter_duplicates=False)

    async def _scan_remove(self, scanner: BumbleBleakScanner) -> None:
        async with self._scan_lock:
            if scanner in self._scanners:
                self._scanners.remove(scanner)
            if not self._scanners and self.device.is_scanning:
                await self.device.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for scanner in list(self._scanners):
            scanner._on_advertisement(advertisement)

    # -- pairing --------------------------------------------------------------------

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        delegate = self._delegates.get(connection.handle) or _RefusingDelegate()
        return PairingConfig(sc=True, mitm=True, bonding=True, delegate=delegate)


class _RefusingDelegate(PairingDelegate):
    """Used when the peripheral starts pairing and nobody asked for a passkey."""

    def __init__(self) -> None:
        super().__init__(io_capability=PairingDelegate.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT)

    async def get_number(self) -> int | None:
        return None

    async def compare_numbers(self, number: int, digits: int) -> bool:
        return False


class _Passkey(int):
    """A passkey that is true even when it is 000000: bumble's SMP asserts the passkey
    is truthy before it uses it (``smp.py`` ``send_pairing_confirm_command``:
    ``assert self.passkey``), which made the pen's passkey 000000 (1 in a million)
    raise in bumble's task and the pairing hang until its timeout."""

    def __bool__(self) -> bool:
        return True


class _PasskeyDelegate(PairingDelegate):
    """Keyboard + display: the user types the passkey the pen shows."""

    def __init__(self, provider: PasskeyProvider) -> None:
        super().__init__(io_capability=PairingDelegate.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT)
        self._provider = provider

    async def get_number(self) -> int | None:
        value = self._provider()
        if inspect.isawaitable(value):
            value = await value
        try:
            number = int(str(value).strip())
        except ValueError:
            return None
        return _Passkey(number) if 0 <= number <= 999999 else None

    async def compare_numbers(self, number: int, digits: int) -> bool:
        # Numeric comparison would need a yes/no from the user; the pen never asks.
        return False


def _parse_address(address: str) -> hci.Address:
    text = address.strip()
    if text.endswith("/P"):
        return hci.Address(text[:-2], hci.Address.PUBLIC_DEVICE_ADDRESS)
    return hci.Address(text, hci.Address.RANDOM_DEVICE_ADDRESS)


async def open_central(
    transport: str | LocalLink,
    *,
    address: str = DEFAULT_CENTRAL_ADDRESS,
    keystore_path: str | os.PathLike[str] | None = None,
    passkey_provider: PasskeyProvider | None = None,
    name: str = "scalppen-host",
    timeout: float = _OPEN_TIMEOUT,
) -> BumbleCentral:
    """Open a bumble central on an HCI transport or on an in-process link.

    Args:
        transport: a bumble transport name (``usb:0``, ``serial:/dev/ttyACM0``,
            ``tcp-client:127.0.0.1:PORT``, ...) or a ``LocalLink`` (a virtual
            controller is put on it).
        address: this central's random static address (keep it stable: bonds
            are bound to it).
        keystore_path: the bond file (bumble's JSON, sealed: ``bond_store``); None
            keeps them in memory.
        passkey_provider: default provider of the passkey for ``pair()``.
        name: the central's GAP name.
        timeout: seconds for opening and powering on.

    Raises:
        BleakError: the transport cannot be opened or the controller does not answer.
    """
    controller = None
    hci_transport: Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            if isinstance(transport, LocalLink):
                from scalppen_hardware.ble_radio import LinkController

                controller = LinkController(f"{name}-ctrl", link=transport)
                host = Host(controller, AsyncPipeSink(controller))
            else:
                hci_transport = await open_transport(transport)
                host = Host(hci_transport.source, hci_transport.sink)
            config = DeviceConfiguration(
                name=name,
                address=hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS),
                io_capability=PairingDelegate.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT,
            )
            device = Device(config=config, host=host)
            if keystore_path is not None:
                path = os.path.expanduser(os.fspath(keystore_path))
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                from scalppen.transports.bond_store import SealedJsonKeyStore

                store = SealedJsonKeyStore(path)
                await store.seal_if_plain()
                device.keystore = store
            else:
                device.keystore = MemoryKeyStore()
            await device.power_on()
    except (TimeoutError, OSError, core.BaseBumbleError) as exc:
        if hci_transport is not None:
            with contextlib.suppress(Exception):
                await hci_transport.close()
        raise BleakError(f"cannot open the bumble central on {transport!r}: {exc!r}") from exc
    return BumbleCentral(
        device, transport=hci_transport, controller=controller, passkey_provider=passkey_provider
    )


def _bound_central(cls: type, given: BumbleCentral | None) -> BumbleCentral:
    central = given or getattr(cls, "_central", None)
    if central is None:
        raise BleakError(
            "no bumble central: use open_central(...).client_backend / .scanner_backend, "
            "or pass bumble_central="
        )
    return central


class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend on a :class:`BumbleCentral`."""

    _central: ClassVar[BumbleCentral | None] = None

    def __init__(
        self,
        detection_callback: Any = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        *,
        bumble_central: BumbleCentral | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            detection_callback,
            [normalize_uuid(u) for u in service_uuids] if service_uuids else None,
        )
        self._bc = _bound_central(type(self), bumble_central)
        self._active = scanning_mode != "passive"

    async def start(self) -> None:
        self.seen_devices = {}
        await self._bc._scan_add(self, self._active)

    async def stop(self) -> None:
        await self._bc._scan_remove(self)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        name: str | None = None
        uuids: list[str] = []
        manufacturer: dict[int, bytes] = {}
        service_data: dict[str, bytes] = {}
        tx_power: int | None = None
        for ad_type, data in advertisement.data.ad_structures:
            try:
                if ad_type in (
                    AdvertisingData.COMPLETE_LOCAL_NAME,
                    AdvertisingData.SHORTENED_LOCAL_NAME,
                ):
                    if name is None or ad_type == AdvertisingData.COMPLETE_LOCAL_NAME:
                        name = data.decode("utf-8", "replace")
                elif ad_type in (0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
                    size = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}[ad_type]
                    for i in range(0, len(data) - size + 1, size):
                        uuid = normalize_uuid(core.UUID.from_bytes(data[i : i + size]))
                        if uuid not in uuids:
                            uuids.append(uuid)
                elif ad_type in (0x16, 0x20, 0x21):
                    size = {0x16: 2, 0x20: 4, 0x21: 16}[ad_type]
                    key = normalize_uuid(core.UUID.from_bytes(data[:size]))
                    service_data[key] = bytes(data[size:])
                elif ad_type == AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(data) >= 2:
                    manufacturer[int.from_bytes(data[:2], "little")] = bytes(data[2:])
                elif ad_type == AdvertisingData.TX_POWER_LEVEL and data:
                    tx_power = int.from_bytes(data[:1], "little", signed=True)
            except (ValueError, core.BaseBumbleError):
                continue
        if not self.is_allowed_uuid(uuids):
            return
        rssi = advertisement.rssi
        if rssi == Advertisement.RSSI_NOT_AVAILABLE:
            rssi = -127
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data=manufacturer,
            service_data=service_data,
            service_uuids=uuids,
            tx_power=tx_power,
            rssi=rssi,
            platform_data=(advertisement,),
        )
        address = advertisement.address
        device = self.create_or_update_device(
            str(address), _address_text(address), name, address, adv
        )
        self.call_detection_callbacks(device, adv)


def _gatt_error(exc: BaseException) -> BleakError:
    if isinstance(exc, att.ATT_Error):
        return BleakGATTProtocolError(int(exc.error_code))
    if isinstance(exc, (core.TimeoutError, TimeoutError)):
        return BleakError(f"GATT operation timed out: {exc}")
    return BleakError(f"GATT operation failed: {exc!r}")


class BumbleBleakClient(BaseBleakClient):
    """bleak client backend on a :class:`BumbleCentral`.

    Extra keyword arguments (through ``BleakClient(..., **kwargs)``):
        bumble_central: the central, unless the class is bound to one.
        passkey_provider: default passkey provider for ``pair()``.
        mtu: ATT MTU to request after connecting (default 247).
    """

    _central: ClassVar[BumbleCentral | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        services: set[str] | None = None,
        timeout: float = 10.0,
        bumble_central: BumbleCentral | None = None,
        passkey_provider: PasskeyProvider | None = None,
        mtu: int = DEFAULT_MTU,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._bc = _bound_central(type(self), bumble_central)
        details = getattr(address_or_ble_device, "details", None)
        self._peer_address = (
            details if isinstance(details, hci.Address) else _parse_address(self.address)
        )
        self._service_filter = {normalize_uuid(u) for u in services} if services else None
        self._passkey_provider = passkey_provider
        self._mtu = mtu
        self._conn: Connection | None = None
        self._peer: Peer | None = None
        self._mtu_size: int | None = None
        self._closing = False
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # -- properties -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        if self._conn is not None:
            return int(self._conn.att_mtu)
        return self._mtu_size or att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.handle in self._bc.device.connections

    def _need_conn(self) -> Connection:
        if not self.is_connected or self._conn is None:
            raise BleakError("Not connected")
        return self._conn

    # -- connection ---------------------------------------------------------------------

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        timeout = float(kwargs.get("timeout", self._timeout))
        device = self._bc.device
        try:
            async with self._bc._connect_lock, asyncio.timeout(timeout + 2.0):
                conn = await device.connect(
                    self._peer_address, timeout=timeout, own_address_type=hci.OwnAddressType.RANDOM
                )
        except (TimeoutError, core.TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(device.cancel_connection(), 2.0)
            raise TimeoutError(f"no connection to {self.address} within {timeout:.0f} s") from exc
        except core.ConnectionError as exc:
            raise BleakDeviceNotFoundError(self.address, f"connection failed: {exc}") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"connection to {self.address} failed: {exc!r}") from exc
        self._conn = conn
        self._peer = Peer(conn)
        self._closing = False
        conn.on(conn.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            if await self._bc.is_bonded(conn.peer_address):
                await self._encrypt(conn)
            if pair:
                await self.pair()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_OP_TIMEOUT):
                    await conn.gatt_client.request_mtu(self._mtu)
            self._mtu_size = int(conn.att_mtu)
            async with asyncio.timeout(max(timeout, _OP_TIMEOUT)):
                self.services = await self._discover()
        except BaseException:
            await self.disconnect()
            raise

    async def _encrypt(self, conn: Connection) -> bool:
        try:
            async with asyncio.timeout(_OP_TIMEOUT):
                await conn.encrypt()
        except Exception as exc:
            _log.info("could not restore encryption with %s: %r", self.address, exc)
            return False
        return True

    def _on_disconnection(self, reason: int) -> None:
        self._conn = None
        self._peer = None
        if self._closing:
            return
        callback = self._disconnected_callback
        if callback is not None:
            asyncio.get_running_loop().call_soon(callback)

    async def disconnect(self) -> None:
        conn = self._conn
        self._closing = True
        if conn is None or not self.is_connected:
            self._conn = None
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_OP_TIMEOUT):
                await conn.disconnect()
        self._conn = None

    async def pair(
        self, *args: Any, passkey_provider: PasskeyProvider | None = None, **kwargs: Any
    ) -> None:
        """Pair and bond (LE Secure Connections, MITM); a bonded link is just encrypted.

        Args:
            passkey_provider: returns the passkey the pen shows (int, digit string,
                or an awaitable of either).

        Raises:
            BleakError: pairing failed (wrong passkey, refused, timed out).
        """
        conn = self._need_conn()
        if await self._bc.is_bonded(conn.peer_address) and (
            conn.is_encrypted or await self._encrypt(conn)
        ):
            return
        provider = passkey_provider or self._passkey_provider or self._bc.passkey_provider
        if provider is None:
            raise BleakError("pairing needs a passkey_provider (the passkey the pen shows)")
        self._bc._delegates[conn.handle] = _PasskeyDelegate(provider)
        try:
            async with asyncio.timeout(float(kwargs.get("timeout", _PAIR_TIMEOUT))):
                await conn.pair()
        except TimeoutError as exc:
            raise BleakError(f"pairing with {self.address} timed out") from exc
        except Exception as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc
        finally:
            self._bc._delegates.pop(conn.handle, None)

    async def unpair(self) -> None:
        conn = self._conn
        address = conn.peer_address if conn is not None else self._peer_address
        keystore = self._bc.device.keystore
        if keystore is not None:
            with contextlib.suppress(Exception):
                await keystore.delete(str(address))
        await self.disconnect()

    # -- services -------------------------------------------------------------------------

    async def _discover(self) -> BleakGATTServiceCollection:
        assert self._peer is not None
        peer = self._peer
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services():
            uuid = normalize_uuid(service.uuid)
            if self._service_filter is not None and uuid not in self._service_filter:
                continue
            bleak_service = BleakGATTService(service, service.handle, uuid)
            collection.add_service(bleak_service)
            for char in await peer.discover_characteristics(service=service):
                props = [n for bit, n in _PROPERTY_NAMES if int(char.properties) & bit]
                bleak_char = BleakGATTCharacteristic(
                    char,
                    char.handle,
                    normalize_uuid(char.uuid),
                    props,  # type: ignore[arg-type]
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for desc in await peer.discover_descriptors(characteristic=char):
                    desc_uuid = normalize_uuid(desc.type)
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, desc_uuid, bleak_char)
                    )
        return collection

    # -- I/O ---------------------------------------------------------------------------

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(characteristic.handle)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(descriptor.handle)

    async def _read(self, handle: int) -> bytearray:
        conn = self._need_conn()
        try:
            async with asyncio.timeout(_OP_TIMEOUT):
                return bytearray(await conn.gatt_client.read_value(handle))
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise _gatt_error(exc) from exc

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        await self._write(characteristic.handle, bytes(data), response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._write(descriptor.handle, bytes(data), True)

    async def _write(self, handle: int, data: bytes, response: bool) -> None:
        conn = self._need_conn()
        try:
            async with asyncio.timeout(_OP_TIMEOUT):
                await conn.gatt_client.write_value(handle, data, with_response=response)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise _gatt_error(exc) from exc

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        conn = self._need_conn()
        proxy = characteristic.obj

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        client = conn.gatt_client
        try:
            async with asyncio.timeout(_OP_TIMEOUT):
                await client.subscribe(proxy, on_value, prefer_notify=True)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            for table in (client.notification_subscribers, client.indication_subscribers):
                table.pop(characteristic.handle, None)
            raise _gatt_error(exc) from exc
        self._subscribers[characteristic.handle] = on_value

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        conn = self._need_conn()
        on_value = self._subscribers.pop(characteristic.handle, None)
        try:
            async with asyncio.timeout(_OP_TIMEOUT):
                await conn.gatt_client.unsubscribe(characteristic.obj, on_value)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise _gatt_error(exc) from exc

    async def _acquire_mtu(self) -> None:
        conn = self._need_conn()
        await conn.gatt_client.request_mtu(self._mtu)
        self._mtu_size = int(conn.att_mtu)


def bumble_link(client: Any) -> tuple[Connection, Peer] | None:
    """The bumble connection and GATT peer under a connected ``BleakClient`` of this
    backend (another protocol, SMP for updates, can share the link); None for a
    client of another backend or not connected."""
    backend = getattr(client, "_backend", None)
    if not isinstance(backend, BumbleBleakClient) or backend._conn is None \
            or backend._peer is None:
        return None
    return backend._conn, backend._peer
