"""MicroPython's ``onewire`` module over the virtual pen's 1-Wire bus.

Same class and methods as MicroPython's (``OneWire(pin)``, ``reset``,
``readbyte``, ``writebyte``, ``readinto``, ``write``, ``select_rom``, ``scan``,
``crc8``); bytes go to the slave on the pin's bus (the cartridge's EEPROM) at
byte level. Bit-level calls are not modelled (``readbit``/``writebit`` raise).
"""

from __future__ import annotations

from typing import Any

from scalppen_hardware.models.cartridge import crc8 as _crc8


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin: Any) -> None:
        self.pin = pin
        self._bus = pin._hw.onewire_bus(pin.id())

    def reset(self, required: bool = False) -> bool:
        present = self._bus.reset()
        if required and not present:
            raise OneWireError
        return present

    def readbit(self) -> int:
        raise NotImplementedError("bit-level 1-Wire is not modelled")

    def writebit(self, value: int) -> None:
        raise NotImplementedError("bit-level 1-Wire is not modelled")

    def readbyte(self) -> int:
        return self._bus.read_byte()

    def readinto(self, buf: Any) -> None:
        rd = self._bus.read_byte
        for i in range(len(buf)):
            buf[i] = rd()

    def writebyte(self, value: int) -> None:
        self._bus.write_byte(value & 0xFF)

    def write(self, buf: Any) -> None:
        wr = self._bus.write_byte
        for b in bytes(buf):
            wr(b)

    def select_rom(self, rom: Any) -> None:
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self) -> list[bytearray]:
        return [bytearray(rom) for rom in self._bus.roms()]

    def crc8(self, data: Any) -> int:
        return _crc8(bytes(data))
