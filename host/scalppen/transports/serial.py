"""The pen's framed protocol over USB serial (pyserial), for the bench.

Each frame travels as ``COBS(frame + CRC-16) + 0x00`` (see
``scalppen_protocol.serial_framing``). A reader thread pulls bytes from the port,
splits them into frames and hands them to the event loop; a damaged packet (bad
CRC, bad COBS) is dropped and reported, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import threading
from typing import Final

from scalppen.transports.base import (
    WRITE_TIMEOUT,
    ConnectError,
    ExtraMissing,
    FrameLinkBase,
    LinkLost,
    TransportTimeout,
)
from scalppen_protocol.codes import MAX_FRAME
from scalppen_protocol.errors import ProtocolError
from scalppen_protocol.serial_framing import Deframer, encode_packet

try:
    import serial as pyserial
except ImportError as exc:  # pragma: no cover - pyserial is a core dependency
    raise ExtraMissing("The serial transport", "pyserial") from exc

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE: Final = 115200
_READ_POLL: Final = 0.05  # seconds the reader thread blocks per read


class PortNotFound(ConnectError):
    """No serial port of that name."""


class PortBusy(ConnectError):
    """The serial port is in use by another program (or not accessible)."""


def _open_error(port: str, exc: BaseException) -> ConnectError:
    code = getattr(exc, "errno", None)
    text = str(exc)
    lowered = text.lower()
    if code in (errno.ENOENT, errno.ENXIO, errno.ENODEV) or "filenotfound" in lowered or (
        "no such file" in lowered
    ):
        return PortNotFound(f"no serial port {port!r}: is the pen plugged in? ({text})")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in lowered or (
        "busy" in lowered
    ):
        return PortBusy(f"serial port {port!r} is busy: close the program using it ({text})")
    if code in (errno.EACCES, errno.EPERM) or "permission" in lowered or "denied" in lowered:
        return PortBusy(
            f"no access to serial port {port!r}: in use, or your user lacks permission "
            f"(on Linux, join the 'dialout' group) ({text})"
        )
    return ConnectError(f"cannot open serial port {port!r}: {text}")


class SerialTransport(FrameLinkBase):
    """Frames to and from one pen over a serial port.

    Args:
        port: the device (``/dev/ttyACM0``, ``COM3``, a pty path...).
        baudrate: line speed (USB CDC ignores it).
        write_timeout: seconds a write may block.
        exclusive: lock the port against other programs (POSIX).
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUDRATE,
        *,
        write_timeout: float = WRITE_TIMEOUT,
        exclusive: bool = True,
    ) -> None:
        super().__init__()
        self.port = port
        self.baudrate = baudrate
        self._write_timeout = write_timeout
        self._exclusive = exclusive
        self._serial: pyserial.Serial | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = asyncio.Lock()

    @property
    def mtu(self) -> int:
        """Serial carries whole frames: the protocol's maximum frame size."""
        return MAX_FRAME

    async def connect(self) -> None:
        """Open the port and start the reader thread.

        Raises:
            PortNotFound: no such port.
            PortBusy: the port is in use or not accessible.
            ConnectError: any other failure to open it.
        """
        if self.connected:
            return
        try:
            ser = await asyncio.to_thread(self._open)
        except (pyserial.SerialException, OSError, ValueError) as exc:
            raise _open_error(self.port, exc) from exc
        self._serial = ser
        self._stop = threading.Event()
        self._link_up()
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._read_loop,
            args=(ser, loop, self._stop),
            name=f"scalppen-serial-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _open(self) -> pyserial.Serial:
        kwargs: dict[str, object] = {
            "baudrate": self.baudrate,
            "timeout": _READ_POLL,
            "write_timeout": self._write_timeout,
        }
        if self._exclusive and os.name == "posix":
            kwargs["exclusive"] = True
        ser = pyserial.Serial(self.port, **kwargs)
        with contextlib.suppress(Exception):
            ser.reset_input_buffer()
        return ser

    def _read_loop(
        self, ser: pyserial.Serial, loop: asyncio.AbstractEventLoop, stop: threading.Event
    ) -> None:
        deframer = Deframer()
        reason = "serial port closed"
        try:
            while not stop.is_set():
                data = ser.read(max(1, ser.in_waiting))
                if not data or stop.is_set():
                    continue
                for item in deframer.feed(data):
                    loop.call_soon_threadsafe(self._hand_over, item)
        except RuntimeError:  # the event loop is closed: nobody to hand frames to
            return
        except (pyserial.SerialException, OSError, TypeError, AttributeError) as exc:
            if not stop.is_set():
                reason = f"serial port {self.port} failed: {exc}"
                _log.info("%s", reason)
        except Exception:  # pragma: no cover - unexpected; keep the loop informed
            _log.exception("serial reader failed")
            reason = f"serial reader for {self.port} failed"
        if not stop.is_set():
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(self._reader_ended, ser, reason)

    def _hand_over(self, item: bytes | ProtocolError) -> None:
        if isinstance(item, ProtocolError):
            self._report(item)
        else:
            self._deliver(item)

    def _reader_ended(self, ser: pyserial.Serial, reason: str) -> None:
        if ser is self._serial:
            self._link_down(reason)

    async def send_frame(self, frame: bytes) -> None:
        """Write one frame as a COBS packet.

        Raises:
            LinkLost: the port is closed or failed.
            TransportTimeout: the write blocked longer than ``write_timeout``.
        """
        ser = self._serial
        if not self.connected or ser is None:
            raise LinkLost("not connected")
        packet = encode_packet(bytes(frame))
        async with self._write_lock:
            try:
                await self._unless_lost(
                    asyncio.to_thread(self._write, ser, packet), None, "a serial write"
                )
            except pyserial.SerialTimeoutException as exc:
                raise TransportTimeout(f"serial write timed out: {exc}") from exc
            except (pyserial.SerialException, OSError) as exc:
                self._link_down(f"serial port {self.port} failed: {exc}")
                raise LinkLost(f"serial port {self.port} failed: {exc}") from exc

    @staticmethod
    def _write(ser: pyserial.Serial, packet: bytes) -> None:
        ser.write(packet)
        ser.flush()

    async def close(self) -> None:
        """Stop the reader and close the port. Safe to call more than once."""
        self._link_down("closed by the host", requested=True)
        self._stop.set()
        ser, self._serial = self._serial, None
        thread, self._thread = self._thread, None
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.cancel_read()
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()
