"""The host's client for one pen, over any transport.

:class:`Pen` sends requests and matches each response to its request by sequence
number (u16, wrapping), so several requests may be in flight and their answers may
come in any order. Every request has a timeout; idempotent reads (HELLO,
GET_STATUS, LOG_READ, GET_WEAR) are retried a bounded number of times, commands
that change the pen (ARM, START, ...) never are. A NACK becomes
:class:`PenRefused` with the pen's code and detail; a dropped link fails every
pending request with :class:`LinkLost` at once. Events arrive through
:meth:`Pen.events` or :meth:`Pen.on_event`. Damaged or unknown messages are
reported (:meth:`Pen.on_problem`) and never stop the client.

Example::

    async with Pen(BleTransport(address)) as pen:   # connects and says HELLO
        print(pen.info.model, (await pen.status()).battery_pct)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from scalppen.refusals import describe
from scalppen.results import (
    EVENT_TYPES,
    CartridgeEvent,
    FaultEvent,
    Limits,
    LogGap,
    LogPage,
    LogRecord,
    LogSync,
    NoticeEvent,
    PenEvent,
    PenInfo,
    PenStatus,
    SyncProgress,
    TelemetryEvent,
    WearInfo,
    event_from_fields,
    known,
)
from scalppen.transports.base import LinkLost as TransportLinkLost
from scalppen.transports.base import Transport, TransportError, TransportTimeout
from scalppen_protocol.auth import log_ack_fields, set_time_fields
from scalppen_protocol.codec import Frame, decode_frame, encode_frame
from scalppen_protocol.codes import (
    HEADER_SIZE,
    MAX_PAGE_RECORDS,
    PROTOCOL_VERSION,
    Capability,
    ErrorCode,
    MsgType,
    PenState,
)
from scalppen_protocol.errors import ProtocolError
from scalppen_protocol.messages import LOG_RECORD_SIZE, RESPONSES

_log = logging.getLogger(__name__)

#: Requests that may be sent again when no answer came: they change nothing.
IDEMPOTENT: Final = frozenset({MsgType.HELLO, MsgType.GET_STATUS, MsgType.LOG_READ,
                               MsgType.GET_WEAR})
#: What this host understands.
HOST_CAPS: Final = (
    Capability.LOG | Capability.WEAR | Capability.TELEMETRY | Capability.STANDALONE
    | Capability.SERIAL | Capability.PERMIT
)
DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_RETRIES: Final = 2
_LOG_PAGE_OVERHEAD: Final = HEADER_SIZE + 9  # header, first_seq, last_seq, count
#: LOG_READ requests kept in flight by :meth:`Pen.sync_log`.
SYNC_WINDOW: Final = 3
_EVENT_BUFFER: Final = 1024

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "HOST_CAPS",
    "IDEMPOTENT",
    "BadReply",
    "CartridgeEvent",
    "EventStream",
    "FaultEvent",
    "Limits",
    "LinkLost",
    "LogGap",
    "LogPage",
    "LogRecord",
    "LogSync",
    "NoticeEvent",
    "Pen",
    "PenError",
    "PenEvent",
    "PenInfo",
    "PenRefused",
    "PenStatus",
    "PenTimeout",
    "Problem",
    "ProtocolMismatch",
    "SyncProgress",
    "TelemetryEvent",
    "WearInfo",
]


# -- errors -------------------------------------------------------------------------


class PenError(Exception):
    """Base of the client's errors."""


class PenRefused(PenError):
    """The pen answered NACK.

    Attributes:
        code: the pen's reason (an ``ErrorCode``, or an int this host does not know).
        detail: the NACK's detail word (INTERVAL_LOCKOUT: the Unix time it lifts).
        request: the refused request.
    """

    def __init__(self, code: ErrorCode | int, detail: int, request: MsgType | int) -> None:
        self.code = known(ErrorCode, int(code))
        self.detail = int(detail)
        self.request = known(MsgType, int(request))
        super().__init__(describe(self.code, self.detail))

    @property
    def lockout_until(self) -> int | None:
        """For INTERVAL_LOCKOUT: the Unix time the next session is allowed."""
        return self.detail if self.code == ErrorCode.INTERVAL_LOCKOUT and self.detail else None


