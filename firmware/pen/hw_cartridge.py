# Needle cartridge: presence and its usage record in a DS2431-like 1-Wire EEPROM.
#
# Record (32 bytes at EEPROM address 0, little-endian; the same layout as
# hardware/scalppen_hardware/models/cartridge.py):
#   0 magic b"SP" | 2 version 1 | 3 needles u8 | 4 rated u32 | 8 expiry u32 |
#   12 made u32 | 16 first_use u32 | 20 used u32 | 24 flags u8 (bit0 finished) |
#   25 reserved x5 | 30 CRC-16/CCITT-FALSE of bytes 0..29, u16
#
# Presence is polled with a 1-Wire reset every few ticks; two missed presence
# pulses in a row mean the cartridge is out. Writes are programmed one 8-byte row
# per tick (write scratchpad, read it back, copy; the next tick reads the row back
# from memory to verify it), so no tick blocks for the EEPROM's 10 ms programming.
import struct

import onewire
from machine import Pin
from micropython import const

from pen.crc import crc8, crc16

_FMT = "<2sBBIIIIIB5sH"
_SIZE = const(32)
_VERSION = const(1)
_FLAG_FINISHED = const(1)
_READ_ROM = const(0x33)
_READ_MEM = const(0xF0)
_WRITE_SP = const(0x0F)
_READ_SP = const(0xAA)
_COPY_SP = const(0x55)
_RETRIES = const(3)
_MISSES_OUT = const(2)

FIELDS = ("needles", "rated", "expiry", "made", "first_use", "used", "finished")


def encode(rec):
    body = struct.pack(
        _FMT,
        b"SP",
        _VERSION,
        rec["needles"],
        rec["rated"],
        rec["expiry"],
        rec.get("made", 0),
        rec.get("first_use", 0),
        rec.get("used", 0),
        _FLAG_FINISHED if rec.get("finished") else 0,
        b"\x00\x00\x00\x00\x00",
        0,
    )
    return body[:30] + struct.pack("<H", crc16(body[:30]))


def decode(data):
    # The record dict, or None if the EEPROM holds no valid record.
    if len(data) < _SIZE:
        return None
    data = bytes(data[:_SIZE])
    f = struct.unpack(_FMT, data)
    if f[0] != b"SP" or f[1] != _VERSION or crc16(data[:30]) != f[10]:
        return None
    return {
        "needles": f[2],
        "rated": f[3],
        "expiry": f[4],
        "made": f[5],
        "first_use": f[6],
        "used": f[7],
        "finished": bool(f[8] & _FLAG_FINISHED),
    }


def invalid_record(rom):
    # What the core sees for a cartridge whose record is blank or corrupt.
    return {
        "id": bytes(rom),
        "valid": False,
        "needles": 0,
        "rated": 0,
        "expiry": 0,
        "made": 0,
        "first_use": 0,
        "used": 0,
        "finished": False,
    }


