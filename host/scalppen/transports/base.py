"""What every transport offers the client, and the errors transports raise.

A transport moves whole protocol frames (header + payload, see
``scalppen_protocol.codec``) between the host and one pen. How the bytes travel
(BLE fragments, COBS packets on a serial line, an in-memory queue) is the
transport's business; the client only sees frames.

Receiving is pull-based: :meth:`Transport.recv_frame` returns the next complete
frame. Link-layer problems that do not end the link (a bad CRC, a fragment out of
order) drop the damaged frame and are reported to the ``on_link_error``
listeners; the link goes on. A dropped link wakes every waiting ``recv_frame``
with :class:`LinkLost` at once and calls the ``on_disconnect`` listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from scalppen_protocol.errors import ProtocolError

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Called once when the link drops without the host asking for it.
DisconnectCallback = Callable[["LinkLost"], None]
#: Called for every damaged frame the link layer dropped.
LinkErrorCallback = Callable[[ProtocolError], None]
#: Returns the passkey the user typed (an int, or a string of digits), or awaits it.
PasskeyProvider = Callable[[], int | str | Awaitable[int | str]]


def error_chain(exc: BaseException, most: int = 8) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (backends wrap the real cause: bleak
    errors around bumble's, ``OSError`` around a refused connection)."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < most:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


class TransportError(Exception):
    """Base of every transport error."""


class ConnectError(TransportError):
    """The link could not be set up (pen absent, adapter off, port missing...)."""


class LinkLost(TransportError):
    """The link dropped (or was closed) while in use."""


class TransportTimeout(TransportError, TimeoutError):
    """A transport operation did not finish in time."""


class AuthenticationError(TransportError):
    """The pen refused access: the link is not authenticated/encrypted enough.

    Attributes:
        att_error: the ATT error code when known (0x05 insufficient authentication,
            0x08 insufficient authorization, 0x0C key size, 0x0F insufficient
            encryption), else None.
    """

    def __init__(self, message: str, att_error: int | None = None) -> None:
        super().__init__(message)
        self.att_error = att_error


class NotPaired(AuthenticationError):
    """The pen needs a bond first: pair with it (its display shows the passkey)."""


class PairingFailed(TransportError):
    """Pairing did not complete (wrong passkey, cancelled, timed out, or refused:
    a pen with a bond pairs only inside its pairing window)."""

    hint = ("a pen already paired with a computer pairs another only while its pairing "
            "window is open (hold its button 3 s); after wrong passkeys it waits longer "
            "before showing the next")


class WrongPasskey(PairingFailed):
    """The passkey typed was not the one the pen showed."""

    hint = ("type the 6 digits the pen shows (a new number each try); after three wrong "
            "ones the pen waits longer before it shows the next")


class ExtraMissing(TransportError, ImportError):
    """An optional dependency of a transport is not installed.

    Attributes:
        package: the missing Python package.
        extra: the ``scalppen`` extra that installs it, if any.
        pip_command: the command that fixes it.
    """

    def __init__(self, feature: str, package: str, extra: str | None = None) -> None:
        self.package = package
        self.extra = extra
        self.pip_command = (
            f"pip install 'scalppen[{extra}]'" if extra else f"pip install {package}"
        )
        super().__init__(
            f"{feature} needs the Python package '{package}', which is not installed; "
            f"install it with: {self.pip_command}"
        )


@runtime_checkable
class Transport(Protocol):
    """A frame link to one pen."""

    @property
    def mtu(self) -> int:
        """Largest unit the link carries in one piece (the ATT MTU on BLE)."""
        ...

    @property
    def connected(self) -> bool:
        """True between a successful ``connect()`` and a drop or ``close()``."""
        ...

    async def connect(self) -> None:
        """Set the link up; the pen may be spoken to when this returns.

        Raises:
            ConnectError: the link could not be set up.
            NotPaired: the pen requires a bond this host does not have.
        """
        ...

    async def send_frame(self, frame: bytes) -> None:
        """Send one complete frame.

        Raises:
            LinkLost: the link is down or dropped while sending.
            TransportTimeout: the link did not take the frame in time.
        """
        ...

    async def recv_frame(self, timeout: float | None = None) -> bytes:
        """Return the next complete frame from the pen.

        Raises:
            LinkLost: the link is down (frames received before the drop come first).
            TransportTimeout: nothing arrived within ``timeout`` seconds.
        """
        ...

    async def close(self) -> None:
        """Take the link down. Safe to call more than once."""
        ...

    def on_disconnect(self, callback: DisconnectCallback) -> Callable[[], None]:
        """Register ``callback`` for an unrequested drop; returns its remover."""
        ...

    def on_link_error(self, callback: LinkErrorCallback) -> Callable[[], None]:
        """Register ``callback`` for dropped, damaged frames; returns its remover."""
        ...


class _Down:
    """Queue marker: the link is down; carries the error to raise."""

    def __init__(self, error: LinkLost) -> None:
        self.error = error


class FrameLinkBase:
    """Shared plumbing of the transports: inbox, listeners, drop handling.

    Subclasses call :meth:`_link_up` when a link is ready, :meth:`_deliver` for
    each complete frame, :meth:`_report` for each damaged one and
    :meth:`_link_down` when the link ends. All of these run on the event loop.
    """

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[bytes | _Down] = asyncio.Queue()
        self._down: LinkLost | None = LinkLost("not connected")
        self._down_event: asyncio.Event | None = None
        self._disconnect_listeners: dict[int, DisconnectCallback] = {}
        self._error_listeners: dict[int, LinkErrorCallback] = {}
        self._next_token = 0
        #: Damaged frames dropped by the link layer since the transport was made.
        self.link_errors = 0

    # -- listeners ---------------------------------------------------------------

    def on_disconnect(self, callback: DisconnectCallback) -> Callable[[], None]:
        """Register ``callback`` for an unrequested drop; returns its remover."""
        return self._add(self._disconnect_listeners, callback)

    def on_link_error(self, callback: LinkErrorCallback) -> Callable[[], None]:
        """Register ``callback`` for dropped, damaged frames; returns its remover."""
        return self._add(self._error_listeners, callback)

    def _add(self, table: dict[int, T], callback: T) -> Callable[[], None]:
        token = self._next_token
        self._next_token += 1
        table[token] = callback

        def remove() -> None:
            table.pop(token, None)

        return remove

    # -- state -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between a successful ``connect()`` and a drop or ``close()``."""
        return self._down is None

    def _lost_event(self) -> asyncio.Event:
        if self._down_event is None:
            self._down_event = asyncio.Event()
            if self._down is not None:
                self._down_event.set()
        return self._down_event

    def _link_up(self) -> None:
        """Start a fresh link: empty inbox, not down."""
        self._inbox = asyncio.Queue()
        self._down = None
        self._down_event = asyncio.Event()

    def _deliver(self, frame: bytes) -> None:
        if self._down is None:
            self._inbox.put_nowait(bytes(frame))

    def _report(self, error: ProtocolError) -> None:
        self.link_errors += 1
        _log.warning("dropped a damaged frame: %s", error)
        for callback in list(self._error_listeners.values()):
            try:
                callback(error)
            except Exception:
                _log.exception("link-error listener failed")

    def _link_down(self, reason: str, *, requested: bool = False) -> None:
        """End the link: wake receivers, and tell listeners unless ``requested``."""
        if self._down is not None:
            return
        error = LinkLost(reason)
        self._down = error
        self._inbox.put_nowait(_Down(error))
        if self._down_event is not None:
            self._down_event.set()
        if requested:
            return
        for callback in list(self._disconnect_listeners.values()):
            try:
                callback(error)
            except Exception:
                _log.exception("disconnect listener failed")

    # -- receiving ---------------------------------------------------------------

    async def recv_frame(self, timeout: float | None = None) -> bytes:
        """Return the next complete frame from the pen.

        Raises:
            LinkLost: the link is down (frames received before the drop come first).
            TransportTimeout: nothing arrived within ``timeout`` seconds.
        """
        if self._down is not None and self._inbox.empty():
            raise LinkLost(str(self._down))
        try:
            item = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            raise TransportTimeout(f"no frame within {timeout} s") from None
        if isinstance(item, _Down):
            self._inbox.put_nowait(item)  # every later call fails the same way
            raise LinkLost(str(item.error))
        return item

    async def _unless_lost(self, work: Awaitable[T], timeout: float | None, what: str) -> T:
        """Await ``work``, but raise LinkLost as soon as the link drops.

        Raises:
            LinkLost: the link dropped first.
            TransportTimeout: ``work`` took longer than ``timeout`` seconds.
        """
        lost = self._lost_event()
        if lost.is_set():
            if asyncio.iscoroutine(work):
                work.close()
            raise LinkLost(str(self._down))
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        watcher: asyncio.Future[Any] = asyncio.ensure_future(lost.wait())
        waiters: set[asyncio.Future[Any]] = {task, watcher}
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()
        if task in done:
            if task.cancelled():
                # Nobody here cancelled it: the radio stack dropped the operation
                # (bumble cancels a pending ATT write when the connection goes).
                raise LinkLost(f"{what} was dropped by the radio (the link went)")
            return task.result()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if watcher in done:
            raise LinkLost(f"{self._down} (during {what})")
        raise TransportTimeout(f"{what} did not finish within {timeout} s")


#: Default seconds a transport waits for one write to be accepted.
WRITE_TIMEOUT: Final = 10.0
