"""MicroPython's low-level ``bluetooth`` module for firmware running under CPython.

The pen's firmware imports ``bluetooth`` and drives it exactly as on the ESP32
(NimBLE); here the stack underneath is bumble, on the virtual radio attached with
:func:`scalppen_hardware.ble_radio.attach`. Only the peripheral (GATT server) role
is provided, which is all the pen uses.

Behaviour kept as on MicroPython/NimBLE:

* IRQ numbers and argument tuples (addresses and keys are passed as ``bytes``,
  which are valid after the handler returns, unlike MicroPython's memoryviews).
* ``gatts_register_services`` returns value handles per service, each
  characteristic followed by its own descriptors; a notify/indicate
  characteristic gets a CCCD at ``value_handle + 1``, not in the returned tuple.
* A write is stored in the attribute's buffer (20 bytes unless
  ``gatts_set_buffer`` says otherwise; longer writes are truncated) and
  signalled with ``_IRQ_GATTS_WRITE``; the handler reads it with ``gatts_read``.
* ``gatts_notify`` sends whether or not the client subscribed, truncated to
  MTU - 3.
* A write to a CCCD is never reported: no ``_IRQ_GATTS_WRITE`` for it (NimBLE
  keeps CCCDs to itself: ``extmod/nimble/modbluetooth_nimble.c``, "This is event
  is not called for the CCCD"), so the firmware cannot see who subscribed. The
  stack remembers each connection's CCCD for ``gatts_write(..., send_update=True)``,
  which notifies (or indicates) only the clients that subscribed. CCCD writes
  need the same security as the characteristic.
* Security flags are enforced by the stack: without encryption an
  ``*_ENCRYPTED``/``*_AUTHENTICATED`` attribute answers "insufficient
  authentication" (or "insufficient encryption" when the peer is bonded); with
  an unauthenticated key an ``*_AUTHENTICATED`` one answers "insufficient
  authentication".
* Bonds are kept by the firmware through ``_IRQ_GET_SECRET`` / ``_IRQ_SET_SECRET``,
  under NimBLE's key, the peer's ``ble_addr_t`` (type byte, address LSB first),
  the value beginning as NimBLE's ``ble_store_value_sec`` does (peer address,
  key size; the rest is the stand-in's own), and only when both sides asked for
  bonding (the BONDING flag in both pairing commands: ``ble_sm_process_result``
  persists only then, and reports ``bonded`` from it, whatever the store answered).
* A store that answers ``False`` (``BLE_HS_ESTORE_CAP``) gets NimBLE's overflow
  handler that MicroPython installs, ``ble_store_util_status_rr``: it unpairs the
  oldest bonded peer, found by iterating ``SEC_OUR`` (``ble_store_util_bonded_peers``;
  MicroPython's binding then passes BLE_ADDR_ANY, seven zero bytes, as the key),
  drops that peer's link, deletes its secrets and writes again. A delete is
  repeated until the firmware answers ``False`` (``ble_store_util_delete_all``).
  Where NimBLE would loop for ever, the stand-in stops and records the error.
* Advertising stops when a central connects; the firmware advertises again
  after ``_IRQ_CENTRAL_DISCONNECT``.

Differences:

* ``gatts_read(cccd_handle)`` returns the 2 bytes a client last wrote to the
  CCCD; on NimBLE a CCCD has no entry in MicroPython's attribute table. Firmware
  must not rely on it.
* Calls that talk to the radio (advertise, notify, disconnect, ...) return at
  once and run in order on the event loop; :meth:`BLE.idle` waits for them.
  Everything runs on one asyncio loop; IRQ handlers are called on it
  synchronously.
* Advertising intervals are capped (see ``VirtualRadio.adv_interval_cap_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bumble import att, hci
from bumble import gatt as bgatt
from bumble.core import UUID as _BumbleUUID
from bumble.core import PhysicalTransport
from bumble.device import AdvertisingType, Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.smp import PairingMethod
from bumble.transport.common import AsyncPipeSink

from scalppen_hardware import ble_radio

_log = logging.getLogger(__name__)

# Characteristic / descriptor flags (values of MicroPython's docs).
FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

# IRQ events.
_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_READ_REQUEST = 4
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_CONNECTION_UPDATE = 27
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30
_IRQ_PASSKEY_ACTION = 31

_PASSKEY_ACTION_INPUT = 2
_PASSKEY_ACTION_DISPLAY = 3
_PASSKEY_ACTION_NUMCMP = 4

#: Secret type under which bonds are stored (NimBLE's "peer security" object).
SEC_TYPE_PEER = 2
#: NimBLE keeps a bond as two secrets, ours and the peer's, both keyed by the peer's
#: address (BLE_STORE_OBJ_TYPE_OUR_SEC 1, PEER_SEC 2: extmod/nimble/
#: modbluetooth_nimble.c ble_secret_store_write); a bond is whole with both.
SEC_TYPE_OUR = 1
BOND_SEC_TYPES = (SEC_TYPE_OUR, SEC_TYPE_PEER)

_DEFAULT_ATTR_LEN = 20
_MAX_ATTR_LEN = 512
_PASSKEY_TIMEOUT = 60.0
_OP_TIMEOUT = 10.0
_CCCD = bgatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
_READ_SECURITY = FLAG_READ_ENCRYPTED | FLAG_READ_AUTHENTICATED
_WRITE_SECURITY = FLAG_WRITE_ENCRYPTED | FLAG_WRITE_AUTHENTICATED


class UUID:
    """A Bluetooth UUID: 16-bit int, or string (16-bit hex or 128-bit form)."""

    def __init__(self, value: int | str | bytes | UUID) -> None:
        if isinstance(value, UUID):
            self._b: _BumbleUUID = value._b
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._b = _BumbleUUID.from_16_bits(value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            self._b = _BumbleUUID.from_bytes(bytes(value))
        elif isinstance(value, str):
            self._b = _BumbleUUID(value)
        else:
            raise TypeError("UUID: int, str or bytes")

    def __bytes__(self) -> bytes:
        # Little-endian, as MicroPython's buffer protocol on a UUID gives.
        return self._b.to_bytes()

    def __len__(self) -> int:
        return len(self._b.to_bytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UUID) and self._b == other._b

    def __hash__(self) -> int:
        return hash(self._b)

    def __repr__(self) -> str:
        raw = self._b.to_bytes()
        if len(raw) == 2:
            return f"UUID(0x{int.from_bytes(raw, 'little'):04x})"
        return f"UUID('{self._b.to_hex_str('-').lower()}')"

    def _bumble(self) -> _BumbleUUID:
        return self._b


class _Attr:
    """One attribute of the local database as MicroPython sees it."""

    __slots__ = ("append", "cap", "char_flags", "flags", "handle", "obj", "value")

    def __init__(self, flags: int, char_flags: int = 0) -> None:
        self.flags = flags
        self.char_flags = char_flags  # for a CCCD: the flags of its characteristic
        self.value = bytearray()
        self.cap = _DEFAULT_ATTR_LEN
        self.append = False
        self.handle = 0
        self.obj: Any = None


class _FirmwareKeyStore(KeyStore):
    """bumble's key store, kept by the firmware through GET/SET_SECRET IRQs."""

    def __init__(self, ble: BLE) -> None:
        self._ble = ble

    async def update(self, name: str, keys: PairingKeys) -> None:
        await self._ble._astore_keys(name, keys)

    async def get(self, name: str) -> PairingKeys | None:
        return await self._ble._aload_keys(name)

    async def delete(self, name: str) -> None:
        await self._ble._delete_peer(name)

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        found = []
        index = 0
        while True:
            value = await self._ble._ask(_IRQ_GET_SECRET, (SEC_TYPE_PEER, index, None))
            if value is None:
                break
            index += 1
            try:
                record = _secret_record(value)
                name = record["peer"]
                ours = await self._ble._ask(_IRQ_GET_SECRET, (SEC_TYPE_OUR, 0, _store_key(name)))
                if ours is None:
                    continue  # half a bond: NimBLE cannot use it
                found.append((name, PairingKeys.from_dict(record["keys"])))
            except (ValueError, KeyError, TypeError):
                _log.warning("ignoring an unreadable bond record")
        for name, keys in found:
            self._ble._keys_cache[name] = keys
        return found