class PenTimeout(PenError, TimeoutError):
    """No answer in time (after the retries allowed for the request)."""


class LinkLost(PenError, TransportLinkLost):
    """The link to the pen dropped or was closed; pending requests fail with this."""


class ProtocolMismatch(PenError):
    """The pen speaks another protocol version.

    Attributes:
        pen_version: the pen's version when known.
        host_version: this host's version.
    """

    def __init__(self, message: str, pen_version: int | None = None) -> None:
        super().__init__(message)
        self.pen_version = pen_version
        self.host_version = PROTOCOL_VERSION


class BadReply(PenError):
    """The pen answered a request with something this host cannot use.

    Attributes:
        error: the decoding error, when the reply could not be decoded.
    """

    def __init__(self, message: str, error: ProtocolError | None = None) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class Problem:
    """Something wrong that the client survived (reported, not raised).

    Attributes:
        kind: ``"link"`` (damaged frame dropped by the transport), ``"decode"``
            (a frame that does not decode), ``"unknown_type"`` (a message type this
            host does not know), ``"late_reply"`` (an answer nobody waits for),
            ``"mismatched_reply"``, ``"events_dropped"``, ``"log"``.
        message: one line for people.
        code: the protocol error code when there is one.
    """

    kind: str
    message: str
    code: ErrorCode | None = None


