# MicroPython's `onewire` driver inside the twin (MicroPython code, not firmware).
# On the ESP32 it is drivers/onewire/onewire.py over the C module `_onewire`; here
# every bus operation goes to the 1-Wire line model in the CPython process.
# Writes and resets are queued with the tick's outputs; a reset's presence pulse
# is read from the snapshot (presence changes only between ticks, when a cartridge
# goes in or out); reads are synchronous calls.
import struct

import _twin


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin
        self._o, self._slot = _twin.new("OneWire", [pin._gpio])

    def reset(self, required=False):
        present = _twin.present[self._slot] == 1
        _twin.op_ow_reset(self._o)
        if required and not present:
            raise OneWireError
        return present

    def readbyte(self):
        return _twin.call(self._o, "read", [1])[0]

    def readinto(self, buf):
        data = _twin.call(self._o, "read", [len(buf)])
        for i in range(len(buf)):
            buf[i] = data[i]

    def writebyte(self, value):
        _twin.push(struct.pack("<BBHB", _twin.OP_OW_WRITE, self._o, 1, value & 0xFF), False)

    def write(self, buf):
        data = bytes(buf)
        _twin.push(struct.pack("<BBH", _twin.OP_OW_WRITE, self._o, len(data)) + data, False)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        return [bytearray(bytes.fromhex(r)) for r in _twin.call(self._o, "scan")]

    def crc8(self, data):
        return _twin.call(self._o, "crc8", [bytes(data).hex()])