class _PenDelegate(PairingDelegate):
    """Pairing questions go to the firmware as _IRQ_PASSKEY_ACTION."""

    def __init__(self, ble: BLE, conn_handle: int, io: int) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability(io))
        self._ble = ble
        self._conn = conn_handle

    async def _ask(self, action: int, number: int) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self._ble._passkey_waits[self._conn] = (action, fut)
        self._ble._irq(_IRQ_PASSKEY_ACTION, (self._conn, action, number))
        try:
            return await asyncio.wait_for(fut, _PASSKEY_TIMEOUT)
        finally:
            self._ble._passkey_waits.pop(self._conn, None)

    async def generate_passkey(self) -> int:
        # NimBLE: action DISPLAY with passkey 0; the application picks the
        # passkey and gives it back with gap_passkey().
        return int(await self._ask(_PASSKEY_ACTION_DISPLAY, 0)) % 1000000

    async def get_number(self) -> int | None:
        value = await self._ask(_PASSKEY_ACTION_INPUT, 0)
        return None if value is None else int(value)

    async def compare_numbers(self, number: int, digits: int) -> bool:
        return bool(await self._ask(_PASSKEY_ACTION_NUMCMP, number))


def _addr_bytes(address: hci.Address) -> bytes:
    # MicroPython gives addresses most significant byte first.
    return bytes(reversed(address.address_bytes))


def _store_key(name: str) -> bytes:
    """NimBLE's key for the bond with ``name`` (a bumble address string): the
    ``ble_addr_t`` the binding passes, id type (0 public, 1 random), address LSB first."""
    address = hci.Address(name)
    return bytes((address.address_type & 1,)) + bytes(address.address_bytes)


