"""The bench UART's far end: a pseudo-terminal a host program opens like a USB-UART adapter.

The pen side reads and writes the pty's master without blocking; the slave's path
(``/dev/pts/N``) is what a host opens with pyserial. The port belongs to the pen's
body, so an open host connection survives reboots of the pen, as with a cable.
"""

from __future__ import annotations

import contextlib
import os
import tty


class UartPort:
    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)

    def read(self, n: int = 4096) -> bytes | None:
        try:
            data = os.read(self._master, n)
        except (BlockingIOError, OSError):
            return None
        return data or None

    def write(self, data: bytes) -> int:
        view = memoryview(bytes(data))
        sent = 0
        while sent < len(view):
            try:
                sent += os.write(self._master, view[sent:])
            except BlockingIOError:
                break  # the host is not reading: bytes are lost, as on a real UART
        return sent

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
