"""The pen over Bluetooth Low Energy, through bleak.

By default bleak uses the operating system's Bluetooth stack; any bleak backend
class can be passed instead (for instance the bumble one, for a USB dongle or the
virtual pen). Frames are cut into ATT payloads at the negotiated MTU and written
with response to the request characteristic; the pen's notifications on the
event characteristic are joined back into frames (see
:mod:`scalppen.transports.ble_framing`).

Known bleak pitfalls handled here: a fresh ``BleakClient`` for every connection
attempt; connect attempts bounded by timeouts of 10 s or more and retried;
notifications enabled before anything is sent (the pen stays quiet until the host
has subscribed and said HELLO); ``mtu_size`` reading 23 on BlueZ until acquired;
no pairing agent on BlueZ (one is registered for :meth:`BleTransport.pair`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from scalppen.transports.base import (
    WRITE_TIMEOUT,
    AuthenticationError,
    ConnectError,
    ExtraMissing,
    FrameLinkBase,
    LinkLost,
    NotPaired,
    PairingFailed,
    PasskeyProvider,
    TransportError,
    TransportTimeout,
    WrongPasskey,
    error_chain,
)
from scalppen.transports.ble_framing import BleFramer, clamp_mtu
from scalppen_protocol.codes import MIN_MTU
from scalppen_protocol.errors import ProtocolError

try:
    from bleak import BleakClient, BleakScanner
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import BaseBleakScanner
    from bleak.exc import (
        BleakBluetoothNotAvailableError,
        BleakCharacteristicNotFoundError,
        BleakError,
    )
except ImportError as exc:  # pragma: no cover - bleak is a core dependency
    raise ExtraMissing("The BLE transport", "bleak") from exc

_log = logging.getLogger(__name__)

#: ATT errors that mean "pair first" (insufficient authentication, authorization,
#: encryption key size, encryption).
AUTH_ATT_ERRORS: Final = frozenset({0x05, 0x08, 0x0C, 0x0F})
_AUTH_WORDS: Final = (
    "insufficient authentication",
    "insufficient authorization",
    "insufficient encryption",
    "notpermitted",
    "not permitted",
    "notauthorized",
    "not authorized",
)
CONNECT_TIMEOUT: Final = 15.0
CONNECT_ATTEMPTS: Final = 3
PAIR_TIMEOUT: Final = 90.0
_SMALL_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class PenUuids:
    """The pen's GATT identifiers, lower-case 128-bit strings."""

    service: str
    request: str
    event: str


def pen_uuids() -> PenUuids:
    """The UUIDs from ``scalppen_protocol.gatt`` (imported when first needed).

    Raises:
        TransportError: the protocol package has no ``gatt`` module.
    """
    try:
        gatt = importlib.import_module("scalppen_protocol.gatt")
        return PenUuids(
            str(gatt.PEN_SERVICE_UUID).lower(),
            str(gatt.REQUEST_CHAR_UUID).lower(),
            str(gatt.EVENT_CHAR_UUID).lower(),
        )
    except (ImportError, AttributeError) as exc:
        raise TransportError(
            "scalppen_protocol.gatt (the pen's GATT UUIDs) is missing or incomplete"
        ) from exc


@dataclass(frozen=True)
class FoundPen:
    """A pen seen advertising.

    Attributes:
        name: the advertised local name (or the OS's name for the device).
        address: the Bluetooth address (a UUID on macOS).
        rssi: signal strength in dBm of the last advertisement.
    """

    name: str
    address: str
    rssi: int


def _pairing_reason(exc: BaseException) -> tuple[bool, str]:
    """(the passkey was wrong, why the pairing failed in words) from the chain of
    errors a backend raised (bumble wraps SMP's ProtocolError in BleakErrors)."""
    chain = error_chain(exc)
    text = " ".join(str(x) for x in chain)
    if "CONFIRM_VALUE_FAILED" in text or "AuthenticationFailed" in text:
        return True, "the passkey was wrong"
    if "PASSKEY_ENTRY_FAILED" in text:
        return False, "no 6-digit passkey was entered"
    if "PAIRING_NOT_SUPPORTED" in text or "AUTHENTICATION_REQUIREMENTS" in text:
        return False, "the pen refused to pair now"
    inner = chain[-1]
    words = " ".join(str(inner).split()) or type(inner).__name__
    while words.startswith("pairing with ") and " failed: " in words:
        words = words.split(" failed: ", 1)[1]
    return False, words


