"""Opening the pen's USB serial port, with typed one-line errors.

Only the serial I/O lives here; the REPL protocol is :mod:`scalppen.flash.rawrepl`.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol

from scalppen.flash.errors import LinkError, NoSuchPortError, PortAccessError, PortBusyError

DEFAULT_BAUD = 115200


class SerialLike(Protocol):
    """The part of :class:`serial.Serial` the raw REPL uses."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


def check_port_name(port: str) -> None:
    """Fail early (before any I/O) on a local device path that does not exist."""
    if not port:
        raise NoSuchPortError("no serial port given")
    if "://" in port:  # pyserial URL (rfc2217://, socket://, loop://)
        return
    if not os.path.exists(port):
        raise NoSuchPortError(f"serial port {port} does not exist")


def open_serial(port: str, baudrate: int = DEFAULT_BAUD, exclusive: bool = True) -> SerialLike:
    """Open ``port`` for the raw REPL (pyserial; ``exclusive`` locks out other programs).

    Raises:
        NoSuchPortError, PortBusyError, PortAccessError, LinkError.
    """
    import serial

    check_port_name(port)
    try:
        ser = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05,
                                    exclusive=exclusive, do_not_open=True)
        ser.open()
    except serial.SerialException as exc:
        code = exc.errno if isinstance(exc.errno, int) else None
        text = str(exc)
        if code == errno.ENOENT or "No such file" in text:
            raise NoSuchPortError(f"serial port {port} does not exist") from None
        if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
            raise PortBusyError(f"serial port {port} is in use by another program") from None
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
            raise PortAccessError(f"no permission to open serial port {port}") from None
        raise LinkError(f"cannot open serial port {port}: {' '.join(text.split())}") from None
    except OSError as exc:
        raise LinkError(f"cannot open serial port {port}: {exc.strerror or exc}") from None
    return ser
