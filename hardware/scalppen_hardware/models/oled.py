"""Character OLED on I2C (US2066-style controller, 4 lines x 20 characters).

An I2C write starts with a control byte: ``0x00`` (Co=0, D/C=0) makes the rest
of the write commands, ``0x40`` (Co=0, D/C=1) makes the rest data, ``0x80`` /
``0xC0`` (Co=1) carry exactly one command / data byte and are followed by another
control byte. Commands understood: function set ``0x20-0x3F`` (bit 1 = RE
selects the extended set, whose commands are accepted and ignored), ``0x01`` clear, ``0x02`` home,
``0x08 | D<<2`` display on/off, ``0x80 | addr`` set DDRAM address (lines start
at ``row_addr``, e.g. 0x00, 0x20, 0x40, 0x60); other commands (function set,
contrast, ...) are accepted and ignored. Data bytes land at the DDRAM address,
which then increments.

The model exposes the text on the glass (:attr:`text`, :attr:`lines`) and
calls every listener with the new text after each write that changed it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str], None]


class CharOled:
    def __init__(self, params: dict[str, Any]) -> None:
        self.cols = int(params["cols"])
        self.rows = int(params["rows"])
        self.row_addr = [int(a) for a in params["row_addr"]]
        self.ddram = bytearray(b" " * 128)
        self.addr = 0
        self.on = False
        self.re = False  # extended instruction set selected (function set RE bit)
        self.listeners: list[Listener] = []
        self.writes = 0
        self._shown = ""

    # --- what a person sees -----------------------------------------------------
    @property
    def lines(self) -> list[str]:
        if not self.on:
            return [""] * self.rows
        out = []
        for a in self.row_addr:
            raw = bytes(self.ddram[a : a + self.cols])
            out.append(raw.decode("latin-1").rstrip())
        return out

    @property
    def text(self) -> str:
        return "\n".join(self.lines).rstrip("\n")

    def add_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        self.listeners.remove(fn)

    def power_off(self) -> None:
        """Power lost: the controller forgets its RAM and turns the glass off."""
        self.ddram[:] = b" " * 128
        self.on = False
        self.re = False
        self.addr = 0
        self._notify()

    # --- I2C device interface ---------------------------------------------------
    def _command(self, c: int) -> None:
        if c & 0xE0 == 0x20:  # function set: bit 1 selects the extended set (RE)
            self.re = bool(c & 0x02)
        elif self.re and c < 0x80:
            return  # extended commands (font, lines, contrast, ...): no visible effect
        elif c == 0x01:
            self.ddram[:] = b" " * 128
            self.addr = 0
        elif c in (0x02, 0x03):
            self.addr = 0
        elif c & 0xF8 == 0x08:
            self.on = bool(c & 0x04)
        elif c & 0x80:
            self.addr = c & 0x7F

    def _data(self, d: int) -> None:
        self.ddram[self.addr & 0x7F] = d
        self.addr = (self.addr + 1) & 0x7F

    def i2c_write(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            ctrl = data[i]
            i += 1
            if ctrl & 0x80:  # Co=1: one byte, then another control byte
                if i < n:
                    (self._data if ctrl & 0x40 else self._command)(data[i])
                    i += 1
                continue
            handler = self._data if ctrl & 0x40 else self._command
            while i < n:
                handler(data[i])
                i += 1
        self.writes += 1
        self._notify()

    def i2c_read(self, n: int) -> bytes:
        # Status read: busy flag 0 and the address counter.
        return bytes([self.addr & 0x7F] * n)

    def _notify(self) -> None:
        text = self.text
        if text != self._shown:
            self._shown = text
            for fn in list(self.listeners):
                fn(text)
