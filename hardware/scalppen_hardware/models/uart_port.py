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
        #: how long each write the pen made blocked it (us), across reboots
        self.tx_blocks_us: list[int] = []

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


#: The ESP32's UART hardware FIFO (UART_HW_FIFO_LEN on the ESP32-S3: 128 bytes).
HW_FIFO = 128
#: machine.UART's default TX ring buffer (ports/esp32/machine_uart.c: txbuf = 256).
DEFAULT_TXBUF = 256


class UartTx:
    """The ESP32 UART driver's transmit side, in virtual time.

    ``machine.UART.write`` calls ESP-IDF's ``uart_write_bytes``
    (ports/esp32/machine_uart.c), which returns once every byte is in the TX ring
    buffer (``txbuf``) or the hardware FIFO, waiting for room as long as it takes:
    a write larger than the free room blocks the caller until the line has sent
    the excess, at ``baudrate / 10`` bytes/s (8N1). ``uart.txdone()`` is
    ``uart_wait_tx_done(0)``: True when everything was sent. The IDF's ring buffer
    keeps item headers, so its real room is somewhat less than ``txbuf``: this
    model is the optimistic bound; firmware should stay well below it.
    """

    def __init__(self, baudrate: int, txbuf: int = DEFAULT_TXBUF) -> None:
        self.bytes_per_s = max(1, int(baudrate) // 10)
        self.room = int(txbuf) + HW_FIFO
        self._queued = 0
        self._at_us = 0
        #: every block a write caused, in microseconds
        self.blocks_us: list[int] = []

    def queued(self, now_us: int) -> int:
        sent = (now_us - self._at_us) * self.bytes_per_s // 1_000_000
        return max(0, self._queued - sent)

    def done(self, now_us: int) -> bool:
        return self.queued(now_us) == 0

    def write(self, n: int, now_us: int) -> int:
        """Queue ``n`` bytes at ``now_us``; returns how long the call blocks (us)."""
        queued = self.queued(now_us) + int(n)
        block = 0
        if queued > self.room:
            block = -(-(queued - self.room) * 1_000_000 // self.bytes_per_s)
            self.blocks_us.append(block)
        self._queued = queued
        self._at_us = now_us
        return block