def _secret_value(name: str, keys: PairingKeys, key_size: int) -> bytes:
    """A bond secret as the firmware sees it: NimBLE's ``ble_store_value_sec`` begins
    with the peer's ``ble_addr_t`` (7 bytes) and ``key_size`` (1 byte), as here; the
    rest (LTK, IRK, CSRK, flags) is the stand-in's own JSON, not NimBLE's struct."""
    record = json.dumps({"peer": name, "keys": keys.to_dict()}, sort_keys=True).encode()
    return _store_key(name) + bytes((key_size,)) + record


def _secret_record(value: Any) -> dict[str, Any]:
    """The JSON part of a secret (see :func:`_secret_value`); ValueError if damaged."""
    raw = bytes(value)
    if len(raw) < 9:
        raise ValueError("bond record too short")
    record = json.loads(raw[8:])
    if not isinstance(record, dict):
        raise ValueError("not a bond record")
    record["key_size"] = raw[7]
    return record


#: BLE_ADDR_ANY as MicroPython's binding passes it when NimBLE iterates SEC_OUR.
_ADDR_ANY_KEY = bytes(7)
#: Rounds after which the stand-in stops a store loop NimBLE would never leave.
_STORE_LOOP_LIMIT = 16


class BLE:
    """The Bluetooth object (one per boot of the attached virtual pen)."""

    def __new__(cls) -> BLE:
        radio = ble_radio.current()
        if radio.ble is None:
            inst = super().__new__(cls)
            inst._setup(radio)
            radio.ble = inst
        return radio.ble

    def _setup(self, radio: ble_radio.VirtualRadio) -> None:
        self._radio = radio
        self._handler: Callable[[int, Any], Any] | None = None
        self._active = False
        self._device: Device | None = None
        self._controller: ble_radio.LinkController | None = None
        self._ops: asyncio.Queue[Callable[[], Awaitable[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._cfg: dict[str, Any] = {
            "gap_name": b"MPY BTSTACK",
            "mtu": 256,
            "rxbuf": 256,
            "io": 3,
            "mitm": False,
            "le_secure": False,
            "bond": True,
            "addr_mode": 0,
        }
        self._attrs: dict[int, _Attr] = {}
        self._conns: dict[int, Connection] = {}
        self._auth: dict[int, bool] = {}
        self._cccd: dict[tuple[int, int], bytes] = {}
        self._passkey_waits: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._adv_data = b""
        self._resp_data = b""
        self._registered = False
        #: Where IRQs go when the firmware is not in this process (the twin's bridge).
        self._port: Any = None
        #: Bonds the firmware gave the stack (GET/SET_SECRET answers), by peer.
        self._keys_cache: dict[str, PairingKeys] = {}
        #: (encrypted, authenticated) last reported to the firmware, by connection.
        self._reported: dict[int, tuple[bool, bool]] = {}
        #: Encryption key size of each bond, by peer: NimBLE reports the size the
        #: pairing negotiated (the smaller of both sides' maximum), and for a
        #: restored bond the size stored with it (ble_store_value_sec.key_size).
        self._key_sizes: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------

    def active(self, flag: bool | None = None) -> bool:
        """Switch the stack on or off, or tell whether it is on."""
        if flag is None:
            return self._active
        if flag and not self._active:
            self._start()
        elif not flag and self._active:
            self._active = False
            self._submit(self._stop)
        return self._active

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._controller = self._radio.new_controller()
        host = Host(self._controller, AsyncPipeSink(self._controller))
        config = DeviceConfiguration(
            name=self._name(), address=self._radio.address, gap_service_enabled=True
        )
        device = Device(config=config, host=host)
        device.keystore = _FirmwareKeyStore(self)
        device.pairing_config_factory = self._pairing_config
        device.gatt_server.max_mtu = int(self._cfg["mtu"])
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self._device = device
        self._make_gap_name_dynamic()
        self._ops = asyncio.Queue()
        self._worker = loop.create_task(self._run_ops(), name=f"{self._radio.name}-ble")
        self._active = True
        self._submit(device.power_on)

    async def _stop(self) -> None:
        device = self._device
        if device is None:
            return
        for conn in list(self._conns.values()):
            try:
                await asyncio.wait_for(
                    conn.disconnect(
                        hci.HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR
                    ),
                    2.0,
                )
            except Exception as exc:
                _log.debug("disconnect at power-off: %r", exc)
        try:
            await device.stop_advertising()
        except Exception as exc:
            _log.debug("stop advertising at power-off: %r", exc)
        await device.power_off()
        if self._controller is not None:
            self._controller.detach()
        for _action, fut in self._passkey_waits.values():
            if not fut.done():
                fut.cancel()

    async def _shutdown(self, timeout: float) -> None:
        if self._active:
            self.active(False)
        await self.idle(timeout)
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until every queued radio operation has run (for tests and shells)."""
        if self._ops is not None:
            await asyncio.wait_for(self._ops.join(), timeout)

    def _submit(self, op: Callable[[], Awaitable[Any]]) -> None:
        if self._ops is None:
            raise OSError(errno.EPERM, "BLE not active")
        self._ops.put_nowait(op)

    async def _run_ops(self) -> None:
        assert self._ops is not None
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # asked to stop, though wait_for returned a result that raced the
                # cancellation (Python 3.11): stop now, not at a get() nobody feeds
                raise asyncio.CancelledError
            op = await self._ops.get()
            try:
                await asyncio.wait_for(op(), _OP_TIMEOUT)
            except asyncio.CancelledError:
                # bumble cancels a GATT procedure whose link dropped (an MTU exchange
                # in flight, say); NimBLE aborts it and goes on
                # (ble_gattc_connection_broken). Only this worker's own cancellation
                # stops it.
                if me is not None and me.cancelling():
                    raise
                _log.debug("virtual BLE operation cancelled with its link")
            except Exception as exc:
                _log.warning("virtual BLE operation failed: %r", exc)
            finally:
                self._ops.task_done()

    def _need_active(self) -> Device:
        if not self._active or self._device is None:
            raise OSError(errno.EPERM, "BLE not active")
        return self._device

    # -- configuration -----------------------------------------------------------

    def _name(self) -> str:
        name = self._cfg["gap_name"]
        return name.decode() if isinstance(name, (bytes, bytearray)) else str(name)

    def config(self, *args: str, **kwargs: Any) -> Any:
        """Read one value (``config('mac')``) or set several (``config(mtu=247)``)."""
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("config: one name to read, or keyword arguments to set")
            name = args[0]
            if name == "mac":
                return (1, _addr_bytes(self._radio.address))
            if name == "gap_name":
                return bytes(self._name().encode())
            if name not in self._cfg:
                raise ValueError("unknown config param")
            return self._cfg[name]
        for name, value in kwargs.items():
            if name not in self._cfg:
                raise ValueError("unknown config param")
            if name == "mtu":
                value = int(value)
                if not 23 <= value <= 517:
                    raise ValueError("mtu out of range")
                if self._device is not None:
                    self._device.gatt_server.max_mtu = value
            if name == "gap_name" and isinstance(value, str):
                value = value.encode()
            self._cfg[name] = value
            if name == "gap_name" and self._device is not None:
                self._device.name = self._name()
        return None

    def irq(self, handler: Callable[[int, Any], Any] | None) -> None:
        """Set the event handler ``handler(event, data)``."""
        self._handler = handler

    def _irq(self, event: int, data: Any) -> Any:
        if self._port is not None:
            # The firmware runs in another process (the twin): the IRQ goes out
            # with the next tick's reply.
            if self._active:
                if event == _IRQ_GATTS_WRITE:
                    self._security_before_write(data[0])
                self._port.irq(event, data)
            return None
        handler = self._handler
        if handler is None or not self._active:
            # After active(False) (or a reboot of the pen) nothing reaches the firmware.
            return None
        try:
            return handler(event, data)
        except Exception as exc:
            # MicroPython prints the exception and disables the handler
            # (extmod/modbluetooth.c invoke_irq_handler_run_protected).
            _log.exception("exception in the firmware's BLE IRQ handler (event %d)", event)
            self._radio.irq_errors.append(exc)
            self._handler = None
            return None

    def _make_gap_name_dynamic(self) -> None:
        assert self._device is not None
        for attr in self._device.gatt_server.attributes:
            if (
                isinstance(attr, bgatt.Characteristic)
                and attr.uuid == bgatt.GATT_DEVICE_NAME_CHARACTERISTIC
            ):
                attr.value = att.AttributeValue(read=lambda _c: self._name().encode())

    # -- GAP ----------------------------------------------------------------------

    def gap_advertise(
        self,
        interval_us: int | None,
        adv_data: bytes | None = None,
        *,
        resp_data: bytes | None = None,
        connectable: bool = True,
    ) -> None:
        """Start advertising every ``interval_us`` (None stops)."""
        device = self._need_active()
        if adv_data is not None:
            self._adv_data = bytes(adv_data)
        if resp_data is not None:
            self._resp_data = bytes(resp_data)
        if interval_us is None:
            self._submit(device.stop_advertising)
            return
        interval_ms = min(max(int(interval_us) / 1000.0, 20.0), self._radio.adv_interval_cap_ms)
        if connectable:
            kind = AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
        elif self._resp_data:
            kind = AdvertisingType.UNDIRECTED_SCANNABLE
        else:
            kind = AdvertisingType.UNDIRECTED
        adv, resp = self._adv_data, self._resp_data

        async def start() -> None:
            await device.start_advertising(
                advertising_type=kind,
                advertising_data=adv,
                scan_response_data=resp,
                advertising_interval_min=interval_ms,
                advertising_interval_max=interval_ms,
                auto_restart=False,
            )

        self._submit(start)

    def gap_disconnect(self, conn_handle: int) -> bool:
        """Disconnect a central; False if there is no such connection."""
        self._need_active()
        conn = self._conns.get(conn_handle)
        if conn is None:
            return False

        async def drop() -> None:
            await conn.disconnect()

        self._submit(drop)
        return True

    def gap_passkey(self, conn_handle: int, action: int, passkey: int) -> None:
        """Answer an _IRQ_PASSKEY_ACTION: the passkey shown or typed, or yes/no."""
        self._need_active()
        wait = self._passkey_waits.get(conn_handle)
        if wait is None or wait[1].done():
            raise OSError(errno.EINVAL, "no passkey request pending")
        asked, fut = wait
        if action != asked:
            raise OSError(errno.EINVAL, "passkey action does not match the request")
        if action in (_PASSKEY_ACTION_DISPLAY, _PASSKEY_ACTION_INPUT):
            if not 0 <= int(passkey) <= 999999:
                raise ValueError("passkey is 6 decimal digits")
            fut.set_result(int(passkey))
        else:
            fut.set_result(bool(passkey))

    def gap_scan(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EOPNOTSUPP, "the virtual pen is a peripheral only")

    def gap_connect(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EOPNOTSUPP, "the virtual pen is a peripheral only")

    def gap_pair(self, conn_handle: int) -> None:
        device = self._need_active()
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(errno.ENOTCONN, "not connected")

        async def request() -> None:
            device.request_pairing(conn)

        self._submit(request)

    # -- GATT server --------------------------------------------------------------

    def gatts_register_services(self, services_definition: Any) -> tuple[tuple[int, ...], ...]:
        """Register services; returns the value handles per service."""
        device = self._need_active()
        if self._registered:
            raise OSError(errno.EALREADY, "services already registered in this boot")
        plan: list[tuple[bgatt.Service, list[_Attr]]] = []
        for service_def in services_definition:
            service_uuid, char_defs = service_def[0], service_def[1]
            characteristics = []
            attrs: list[_Attr] = []
            for char_def in char_defs:
                char_uuid, flags = char_def[0], int(char_def[1])
                desc_defs = char_def[2] if len(char_def) > 2 else ()
                value_attr = _Attr(flags)
                descriptors = []
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    cccd_attr = _Attr(FLAG_READ | FLAG_WRITE, char_flags=flags)
                    cccd_attr.cap = 2
                    cccd_attr.obj = bgatt.Descriptor(
                        _CCCD,
                        att.Attribute.READABLE | att.Attribute.WRITEABLE,
                        self._attr_value(cccd_attr, cccd=True),
                    )
                    descriptors.append(cccd_attr.obj)
                desc_attrs = []
                for desc_def in desc_defs:
                    desc_attr = _Attr(int(desc_def[1]))
                    desc_attr.obj = bgatt.Descriptor(
                        UUID(desc_def[0])._bumble(),
                        self._permissions(desc_attr.flags),
                        self._attr_value(desc_attr),
                    )
                    descriptors.append(desc_attr.obj)
                    desc_attrs.append(desc_attr)
                value_attr.obj = bgatt.Characteristic(
                    UUID(char_uuid)._bumble(),
                    bgatt.Characteristic.Properties(flags & 0xFF),
                    self._permissions(flags),
                    self._attr_value(value_attr),
                    descriptors,
                )
                characteristics.append(value_attr.obj)
                attrs.append(value_attr)
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    attrs.append(cccd_attr)
                attrs.extend(desc_attrs)
            plan.append((bgatt.Service(UUID(service_uuid)._bumble(), characteristics), attrs))
        result = []
        for service, attrs in plan:
            device.gatt_server.add_service(service)
            handles = []
            for attr in attrs:
                attr.handle = attr.obj.handle
                self._attrs[attr.handle] = attr
                if not attr.char_flags:  # CCCDs are not returned, as on NimBLE
                    handles.append(attr.handle)
            result.append(tuple(handles))
        self._registered = True
        return tuple(result)

    @staticmethod
    def _permissions(flags: int) -> att.Attribute.Permissions:
        perms = att.Attribute.Permissions(0)
        if flags & (FLAG_READ | _READ_SECURITY):
            perms |= att.Attribute.READABLE
        if flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE | _WRITE_SECURITY):
            perms |= att.Attribute.WRITEABLE
        return perms

    def _attr_value(self, attr: _Attr, cccd: bool = False) -> att.AttributeValue:
        def read(conn: Connection) -> bytes:
            if cccd:
                return self._cccd.get((conn.handle, attr.handle), b"\x00\x00")
            self._check(conn, attr.flags, _READ_SECURITY, FLAG_READ_AUTHENTICATED)
            answer = self._irq(_IRQ_GATTS_READ_REQUEST, (conn.handle, attr.handle))
            if answer:
                raise att.ATT_Error(int(answer), attr.handle)
            return bytes(attr.value)

        def write(conn: Connection, value: bytes) -> None:
            if cccd:
                need = attr.char_flags & (_READ_SECURITY | _WRITE_SECURITY)
                self._check(conn, need, need, FLAG_READ_AUTHENTICATED | FLAG_WRITE_AUTHENTICATED)
                if len(value) != 2:
                    raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH, attr.handle)
                self._cccd[(conn.handle, attr.handle)] = bytes(value)
                attr.value = bytearray(value)
                return  # NimBLE never reports a CCCD write to MicroPython
            else:
                self._check(conn, attr.flags, _WRITE_SECURITY, FLAG_WRITE_AUTHENTICATED)
                if attr.append:
                    room = max(0, attr.cap - len(attr.value))
                    attr.value.extend(bytes(value)[:room])
                else:
                    attr.value = bytearray(bytes(value)[: attr.cap])
            self._irq(_IRQ_GATTS_WRITE, (conn.handle, attr.handle))

        return att.AttributeValue(read=read, write=write)

    def _check(self, conn: Connection, flags: int, security: int, authenticated: int) -> None:
        # The checks of NimBLE's ble_att_svr_check_perms().
        if not flags & security:
            return
        if not conn.is_encrypted:
            bonded = self._load_keys(str(conn.peer_address)) is not None
            raise att.ATT_Error(
                att.ErrorCode.INSUFFICIENT_ENCRYPTION
                if bonded
                else att.ErrorCode.INSUFFICIENT_AUTHENTICATION
            )
        if flags & authenticated and not self._link_authenticated(conn):
            raise att.ATT_Error(att.ErrorCode.INSUFFICIENT_AUTHENTICATION)

    def _link_authenticated(self, conn: Connection) -> bool:
        # NimBLE checks the connection's own security state, which the stack sets
        # at the encryption change, whenever its IRQ reaches the firmware.
        if not conn.is_encrypted:
            return False
        if self._auth.get(conn.handle, False):
            return True
        session = self._device.smp_manager.sessions.get(conn.handle) if self._device else None
        if session is not None and session.pairing_method is not None:
            return bool(session.pairing_method != PairingMethod.JUST_WORKS and session.sc)
        keys = self._keys_cache.get(str(conn.peer_address))
        return bool(keys and keys.ltk and keys.ltk.authenticated)

    def _security_before_write(self, conn_handle: int) -> None:
        # NimBLE reports a link's encryption (_IRQ_ENCRYPTION_UPDATE) before any
        # write that arrives on it; bumble reports pairing only after the key store
        # answered, which the twin answers a tick later. Keep NimBLE's order.
        conn = self._conns.get(conn_handle)
        if conn is None or not conn.is_encrypted:
            return
        auth = self._link_authenticated(conn)
        if self._reported.get(conn_handle) != (True, auth):
            keys = self._keys_cache.get(str(conn.peer_address))
            self._report_security(conn, auth, keys is not None)

    def _attr(self, value_handle: int) -> _Attr:
        attr = self._attrs.get(value_handle)
        if attr is None:
            raise OSError(errno.EINVAL, "invalid handle")
        return attr

    def gatts_read(self, value_handle: int) -> bytes:
        """The local value of an attribute (drains it in append mode)."""
        attr = self._attr(value_handle)
        data = bytes(attr.value)
        if attr.append:
            attr.value = bytearray()
        return data

    def gatts_write(self, value_handle: int, data: bytes, send_update: bool = False) -> None:
        """Set the local value; with ``send_update`` notify/indicate subscribers."""
        attr = self._attr(value_handle)
        attr.value = bytearray(data)
        attr.cap = max(attr.cap, len(attr.value))
        if not send_update:
            return
        for conn_handle in list(self._conns):
            cccd = self._cccd.get((conn_handle, value_handle + 1), b"\x00\x00")
            if cccd[0] & 0x01:
                self.gatts_notify(conn_handle, value_handle)
            elif cccd[0] & 0x02:
                self.gatts_indicate(conn_handle, value_handle)

    def gatts_set_buffer(self, value_handle: int, len: int, append: bool = False) -> None:
        """Size of an attribute's receive buffer; ``append`` keeps every write."""
        attr = self._attr(value_handle)
        attr.cap = min(int(len), _MAX_ATTR_LEN)
        attr.append = bool(append)
        del attr.value[attr.cap :]

    def _conn_and_attr(self, conn_handle: int, value_handle: int) -> tuple[Connection, _Attr]:
        self._need_active()
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(errno.ENOTCONN, "not connected")
        return conn, self._attr(value_handle)

    def gatts_notify(self, conn_handle: int, value_handle: int, data: bytes | None = None) -> None:
        """Send a notification (whether or not the client subscribed)."""
        conn, attr = self._conn_and_attr(conn_handle, value_handle)
        payload = bytes(attr.value) if data is None else bytes(data)
        device = self._device
        assert device is not None

        async def send() -> None:
            if conn.handle in self._conns:
                await device.gatt_server.notify_subscriber(conn, attr.obj, payload, force=True)

        self._submit(send)

    def gatts_indicate(
        self, conn_handle: int, value_handle: int, data: bytes | None = None
    ) -> None:
        """Send an indication; _IRQ_GATTS_INDICATE_DONE tells the outcome."""
        conn, attr = self._conn_and_attr(conn_handle, value_handle)
        payload = bytes(attr.value) if data is None else bytes(data)
        device = self._device
        assert device is not None

        async def send() -> None:
            status = 0
            try:
                await device.gatt_server.indicate_subscriber(conn, attr.obj, payload, force=True)
            except Exception:
                status = 1
            self._irq(_IRQ_GATTS_INDICATE_DONE, (conn_handle, value_handle, status))

        self._submit(send)

    def gattc_exchange_mtu(self, conn_handle: int) -> None:
        """Ask the central for a larger ATT MTU (``config('mtu')``)."""
        self._need_active()
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(errno.ENOTCONN, "not connected")
        mtu = int(self._cfg["mtu"])

        async def exchange() -> None:
            await conn.gatt_client.request_mtu(mtu)

        self._submit(exchange)

    # -- connections and security --------------------------------------------------

    def _on_connection(self, conn: Connection) -> None:
        if conn.transport != PhysicalTransport.LE or conn.role != hci.Role.PERIPHERAL:
            return
        handle = conn.handle
        self._conns[handle] = conn
        self._auth[handle] = False

        def on_disconnection(reason: int) -> None:
            self._conns.pop(handle, None)
            self._auth.pop(handle, None)
            self._reported.pop(handle, None)
            for key in [k for k in self._cccd if k[0] == handle]:
                del self._cccd[key]
            wait = self._passkey_waits.pop(handle, None)
            if wait is not None and not wait[1].done():
                wait[1].cancel()
            self._irq(
                _IRQ_CENTRAL_DISCONNECT,
                (handle, conn.peer_address.address_type, _addr_bytes(conn.peer_address)),
            )

        def on_mtu() -> None:
            self._irq(_IRQ_MTU_EXCHANGED, (handle, conn.att_mtu))

        def on_parameters() -> None:
            p = conn.parameters
            self._irq(
                _IRQ_CONNECTION_UPDATE,
                (
                    handle,
                    round(p.connection_interval / 1.25),
                    p.peripheral_latency,
                    round(p.supervision_timeout / 10),
                    0,
                ),
            )

        def on_encryption() -> None:
            session = self._device.smp_manager.sessions.get(handle) if self._device else None
            if session is not None and not session.completed:
                return  # pairing in progress: reported when it ends
            keys = self._load_keys(str(conn.peer_address))
            authenticated = bool(keys and keys.ltk and keys.ltk.authenticated)
            self._report_security(conn, authenticated, keys is not None)

        def on_pairing(keys: PairingKeys) -> None:
            self._keys_cache[str(conn.peer_address)] = keys
            session = self._device.smp_manager.sessions.get(handle) if self._device else None
            self._key_sizes[str(conn.peer_address)] = self._negotiated_key_size(session)
            authenticated = bool(keys.ltk and keys.ltk.authenticated)
            self._report_security(conn, authenticated, self._bonding(str(conn.peer_address)))

        def on_pairing_failure(reason: int) -> None:
            self._report_security(conn, self._auth.get(handle, False), False)

        conn.on(conn.EVENT_DISCONNECTION, on_disconnection)
        conn.on(conn.EVENT_CONNECTION_ATT_MTU_UPDATE, on_mtu)
        conn.on(conn.EVENT_CONNECTION_PARAMETERS_UPDATE, on_parameters)
        conn.on(conn.EVENT_CONNECTION_ENCRYPTION_CHANGE, on_encryption)
        conn.on(conn.EVENT_PAIRING, on_pairing)
        conn.on(conn.EVENT_PAIRING_FAILURE, on_pairing_failure)
        self._irq(
            _IRQ_CENTRAL_CONNECT,
            (handle, conn.peer_address.address_type, _addr_bytes(conn.peer_address)),
        )

    def _report_security(self, conn: Connection, authenticated: bool, bonded: bool) -> None:
        if conn.handle not in self._conns:
            return
        self._auth[conn.handle] = authenticated and conn.is_encrypted
        state = (bool(conn.is_encrypted), self._auth[conn.handle])
        if self._reported.get(conn.handle) == state:
            return  # already told (the twin learns of it before the first write)
        self._reported[conn.handle] = state
        self._irq(
            _IRQ_ENCRYPTION_UPDATE,
            (  # ints, as NimBLE's binding passes them (modbluetooth_nimble.c)
                conn.handle,
                int(bool(conn.is_encrypted)),
                int(self._auth[conn.handle]),
                int(bool(bonded)),
                self._key_sizes.get(str(conn.peer_address), 16) if conn.is_encrypted else 0,
            ),
        )

    @staticmethod
    def _negotiated_key_size(session: Any) -> int:
        # bumble's virtual controller reports no key size (Encryption Change v1);
        # NimBLE's is the pairing's: min of the two Pairing Request/Response
        # "Maximum Encryption Key Size" fields (octet 4 of each PDU).
        preq = getattr(session, "preq", None)
        pres = getattr(session, "pres", None)
        if preq and pres and len(preq) > 4 and len(pres) > 4:
            return min(preq[4], pres[4])
        return 16

    def _pairing_config(self, conn: Connection) -> PairingConfig:
        return PairingConfig(
            sc=bool(self._cfg["le_secure"]),
            mitm=bool(self._cfg["mitm"]),
            bonding=bool(self._cfg["bond"]),
            delegate=_PenDelegate(self, conn.handle, int(self._cfg["io"])),
        )

    # -- secrets (bonds), kept by the firmware -------------------------------------

    async def _ask(self, event: int, data: Any) -> Any:
        """An IRQ whose answer the stack needs (GET/SET_SECRET, READ_REQUEST)."""
        if self._port is not None:
            if not self._active:
                return None
            return await self._port.ask(event, data)
        return self._irq(event, data)

    def _get_secret(self, sec_type: int, index: int, key: bytes | None) -> bytes | None:
        value = self._irq(_IRQ_GET_SECRET, (sec_type, index, key))
        return None if value is None else bytes(value)

    def _parse_keys(self, name: str, value: Any) -> PairingKeys | None:
        if value is None:
            return None
        try:
            record = _secret_record(value)
            self._key_sizes[name] = int(record["key_size"])
            return PairingKeys.from_dict(record["keys"])
        except (ValueError, KeyError, TypeError):
            _log.warning("unreadable bond for %s", name)
            return None

    def _load_keys(self, name: str) -> PairingKeys | None:
        """The bond with ``name``, asked of the firmware now (in-process), or the
        last answer it gave (the twin answers only at its next tick)."""
        if self._port is not None:
            return self._keys_cache.get(name)
        keys = self._parse_keys(name, self._get_secret(SEC_TYPE_PEER, 0, _store_key(name)))
        if keys is not None and self._get_secret(SEC_TYPE_OUR, 0, _store_key(name)) is None:
            keys = None  # half a bond: NimBLE cannot use it
        self._remember(name, keys)
        return keys

    async def _aload_keys(self, name: str) -> PairingKeys | None:
        value = await self._ask(_IRQ_GET_SECRET, (SEC_TYPE_PEER, 0, _store_key(name)))
        keys = self._parse_keys(name, value)
        if keys is not None and await self._ask(
                _IRQ_GET_SECRET, (SEC_TYPE_OUR, 0, _store_key(name))) is None:
            keys = None  # half a bond: NimBLE cannot use it
        self._remember(name, keys)
        return keys

    def _remember(self, name: str, keys: PairingKeys | None) -> None:
        if keys is None:
            self._keys_cache.pop(name, None)
        else:
            self._keys_cache[name] = keys

    def _session(self, name: str) -> Any:
        device = self._device
        for session in (device.smp_manager.sessions.values() if device else ()):
            if str(session.connection.peer_address) == name:
                return session
        return None

    def _bonding(self, name: str) -> bool:
        # Both sides asked for bonding (NimBLE's BLE_SM_PROC_F_BONDING).
        if not self._cfg["bond"]:
            return False
        session = self._session(name)
        return True if session is None else bool(session.bonding)

    async def _astore_keys(self, name: str, keys: PairingKeys) -> None:
        if not self._bonding(name):
            return
        # The stack knows the keys it just made whatever the store answers (a
        # failed store loses the bond at the next reset, not this link's security).
        self._keys_cache[name] = keys
        self._key_sizes[name] = self._negotiated_key_size(self._session(name))
        record = _secret_value(name, keys, self._key_sizes[name])
        stored = True
        for sec_type in BOND_SEC_TYPES:  # NimBLE writes both halves of the bond
            if not await self._store_write(sec_type, name, record):
                stored = False
        if not stored:
            _log.warning("the firmware did not store the bond with %s", name)

    async def _store_write(self, sec_type: int, name: str, record: bytes) -> bool:
        # ble_store_write: on a refusal (ESTORE_CAP) ble_store_util_status_rr
        # unpairs the oldest bonded peer and the write is tried again.
        for _ in range(_STORE_LOOP_LIMIT):
            if await self._ask(_IRQ_SET_SECRET, (sec_type, _store_key(name), record)):
                return True
            oldest = await self._ask(_IRQ_GET_SECRET, (SEC_TYPE_OUR, 0, _ADDR_ANY_KEY))
            if oldest is None:
                return False  # no bonded peer to unpair: BLE_HS_ENOENT, no bond
            try:
                victim = str(_secret_record(oldest)["peer"])
            except (ValueError, KeyError, TypeError):
                return False
            await self._unpair(victim)
        self._loop_error("the store refused a bond and kept the peer NimBLE unpaired")
        return False

    async def _unpair(self, name: str) -> None:
        # ble_gap_unpair: end that peer's link, then delete its secrets.
        for conn in list(self._conns.values()):
            if str(conn.peer_address) == name:
                with contextlib.suppress(Exception):
                    await conn.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        await self._delete_peer(name)

    async def _delete_peer(self, name: str) -> None:
        # ble_store_util_delete_peer: each type deleted until the store answers False.
        self._keys_cache.pop(name, None)
        for sec_type in BOND_SEC_TYPES:
            for _ in range(_STORE_LOOP_LIMIT):
                if not await self._ask(_IRQ_SET_SECRET, (sec_type, _store_key(name), None)):
                    break
            else:
                self._loop_error("the store answers True to every delete")
                return

    def _loop_error(self, what: str) -> None:
        exc = RuntimeError(f"NimBLE would loop for ever: {what}")
        _log.error("%s", exc)
        self._radio.irq_errors.append(exc)
