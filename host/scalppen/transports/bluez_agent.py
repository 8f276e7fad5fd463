"""A BlueZ pairing agent (``org.bluez.Agent1``) that hands BlueZ the typed passkey.

bleak registers no pairing agent on Linux, so without one BlueZ cannot ask for
the 6-digit passkey the pen shows on its display. :class:`BluezPasskeyAgent`
registers an agent with the capability ``KeyboardOnly`` for the duration of a
pairing: BlueZ calls ``RequestPasskey``, the agent asks the passkey provider
(usually a prompt for the user) and returns the number.

The decisions (what to answer for each agent call) live in
:class:`PasskeyAgentLogic`, which needs no D-Bus; :class:`Agent1Interface` is the
thin D-Bus face over it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from types import TracebackType
from typing import Annotated, Final, Self

from scalppen.transports.base import ExtraMissing, PairingFailed, PasskeyProvider

try:
    from dbus_fast import BusType, DBusError, Message, MessageType
    from dbus_fast.aio import MessageBus
    from dbus_fast.annotations import (
        DBusObjectPath,
        DBusSignature,
        DBusStr,
        DBusUInt16,
        DBusUInt32,
    )
    from dbus_fast.service import ServiceInterface, dbus_method
except ImportError as exc:  # pragma: no cover - depends on the platform
    raise ExtraMissing("Pairing with BlueZ (Linux)", "dbus-fast") from exc

_log = logging.getLogger(__name__)

#: Return annotation of D-Bus methods that return nothing.
NoReply = Annotated[None, DBusSignature("")]

BLUEZ_SERVICE: Final = "org.bluez"
AGENT_MANAGER_PATH: Final = "/org/bluez"
AGENT_MANAGER_INTERFACE: Final = "org.bluez.AgentManager1"
AGENT_INTERFACE: Final = "org.bluez.Agent1"
AGENT_PATH: Final = "/org/scalppen/agent"
CAPABILITY: Final = "KeyboardOnly"
REJECTED: Final = "org.bluez.Error.Rejected"
CANCELED: Final = "org.bluez.Error.Canceled"
MAX_PASSKEY: Final = 999_999


class AgentRejected(Exception):
    """The agent refuses a request; BlueZ gets ``org.bluez.Error.Rejected``."""


class AgentCanceled(Exception):
    """The user cancelled; BlueZ gets ``org.bluez.Error.Canceled``."""


def parse_passkey(value: int | str) -> int:
    """Check a typed passkey: 6 digits at most, 0..999999.

    Raises:
        AgentRejected: not a number in range.
    """
    if isinstance(value, bool):
        raise AgentRejected("passkey must be a number")
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if not text.isdigit() or len(text) > 6:
            raise AgentRejected(f"passkey {value!r} is not 6 digits")
        number = int(text)
    else:
        number = int(value)
    if not 0 <= number <= MAX_PASSKEY:
        raise AgentRejected(f"passkey {number} out of range 000000..999999")
    return number


class PasskeyAgentLogic:
    """What the agent answers, without D-Bus.

    Args:
        passkey_provider: returns the passkey the user typed (may be async).
        device_path: accept requests only for this BlueZ device object path
            (e.g. ``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF``); None accepts any.
        timeout: seconds to wait for the provider.
    """

    def __init__(
        self,
        passkey_provider: PasskeyProvider,
        device_path: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self._provider = passkey_provider
        self._device_path = device_path
        self._timeout = timeout
        #: Set when BlueZ has asked for a passkey (for diagnostics and tests).
        self.passkey_requested = False
        #: Set when BlueZ cancelled the request.
        self.canceled = False
        #: Set when BlueZ released the agent.
        self.released = False

    def _check_device(self, device: str) -> None:
        if self._device_path is not None and device != self._device_path:
            raise AgentRejected(f"not pairing with {device}")

    async def request_passkey(self, device: str) -> int:
        """Answer ``RequestPasskey``: the number the user typed.

        Raises:
            AgentRejected: another device, or an invalid passkey.
            AgentCanceled: the provider raised or gave up.
        """
        self._check_device(device)
        self.passkey_requested = True
        try:
            result = self._provider()
            if inspect.isawaitable(result):
                value = await asyncio.wait_for(result, self._timeout)
            else:
                value = result
        except (asyncio.CancelledError, TimeoutError, EOFError, KeyboardInterrupt) as exc:
            raise AgentCanceled(f"no passkey entered: {exc!r}") from exc
        except AgentRejected:
            raise
        except Exception as exc:
            raise AgentCanceled(f"passkey provider failed: {exc}") from exc
        return parse_passkey(value)

    def request_pin_code(self, device: str) -> str:
        """Legacy PIN pairing is not used by the pen.

        Raises:
            AgentRejected: always.
        """
        raise AgentRejected("the pen pairs with a passkey, not a PIN code")

    def request_confirmation(self, device: str, passkey: int) -> None:
        """Numeric comparison is not what the pen offers.

        Raises:
            AgentRejected: always (the agent is KeyboardOnly).
        """
        raise AgentRejected("numeric comparison refused: type the passkey the pen shows")

    def request_authorization(self, device: str) -> None:
        """Unauthenticated ("just works") pairing would defeat MITM protection.

        Raises:
            AgentRejected: always.
        """
        raise AgentRejected("pairing without a passkey refused")

    def authorize_service(self, device: str, uuid: str) -> None:
        """Incoming service connections are not ours to allow.

        Raises:
            AgentRejected: always.
        """
        raise AgentRejected(f"service {uuid} not authorised by this agent")

    def display(self, device: str, what: str) -> None:
        """Display requests have no screen on the host side; they are logged."""
        _log.info("BlueZ asks to display %s for %s (ignored)", what, device)

    def cancel(self) -> None:
        """BlueZ cancelled the pending request."""
        self.canceled = True

    def release(self) -> None:
        """BlueZ released the agent."""
        self.released = True


def _dbus_error(exc: AgentRejected | AgentCanceled) -> DBusError:
    name = CANCELED if isinstance(exc, AgentCanceled) else REJECTED
    return DBusError(name, str(exc))


class Agent1Interface(ServiceInterface):
    """``org.bluez.Agent1`` on D-Bus, answering through a :class:`PasskeyAgentLogic`."""

    def __init__(self, logic: PasskeyAgentLogic) -> None:
        super().__init__(AGENT_INTERFACE)
        self.logic = logic

    @dbus_method()
    def Release(self) -> NoReply:
        self.logic.release()

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        try:
            return self.logic.request_pin_code(device)
        except AgentRejected as exc:
            raise _dbus_error(exc) from None

    @dbus_method()
    def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> NoReply:
        self.logic.display(device, "a PIN code")

    @dbus_method()
    async def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        try:
            return await self.logic.request_passkey(device)
        except (AgentRejected, AgentCanceled) as exc:
            raise _dbus_error(exc) from None

    @dbus_method()
    def DisplayPasskey(
        self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16
    ) -> NoReply:
        self.logic.display(device, "a passkey")

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> NoReply:
        try:
            self.logic.request_confirmation(device, passkey)
        except AgentRejected as exc:
            raise _dbus_error(exc) from None

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> NoReply:
        try:
            self.logic.request_authorization(device)
        except AgentRejected as exc:
            raise _dbus_error(exc) from None

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> NoReply:
        try:
            self.logic.authorize_service(device, uuid)
        except AgentRejected as exc:
            raise _dbus_error(exc) from None

    @dbus_method()
    def Cancel(self) -> NoReply:
        self.logic.cancel()


class BluezPasskeyAgent:
    """Registers the agent with BlueZ for the duration of an ``async with`` block.

    Exports :class:`Agent1Interface` at :data:`AGENT_PATH`, calls
    ``AgentManager1.RegisterAgent(path, "KeyboardOnly")`` and
    ``RequestDefaultAgent(path)``, and on exit ``UnregisterAgent(path)``.

    Args:
        passkey_provider: returns the passkey the user typed (may be async).
        device_path: only answer for this BlueZ device object path (None: any).
        bus: an already connected system bus; by default a new one is opened
            and closed again on exit.
        path: the object path to export the agent at.
    """

    def __init__(
        self,
        passkey_provider: PasskeyProvider,
        *,
        device_path: str | None = None,
        bus: MessageBus | None = None,
        path: str = AGENT_PATH,
    ) -> None:
        self.logic = PasskeyAgentLogic(passkey_provider, device_path)
        self._interface = Agent1Interface(self.logic)
        self._bus = bus
        self._own_bus = bus is None
        self._path = path
        self._registered = False

    async def _call(self, member: str, signature: str, body: list[object]) -> None:
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination=BLUEZ_SERVICE,
                path=AGENT_MANAGER_PATH,
                interface=AGENT_MANAGER_INTERFACE,
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply is None or reply.message_type == MessageType.ERROR:
            detail = "" if reply is None else f"{reply.error_name}: {reply.body}"
            raise PairingFailed(f"BlueZ refused {member} ({detail})")

    async def register(self) -> None:
        """Export the agent and make it BlueZ's default agent.

        Raises:
            PairingFailed: BlueZ is not reachable or refused the agent.
        """
        if self._bus is None:
            try:
                self._bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            except Exception as exc:
                raise PairingFailed(f"cannot reach BlueZ on the system bus: {exc}") from exc
        self._bus.export(self._path, self._interface)
        try:
            await self._call("RegisterAgent", "os", [self._path, CAPABILITY])
            self._registered = True
            await self._call("RequestDefaultAgent", "o", [self._path])
        except BaseException:
            await self.unregister()
            raise

    async def unregister(self) -> None:
        """Unregister and unexport the agent; close the bus if this object opened it."""
        bus = self._bus
        if bus is None:
            return
        if self._registered:
            self._registered = False
            try:
                await self._call("UnregisterAgent", "o", [self._path])
            except Exception as exc:
                _log.debug("UnregisterAgent failed: %s", exc)
        bus.unexport(self._path, self._interface)
        if self._own_bus:
            bus.disconnect()
            self._bus = None

    async def __aenter__(self) -> Self:
        await self.register()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.unregister()