# -- events -------------------------------------------------------------------------


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class EventStream:
    """Events from the pen, in arrival order; from :meth:`Pen.events`.

    Use with ``async for``; iteration raises :class:`LinkLost` when the link drops
    and ends when the stream or the client is closed. Holds at most ``maxsize``
    unread events; older ones are dropped (and reported) when it overflows.
    """

    def __init__(self, pen: Pen, maxsize: int = _EVENT_BUFFER) -> None:
        self._pen = pen
        self._queue: deque[PenEvent | _End] = deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self._ended: _End | None = None
        self.dropped = 0

    def _put(self, item: PenEvent | _End) -> None:
        if self._ended is not None:
            return
        if isinstance(item, _End):
            self._ended = item
        elif len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(item)
        self._wakeup.set()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> PenEvent:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue[0]
        if isinstance(item, _End):
            self._pen._streams.discard(self)
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        self._queue.popleft()
        return item

    async def get(self, timeout: float | None = None) -> PenEvent:
        """The next event.

        Raises:
            PenTimeout: none within ``timeout`` seconds.
            LinkLost: the link dropped.
            StopAsyncIteration: the stream was closed.
        """
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except TimeoutError:
            raise PenTimeout(f"no event within {timeout} s") from None

    def close(self) -> None:
        """Stop receiving; iteration ends."""
        self._put(_End(None))
        self._pen._streams.discard(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


EventCallback = Callable[[PenEvent], Any]
ProblemCallback = Callable[[Problem], Any]
ProgressCallback = Callable[[SyncProgress], Any]
PageCallback = Callable[[list[LogRecord], list[LogGap]], Awaitable[None] | None]


@dataclass
class _Pending:
    request: MsgType
    response: MsgType | None
    future: asyncio.Future[Frame]


# -- the client ---------------------------------------------------------------------


class Pen:
    """One pen, spoken to over ``transport``.

    Args:
        transport: any :class:`~scalppen.transports.base.Transport`.
        timeout: default seconds per request (send and answer).
        retries: extra attempts for idempotent reads after a timeout or BUSY.
        retry_delay: seconds between attempts.
        caps: the capabilities announced in HELLO.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = 0.2,
        caps: Capability = HOST_CAPS,
    ) -> None:
        self._transport = transport
        self.timeout = timeout
        self.retries = max(0, retries)
        self.retry_delay = retry_delay
        self.caps = caps
        #: The pen's INFO from the last HELLO.
        self.info: PenInfo | None = None
        #: Recent problems (most recent last).
        self.problems: deque[Problem] = deque(maxlen=200)
        self._seq = 0
        self._pending: dict[int, _Pending] = {}
        self._reader: asyncio.Task[None] | None = None
        self._streams: set[EventStream] = set()
        self._event_callbacks: dict[int, EventCallback] = {}
        self._problem_callbacks: dict[int, ProblemCallback] = {}
        self._token = 0
        self._unhook: list[Callable[[], None]] = []
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport in use."""
        return self._transport

    @property
    def connected(self) -> bool:
        """True while the link is up and the client is receiving."""
        return (
            self._transport.connected and self._reader is not None and not self._reader.done()
        )

    async def open(self) -> None:
        """Connect the transport (if needed) and start receiving; no HELLO yet.

        Raises:
            TransportError: the transport could not connect (ConnectError, NotPaired...).
        """
        self._closed = False
        if not self._transport.connected:
            await self._transport.connect()
        if self._reader is None or self._reader.done():
            for unhook in self._unhook:
                unhook()
            self._unhook = [self._transport.on_link_error(self._on_link_error)]
            self._reader = asyncio.create_task(self._read_loop(), name="scalppen-pen-reader")

    async def close(self) -> None:
        """Stop receiving, fail pending requests, end event streams, close the link."""
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._fail_pending(LinkLost("the client was closed"))
        for stream in list(self._streams):
            stream._put(_End(None))
        self._streams.clear()
        for unhook in self._unhook:
            unhook()
        self._unhook = []
        with contextlib.suppress(TransportError, OSError):
            await self._transport.close()

    async def __aenter__(self) -> Self:
        """Open the link and say HELLO (raises as :meth:`open` and :meth:`hello`)."""
        await self.open()
        try:
            await self.hello()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- listeners ---------------------------------------------------------------

    def events(self, maxsize: int = _EVENT_BUFFER) -> EventStream:
        """A stream of the events from now on (see :class:`EventStream`)."""
        stream = EventStream(self, maxsize)
        if self._closed:
            stream._put(_End(None))
        self._streams.add(stream)
        return stream

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns its remover."""
        return self._listen(self._event_callbacks, callback)

    def on_problem(self, callback: ProblemCallback) -> Callable[[], None]:
        """Call ``callback(problem)`` for every reported problem; returns its remover."""
        return self._listen(self._problem_callbacks, callback)

    def _listen(self, table: dict[int, Any], callback: Any) -> Callable[[], None]:
        token = self._token
        self._token += 1
        table[token] = callback

        def remove() -> None:
            table.pop(token, None)

        return remove

    def _problem(self, kind: str, message: str, code: ErrorCode | None = None) -> None:
        problem = Problem(kind, message, code)
        self.problems.append(problem)
        _log.warning("%s: %s", kind, message)
        for callback in list(self._problem_callbacks.values()):
            self._call_listener(callback, problem)

    def _call_listener(self, callback: Callable[[Any], Any], value: Any) -> None:
        try:
            result = callback(value)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(_log_task_failure)
        except Exception as exc:
            _log.exception("listener %r failed", callback)
            if callback not in self._problem_callbacks.values():
                self._problem("listener", f"an event listener failed: {exc!r}")

    def _on_link_error(self, error: ProtocolError) -> None:
        self._problem("link", f"dropped a damaged frame: {error}", error.code)

    # -- receiving ---------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason: PenError
        try:
            while True:
                raw = await self._transport.recv_frame()
                try:
                    self._dispatch(raw)
                except Exception as exc:  # a bug here must not stop the loop
                    _log.exception("could not handle a frame")
                    self._problem("decode", f"could not handle a frame: {exc!r}")
        except TransportLinkLost as exc:
            reason = LinkLost(f"link lost: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.exception("receiving failed")
            reason = LinkLost(f"receiving failed: {exc!r}")
        self._fail_pending(reason)
        for stream in list(self._streams):
            stream._put(_End(LinkLost(str(reason))))
        self._streams.clear()

    def _dispatch(self, raw: bytes) -> None:
        try:
            frame = decode_frame(raw)
        except ProtocolError as err:
            self._undecodable(err)
            return
        if frame.msg_type in EVENT_TYPES:
            self._emit(event_from_fields(frame.msg_type, frame.seq, frame.fields))
            return
        pending = self._pending.get(frame.seq)
        if pending is None:
            self._problem(
                "late_reply", f"{frame.msg_type.name} seq {frame.seq} answers no pending request"
            )
            return
        if frame.msg_type in (MsgType.ACK, MsgType.NACK):
            if frame.fields.get("req_type") != pending.request:
                self._problem(
                    "mismatched_reply",
                    f"{frame.msg_type.name} for request type {frame.fields.get('req_type')} "
                    f"on seq {frame.seq}, which is a {pending.request.name}",
                )
                return
        elif frame.msg_type != pending.response:
            self._problem(
                "mismatched_reply",
                f"{frame.msg_type.name} on seq {frame.seq}, which is a {pending.request.name}",
            )
            return
        del self._pending[frame.seq]
        if not pending.future.done():
            pending.future.set_result(frame)

    def _undecodable(self, err: ProtocolError) -> None:
        kind = "unknown_type" if err.code == ErrorCode.NOT_SUPPORTED else "decode"
        self._problem(kind, f"undecodable message from the pen: {err}", err.code)
        if err.seq is None or err.msg_type is None or err.msg_type >= min(EVENT_TYPES):
            return
        pending = self._pending.pop(err.seq, None)
        if pending is None or pending.future.done():
            return
        if err.code == ErrorCode.BAD_VERSION:
            pending.future.set_exception(
                ProtocolMismatch(f"the pen answered in another protocol version: {err}")
            )
        else:
            pending.future.set_exception(
                BadReply(f"the pen's answer to {pending.request.name} is unusable: {err}", err)
            )

    def _emit(self, event: PenEvent) -> None:
        for stream in list(self._streams):
            before = stream.dropped
            stream._put(event)
            if stream.dropped != before and stream.dropped in (1, 10, 100, 1000):
                self._problem("events_dropped", f"{stream.dropped} events dropped (reader slow)")
        for callback in list(self._event_callbacks.values()):
            self._call_listener(callback, event)

    def _fail_pending(self, error: PenError) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if not entry.future.done():
                entry.future.set_exception(type(error)(str(error)))
                entry.future.exception()  # mark retrieved: nobody may be waiting

    # -- requests ----------------------------------------------------------------

    def _next_seq(self) -> int:
        for _ in range(0x10000):
            self._seq = (self._seq + 1) & 0xFFFF
            if self._seq not in self._pending:
                return self._seq
        raise PenError("65536 requests in flight")  # pragma: no cover

    async def request(
        self,
        msg_type: MsgType,
        fields: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Frame:
        """Send one request and return the pen's answer (its specific response or ACK).

        Idempotent requests are retried up to ``retries`` times after a timeout or a
        BUSY refusal; other requests are sent exactly once.

        Raises:
            PenRefused: the pen answered NACK.
            PenTimeout: no answer in time.
            LinkLost: the link is down or dropped.
            ProtocolMismatch: the pen answered in another protocol version.
            BadReply: the answer could not be used.
            ValueError: ``fields`` do not encode.
        """
        msg_type = MsgType(msg_type)
        wait = self.timeout if timeout is None else timeout
        extra = (self.retries if retries is None else max(0, retries))
        attempts = 1 + (extra if msg_type in IDEMPOTENT else 0)
        for attempt in range(1, attempts + 1):
            try:
                return await self._exchange(msg_type, fields, wait)
            except PenTimeout:
                if attempt == attempts:
                    raise
                _log.info("%s: no answer, retrying (%d/%d)", msg_type.name, attempt, attempts - 1)
            except PenRefused as exc:
                if exc.code != ErrorCode.BUSY or attempt == attempts:
                    raise
                _log.info("%s: pen busy, retrying (%d/%d)", msg_type.name, attempt, attempts - 1)
            await asyncio.sleep(self.retry_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self, msg_type: MsgType, fields: Mapping[str, Any] | None, timeout: float
    ) -> Frame:
        if not self.connected:
            raise LinkLost("not connected to the pen")
        seq = self._next_seq()
        try:
            frame = encode_frame(msg_type, seq, dict(fields or {}))
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        entry = _Pending(msg_type, RESPONSES.get(msg_type), future)
        self._pending[seq] = entry
        try:
            async with asyncio.timeout(timeout):
                await self._transport.send_frame(frame)
                reply = await future
        except TransportTimeout as exc:
            raise PenTimeout(f"{msg_type.name} could not be sent: {exc}") from exc
        except TimeoutError:
            what = "" if msg_type in IDEMPOTENT else " (the pen may have acted on it: check status)"
            raise PenTimeout(f"no answer to {msg_type.name} within {timeout:g} s{what}") from None
        except TransportLinkLost as exc:
            if isinstance(exc, LinkLost):
                raise
            raise LinkLost(f"link lost: {exc}") from exc
        finally:
            if self._pending.get(seq) is entry:
                del self._pending[seq]
        if reply.msg_type == MsgType.NACK:
            raise PenRefused(reply.fields["error"], reply.fields["detail"], msg_type)
        if entry.response is not None and reply.msg_type != entry.response:
            raise BadReply(f"{msg_type.name} answered with {reply.msg_type.name}")
        return reply

    async def _command(self, msg_type: MsgType, fields: Mapping[str, Any] | None = None,
                       timeout: float | None = None) -> None:
        reply = await self.request(msg_type, fields, timeout=timeout)
        if reply.msg_type != MsgType.ACK:  # pragma: no cover - _dispatch checks this
            raise BadReply(f"{msg_type.name} answered with {reply.msg_type.name}")

    # -- the pen's requests ------------------------------------------------------

    async def hello(self, timeout: float | None = None) -> PenInfo:
        """Say HELLO with this host's version and capabilities; the pen starts events.

        Raises:
            ProtocolMismatch: the pen speaks another protocol version.
            PenRefused, PenTimeout, LinkLost: as :meth:`request`.
        """
        try:
            reply = await self.request(
                MsgType.HELLO, {"proto_version": PROTOCOL_VERSION, "caps": int(self.caps)},
                timeout=timeout,
            )
        except PenRefused as exc:
            if exc.code == ErrorCode.BAD_VERSION:
                raise ProtocolMismatch(
                    f"the pen does not speak protocol version {PROTOCOL_VERSION}: {exc}",
                    exc.detail or None,
                ) from exc
            raise
        info = PenInfo.from_fields(reply.fields)
        self.info = info
        if not info.compatible:
            older = "host" if info.proto_version > PROTOCOL_VERSION else "pen"
            raise ProtocolMismatch(
                f"the pen speaks protocol version {info.proto_version}, this host "
                f"{PROTOCOL_VERSION}: update the {older}",
                info.proto_version,
            )
        unknown = int(info.caps) & ~int(HOST_CAPS)
        if unknown:
            self._problem(
                "capabilities", f"the pen offers capabilities unknown here: 0x{unknown:04x}"
            )
        return info

    async def status(self, timeout: float | None = None) -> PenStatus:
        """The pen's state, depth, battery, session and lockout (GET_STATUS)."""
        reply = await self.request(MsgType.GET_STATUS, timeout=timeout)
        return PenStatus.from_fields(reply.fields)

    async def set_time(self, unix: int | None, key: bytes) -> None:
        """Set the pen's clock (Unix seconds; None: now), signed with the permit key.

        The pen refuses a SET_TIME without the key's tag, one it saw before, and any
        while a session is open; and whatever the clock says, it counts the interval
        between sessions (rule 6) on its own running time too.
        """
        value = int(time.time()) if unix is None else int(unix)
        if not 0 < value <= 0xFFFFFFFF:
            raise ValueError(f"time {value} out of range")
        await self._command(MsgType.SET_TIME, set_time_fields(bytes(key), value))

    async def log_ack(self, up_to_seq: int, key: bytes) -> None:
        """Tell the pen its log is stored here up to ``up_to_seq`` (LOG_ACK): only then
        may it reuse that space. Signed with the permit key."""
        if not 0 <= int(up_to_seq) <= 0xFFFFFFFF:
            raise ValueError(f"seq {up_to_seq} out of range")
        await self._command(MsgType.LOG_ACK, log_ack_fields(bytes(key), int(up_to_seq)))

    async def set_key(self, key: bytes) -> None:
        """Give the pen its 32-byte permit key (once, right after pairing).

        Raises:
            ValueError: not 32 bytes.
            PenRefused: e.g. KEY_ALREADY_SET.
        """
        key = bytes(key)
        if len(key) != 32:
            raise ValueError(f"a permit key has 32 bytes, not {len(key)}")
        await self._command(MsgType.SET_KEY, {"key": key})

    async def arm(self, permit: Mapping[str, Any]) -> None:
        """Send a session permit (ARM). Never retried.

        Args:
            permit: the permit's fields: ``max_depth_um``, ``max_duration_s``,
                ``issued_at``, ``expires_at``, ``nonce`` (8 bytes), ``tag`` (32 bytes).

        Raises:
            ValueError: fields missing or out of range.
            PenRefused: PERMIT_* codes, WRONG_STATE, ...
        """
        await self._command(MsgType.ARM, permit)

    async def set_depth(self, um: int) -> None:
        """Set the needle depth in micrometres (the pen checks grid and limits)."""
        await self._command(MsgType.SET_DEPTH, {"depth_um": int(um)})

    async def set_speed(self, level: int) -> None:
        """Set the speed level (1..the pen's ``speed_levels``)."""
        await self._command(MsgType.SET_SPEED, {"level": int(level)})

    async def start(self) -> None:
        """Start the armed session. Never retried: on a timeout, check :meth:`status`."""
        await self._command(MsgType.START)

    async def stop(self) -> None:
        """Stop the motor and end the session, or pause it: a session stopped in its
        first 30 s of needling stays open, resumable (docs/sessions.md)."""
        await self._command(MsgType.STOP)

    async def end_session(self) -> PenStatus:
        """Stop the motor and end the session for good: a second STOP ends a session
        the first one only paused. -> the pen's status after."""
        await self._command(MsgType.STOP)
        status = await self.status()
        if status.state == PenState.PAUSED:
            await self._command(MsgType.STOP)
            status = await self.status()
        return status

    def max_page_records(self) -> int:
        """Records per LOG_READ that fit the pen's largest frame."""
        limit = MAX_PAGE_RECORDS
        if self.info is not None and self.info.max_frame > _LOG_PAGE_OVERHEAD:
            limit = min(limit, (self.info.max_frame - _LOG_PAGE_OVERHEAD) // LOG_RECORD_SIZE)
        return max(1, limit)

    async def read_log(
        self, from_seq: int, max_records: int | None = None, timeout: float | None = None
    ) -> LogPage:
        """One page of the usage log, from ``from_seq`` on (LOG_READ).

        Raises:
            ValueError: arguments out of range.
        """
        count = self.max_page_records() if max_records is None else int(max_records)
        if not 1 <= count <= MAX_PAGE_RECORDS:
            raise ValueError(f"max_records {count} outside 1..{MAX_PAGE_RECORDS}")
        if not 0 <= from_seq <= 0xFFFFFFFF:
            raise ValueError(f"from_seq {from_seq} out of range")
        reply = await self.request(
            MsgType.LOG_READ, {"from_seq": int(from_seq), "max_records": count}, timeout=timeout
        )
        return LogPage.from_fields(reply.fields)

    async def sync_log(
        self,
        from_seq: int = 1,
        *,
        progress: ProgressCallback | None = None,
        on_page: PageCallback | None = None,
        page_size: int | None = None,
    ) -> LogSync:
        """Fetch the log from ``from_seq`` up to the pen's newest record, page by page.

        Resumable: pass the last stored seq + 1. Records the pen no longer has (its
        log rotated) and seqs missing inside a page are reported as gaps, never
        hidden. ``on_page(records, new_gaps)`` runs after each page (it may be
        async: store the records there, so a dropped link loses nothing already
        received); ``progress(SyncProgress)`` after each page too.

        Raises:
            LinkLost, PenTimeout, PenRefused: as :meth:`read_log`; records already
            passed to ``on_page`` stay valid, resume from the last one + 1.
        """
        expected = max(1, int(from_seq))
        result = LogSync(from_seq=int(from_seq), next_seq=expected)
        count = self.max_page_records() if page_size is None else int(page_size)
        ahead: dict[int, asyncio.Future[LogPage]] = {}
        try:
            return await self._sync_pages(expected, count, result, ahead, progress, on_page)
        finally:
            for task in ahead.values():
                task.cancel()
            if ahead:
                await asyncio.gather(*ahead.values(), return_exceptions=True)

    async def _sync_pages(
        self,
        expected: int,
        count: int,
        result: LogSync,
        ahead: dict[int, asyncio.Future[LogPage]],
        progress: ProgressCallback | None,
        on_page: PageCallback | None,
    ) -> LogSync:
        # Up to SYNC_WINDOW LOG_READs are in flight: while one page is stored, the
        # next ones are on their way (a round trip costs connection intervals on air).
        # The requests ahead assume contiguous pages; one that no longer fits is dropped.
        while True:
            task = ahead.pop(expected, None) or asyncio.ensure_future(
                self.read_log(expected, count)
            )
            if result.last_seq:
                for k in range(1, SYNC_WINDOW):
                    seq = expected + k * count
                    if seq <= result.last_seq and seq not in ahead:
                        ahead[seq] = asyncio.ensure_future(self.read_log(seq, count))
            page = await task
            result.first_available = page.first_seq
            result.last_seq = page.last_seq
            if expected > page.last_seq + 1:
                self._problem(
                    "log",
                    f"the pen's log ends at {page.last_seq}, before {expected}: "
                    "was the pen's log reset, or is this another pen?",
                )
            gaps: list[LogGap] = []
            if expected < page.first_seq:
                last_missing = min(page.first_seq, page.last_seq + 1) - 1
                if last_missing >= expected:
                    gaps.append(LogGap(expected, last_missing, "rotated"))
                expected = page.first_seq
            records: list[LogRecord] = []
            for record in page.records:
                if record.seq < expected:
                    continue  # already have it
                if record.seq > expected:
                    gaps.append(LogGap(expected, record.seq - 1, "missing"))
                records.append(record)
                expected = record.seq + 1
            result.records.extend(records)
            result.gaps.extend(gaps)
            for gap in gaps:
                self._problem("log", f"log records {gap.first}..{gap.last} {gap.reason}")
            result.next_seq = expected
            if on_page is not None and (records or gaps):
                outcome = on_page(records, gaps)
                if inspect.isawaitable(outcome):
                    await outcome
            if progress is not None:
                progress(SyncProgress(expected, page.last_seq, page.first_seq, len(result.records)))
            if expected > page.last_seq:
                return result
            if not records and not gaps:
                self._problem(
                    "log",
                    f"the pen returned no records from {expected} although its log reaches "
                    f"{page.last_seq}; stopping",
                )
                return result

    async def wear(self, timeout: float | None = None) -> WearInfo:
        """Cartridge and handpiece wear (GET_WEAR)."""
        reply = await self.request(MsgType.GET_WEAR, timeout=timeout)
        return WearInfo.from_fields(reply.fields)


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("async listener failed: %r", task.exception())