class Cartridge:
    def __init__(self, board):
        c = board["cartridge"]
        self._ow = onewire.OneWire(Pin(board["pins"]["onewire"]))
        self._family = c["family"]
        self._base = c["record_addr"]
        tick = board["limits"]["tick_ms"]
        self._poll = c["poll_ms"] // tick if c["poll_ms"] >= tick else 1
        self._n = 0
        self._misses = 0
        self.rom = None
        self.record = None  # dict for Inputs.cartridge, or None
        self.changed = False  # presence or record changed on the last poll
        self.errors = 0
        self._image = b""  # bytes the EEPROM should hold (b"" = nothing to write)
        self._stored = None  # type: bytes | None  # bytes the EEPROM is known to hold
        self._rows = []  # row offsets still to program
        self._verify = -1  # row copied last tick, to read back
        self._tries = 0

    @property
    def busy(self):
        return bool(self._rows) or self._verify >= 0

    # --- low level -------------------------------------------------------------
    def _read_rom(self):
        ow = self._ow
        if not ow.reset():
            return None
        ow.writebyte(_READ_ROM)
        rom = bytearray(8)
        ow.readinto(rom)
        if rom[0] != self._family or crc8(rom[:7]) != rom[7]:
            return None
        return bytes(rom)

    def _read_mem(self, addr, n):
        ow = self._ow
        ow.select_rom(self.rom)
        ow.write(bytes((_READ_MEM, addr & 0xFF, addr >> 8)))
        buf = bytearray(n)
        ow.readinto(buf)
        return bytes(buf)

    def _program_row(self, off):
        ow = self._ow
        ta = self._base + off
        data = self._image[off : off + 8]
        ow.select_rom(self.rom)
        ow.write(bytes((_WRITE_SP, ta & 0xFF, ta >> 8)) + data)
        ow.select_rom(self.rom)
        ow.writebyte(_READ_SP)
        sp = bytearray(11)
        ow.readinto(sp)
        if sp[0] != ta & 0xFF or sp[1] != ta >> 8 or sp[2] != 7 or bytes(sp[3:11]) != data:
            return False
        ow.select_rom(self.rom)
        ow.write(bytes((_COPY_SP, sp[0], sp[1], sp[2])))
        return True

    def _load(self, rom):
        self.rom = rom
        self._rows = []
        self._verify = -1
        for _ in range(_RETRIES):
            raw = self._read_mem(self._base, _SIZE)
            rec = decode(raw)
            if rec is not None:
                rec["id"] = rom
                rec["valid"] = True
                self._stored = raw
                self.record = rec
                return
        self._stored = None
        self.record = invalid_record(rom)

    # --- per tick ----------------------------------------------------------------
    def poll(self):
        # Presence (every few ticks) and one step of any pending write.
        self.changed = False
        self._n += 1
        if self._n < self._poll and not self._rows and self._verify < 0:
            return  # nothing to do this tick
        if self._n >= self._poll:
            self._n = 0
            if self.rom is None:
                rom = self._read_rom()
                if rom is not None:
                    self._misses = 0
                    self._load(rom)
                    self.changed = True
            elif self._ow.reset():
                self._misses = 0
            else:
                self._misses += 1
                if self._misses >= _MISSES_OUT:
                    if self.busy:
                        self.errors += 1
                    self.rom = None
                    self.record = None
                    self._stored = None
                    self._rows = []
                    self._verify = -1
                    self.changed = True
                    return
        if self.rom is not None and self.busy:
            self._write_step()

    def write(self, fields):
        # Merge fields into the record and queue the rows that change.
        if self.record is None or not self.record.get("valid") or self._stored is None:
            self.errors += 1
            return False
        rec = {}
        for k in FIELDS:
            rec[k] = fields[k] if k in fields else self.record[k]
        image = encode(rec)
        if image == self._image and self.busy:
            return True  # already being programmed
        self._image = image
        rows = []
        for off in range(0, _SIZE, 8):
            if self._image[off : off + 8] != self._stored[off : off + 8]:
                rows.append(off)
        self._rows = rows
        self._tries = 0
        return True

    def _write_step(self):
        if self._verify >= 0:
            off = self._verify
            self._verify = -1
            got = self._read_mem(self._base + off, 8)
            want = self._image[off : off + 8]
            if got == want:
                self._stored = self._stored[:off] + want + self._stored[off + 8 :]  # type: ignore[index]
                self._tries = 0
                if not self._rows:
                    rec = decode(self._stored)
                    if rec is not None:
                        rec["id"] = self.rom
                        rec["valid"] = True
                        self.record = rec
                        self.changed = True
                return
            self._retry(off)
            return
        if not self._rows:
            return
        off = self._rows.pop(0)
        if self._program_row(off):
            self._verify = off
        else:
            self._retry(off)

    def _retry(self, off):
        self._tries += 1
        if self._tries >= _RETRIES:
            self.errors += 1
            self._rows = []
            self._tries = 0
        else:
            self._rows.insert(0, off)