def _att_code(exc: BaseException) -> int | None:
    for attr in ("code", "error_code", "att_error"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return int(value)
    return None


def is_auth_error(exc: BaseException) -> bool:
    """True when ``exc`` says the link lacks authentication or encryption."""
    if isinstance(exc, AuthenticationError):
        return True
    code = _att_code(exc)
    if code is not None and code in AUTH_ATT_ERRORS:
        return True
    text = str(exc).lower()
    return any(word in text for word in _AUTH_WORDS)


def _is_bluez(client: BleakClient) -> bool:
    backend = getattr(client, "_backend", None)
    return type(backend).__name__ == "BleakClientBlueZDBus"


class BleTransport(FrameLinkBase):
    """Frames to and from one pen over BLE.

    Args:
        address: the pen's address, or a ``BLEDevice`` from a scan.
        backend: a bleak client backend class; None picks the OS stack.
        connect_timeout: seconds for one connect attempt (at least 10).
        attempts: connect attempts before giving up.
        retry_delay: seconds before the second attempt (doubles each time).
        write_timeout: seconds for one ATT write with response.
        uuids: the pen's GATT UUIDs; by default from ``scalppen_protocol.gatt``.
        client_kwargs: extra keyword arguments for ``BleakClient`` (for example
            ``bluez={"adapter": "hci1"}``, or options of a custom backend).
    """

    def __init__(
        self,
        address: str | BLEDevice,
        *,
        backend: type[BaseBleakClient] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        attempts: int = CONNECT_ATTEMPTS,
        retry_delay: float = 1.0,
        write_timeout: float = WRITE_TIMEOUT,
        uuids: PenUuids | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._address = address
        self._backend = backend
        self._connect_timeout = max(10.0, connect_timeout)
        self._attempts = max(1, attempts)
        self._retry_delay = retry_delay
        self._write_timeout = write_timeout
        self._uuids = uuids
        self._client_kwargs = dict(client_kwargs or {})
        self._client: BleakClient | None = None
        self._framer = BleFramer()
        self._send_lock = asyncio.Lock()
        self._subscribed = False

    # -- properties --------------------------------------------------------------

    @property
    def address(self) -> str:
        """The pen's address as given (or as reported by bleak once connected)."""
        if self._client is not None:
            return self._client.address
        return self._address if isinstance(self._address, str) else self._address.address

    @property
    def mtu(self) -> int:
        """The ATT MTU fragments are cut for (23 until the link tells more)."""
        return self._framer.mtu

    @property
    def uuids(self) -> PenUuids:
        """The pen's GATT UUIDs in use."""
        if self._uuids is None:
            self._uuids = pen_uuids()
        return self._uuids

    @property
    def bleak_client(self) -> BleakClient | None:
        """The current ``BleakClient`` (a new one for every connection)."""
        return self._client

    # -- connecting --------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, learn the MTU and enable notifications.

        Raises:
            ConnectError: no connection after all attempts, or not a pen.
            NotPaired: the pen requires a bond (call :meth:`pair`).
        """
        if self.connected:
            return
        if self._client is None or not self._client.is_connected:
            await self._open_link()
        try:
            await self._subscribe()
        except BaseException:
            await self._drop_client()
            raise
        self._link_up()

    async def pair(self, passkey_provider: PasskeyProvider, timeout: float = PAIR_TIMEOUT) -> None:
        """Pair (bond) with the pen; the user types the passkey the pen shows.

        Connects first if needed. On Linux with BlueZ a pairing agent is
        registered for the duration so BlueZ can ask for the passkey. Backends
        whose ``pair()`` takes a ``passkey_provider`` keyword (the bumble one) get
        it directly. Afterwards the transport is connected and subscribed.

        Raises:
            ConnectError: no connection.
            PairingFailed: wrong passkey, cancelled, or timed out.
        """
        uuids = self.uuids
        if self._client is None or not self._client.is_connected:
            await self._open_link()
        client = self._client
        assert client is not None
        try:
            async with asyncio.timeout(timeout):
                if _is_bluez(client):
                    await self._pair_bluez(client, passkey_provider)
                else:
                    await self._pair_other(client, passkey_provider)
        except PairingFailed:
            await self._drop_client()
            raise
        except TimeoutError:
            await self._drop_client()
            raise PairingFailed(f"pairing did not finish within {timeout:.0f} s") from None
        except (BleakError, OSError, EOFError) as exc:
            await self._drop_client()
            wrong, reason = _pairing_reason(exc)
            cls = WrongPasskey if wrong else PairingFailed
            raise cls(f"pairing with {self.address} failed: {reason}") from exc
        except asyncio.CancelledError:
            # bumble aborts the pairing when the pen drops the link (it refuses to
            # pair outside its window, or while wrong passkeys back off)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            await self._drop_client()
            raise PairingFailed(f"{self.address} dropped the link while pairing") from None
        _log.info("paired with %s (service %s)", self.address, uuids.service)
        self._framer.mtu = await self._read_mtu(client)
        if not self.connected:
            await self.connect()

    async def _pair_bluez(self, client: BleakClient, provider: PasskeyProvider) -> None:
        from scalppen.transports.bluez_agent import BluezPasskeyAgent

        async with BluezPasskeyAgent(provider):
            await client.pair()

    async def _pair_other(self, client: BleakClient, provider: PasskeyProvider) -> None:
        backend = getattr(client, "_backend", None)
        kwargs: dict[str, Any] = {}
        try:
            params = inspect.signature(backend.pair).parameters if backend else {}
        except (TypeError, ValueError):
            params = {}
        if "passkey_provider" in params:
            kwargs["passkey_provider"] = provider
        try:
            await client.pair(**kwargs)
        except NotImplementedError:
            # macOS pairs by itself on the first protected access (OS dialog).
            _log.info("this platform pairs on first access; the OS will ask for the passkey")

    async def _open_link(self) -> None:
        uuids = self.uuids
        last: BaseException | None = None
        for attempt in range(1, self._attempts + 1):
            client = BleakClient(
                self._address,
                disconnected_callback=self._on_bleak_disconnect,
                timeout=self._connect_timeout,
                backend=self._backend,
                **self._client_kwargs,
            )
            self._client = client
            try:
                async with asyncio.timeout(self._connect_timeout + _SMALL_TIMEOUT):
                    await client.connect()
            except BleakBluetoothNotAvailableError as exc:
                await self._drop_client()
                raise ConnectError(f"Bluetooth is not available: {exc}") from exc
            except (BleakError, TimeoutError, OSError, EOFError) as exc:
                last = exc
                await self._drop_client()
                _log.info("connect attempt %d/%d to %s failed: %r", attempt, self._attempts,
                          self.address, exc)
                if attempt < self._attempts:
                    await asyncio.sleep(self._retry_delay * 2 ** (attempt - 1))
                continue
            self._framer.reset()
            self._framer.mtu = await self._read_mtu(client)
            _log.info("connected to %s, ATT MTU %d", self.address, self._framer.mtu)
            if uuids.service not in {s.uuid.lower() for s in client.services}:
                await self._drop_client()
                raise ConnectError(f"{self.address} does not offer the pen service")
            return
        what = "timed out" if isinstance(last, TimeoutError) else f"failed: {last}"
        raise ConnectError(
            f"could not connect to {self.address} ({self._attempts} attempts, last {what}); "
            "is the pen on (an idle pen sleeps: press its button), in range and not "
            "connected to another device?"
        ) from last

    async def _read_mtu(self, client: BleakClient) -> int:
        backend = getattr(client, "_backend", None)
        acquire = getattr(backend, "_acquire_mtu", None)
        if acquire is not None and getattr(backend, "_mtu_size", 0) is None:
            try:
                await asyncio.wait_for(acquire(), _SMALL_TIMEOUT)
            except Exception as exc:
                _log.debug("could not acquire the MTU (%r); using %d", exc, MIN_MTU)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return clamp_mtu(client.mtu_size)
            except (BleakError, NotImplementedError, AttributeError, TypeError):
                return MIN_MTU

    async def _subscribe(self) -> None:
        client = self._client
        assert client is not None
        try:
            await asyncio.wait_for(
                client.start_notify(self.uuids.event, self._on_notify), self._connect_timeout
            )
        except BleakCharacteristicNotFoundError as exc:
            raise ConnectError(f"{self.address} has no pen event characteristic") from exc
        except TimeoutError as exc:
            raise ConnectError("enabling notifications timed out") from exc
        except Exception as exc:
            if is_auth_error(exc):
                raise NotPaired(
                    f"{self.address} requires pairing: pair it first (the pen shows a passkey)",
                    _att_code(exc),
                ) from exc
            if isinstance(exc, BleakError | OSError | EOFError):
                raise ConnectError(f"enabling notifications failed: {exc}") from exc
            raise
        self._subscribed = True

    # -- bleak callbacks ---------------------------------------------------------

    def _on_bleak_disconnect(self, client: BleakClient) -> None:
        if client is not self._client:
            return  # an earlier attempt's client
        _log.info("link to %s dropped", self.address)
        self._subscribed = False
        self._framer.reset()
        self._link_down(f"link to {self.address} dropped")

    def _on_notify(self, _char: object, data: bytearray) -> None:
        try:
            frame = self._framer.join(bytes(data))
        except ProtocolError as err:
            self._report(err)
            return
        except Exception as exc:  # never let a notification kill bleak's loop
            _log.exception("unexpected error in a notification: %r", exc)
            return
        if frame is not None:
            self._deliver(frame)

    # -- I/O ---------------------------------------------------------------------

    async def send_frame(self, frame: bytes) -> None:
        """Write one frame to the request characteristic, fragment by fragment.

        Raises:
            LinkLost: not connected, or the link dropped while writing.
            NotPaired: the pen refused the write for lack of a bond.
            TransportTimeout: a write was not acknowledged in time.
            TransportError: any other write failure.
        """
        if not self.connected or self._client is None:
            raise LinkLost("not connected")
        async with self._send_lock:
            client = self._client
            for part in self._framer.split(frame):
                try:
                    await self._unless_lost(
                        client.write_gatt_char(self.uuids.request, part, response=True),
                        self._write_timeout,
                        "an ATT write",
                    )
                except (LinkLost, TransportTimeout):
                    raise
                except Exception as exc:
                    if is_auth_error(exc):
                        raise NotPaired(
                            f"the pen refused the write: {exc}", _att_code(exc)
                        ) from exc
                    if not client.is_connected:
                        self._link_down(f"link to {self.address} dropped")
                        raise LinkLost(f"link to {self.address} dropped during a write") from exc
                    raise TransportError(f"ATT write failed: {exc}") from exc

    async def close(self) -> None:
        """Stop notifications and disconnect. Safe to call more than once."""
        self._link_down("closed by the host", requested=True)
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._subscribed = False
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), _SMALL_TIMEOUT)


async def scan(
    timeout: float = 5.0,
    *,
    backend: type[BaseBleakScanner] | None = None,
    uuids: PenUuids | None = None,
    **scanner_kwargs: Any,
) -> list[FoundPen]:
    """Listen for advertising pens; strongest signal first.

    Args:
        timeout: seconds to listen.
        backend: a bleak scanner backend class; None picks the OS stack.
        uuids: the pen's GATT UUIDs; by default from ``scalppen_protocol.gatt``.
        **scanner_kwargs: passed on to ``BleakScanner`` (e.g. ``bluez={...}``).

    Raises:
        ConnectError: Bluetooth is not available.
    """
    service = (uuids or pen_uuids()).service
    try:
        async with BleakScanner(
            service_uuids=[service], backend=backend, **scanner_kwargs
        ) as scanner:
            await asyncio.sleep(timeout)
    except (BleakError, OSError) as exc:
        raise ConnectError(f"cannot scan: {exc}") from exc
    found = scanner.discovered_devices_and_advertisement_data
    pens = [
        FoundPen(adv.local_name or device.name or "", device.address, adv.rssi)
        for device, adv in found.values()
        if service in {u.lower() for u in adv.service_uuids}
    ]
    return sorted(pens, key=lambda p: (-p.rssi, p.address))


__all__ = [
    "BleTransport",
    "FoundPen",
    "PenUuids",
    "is_auth_error",
    "pen_uuids",
    "scan",
]
