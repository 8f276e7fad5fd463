"""Needle cartridge with a DS2431-like 1-Wire EEPROM holding its usage record.

The record (32 bytes at EEPROM address 0, little-endian) is the contract with the
firmware's cartridge driver (``firmware/pen/hw_cartridge.py``)::

    off size field
     0   2   magic b"SP"
     2   1   version (1)
     3   1   needles
     4   4   rated strokes
     8   4   expiry (Unix s)
    12   4   made (Unix s)
    16   4   first_use (Unix s, 0 = never used)
    20   4   used strokes
    24   1   flags (bit 0: finished, i.e. used in a finished session)
    25   5   reserved (0)
    30   2   CRC-16/CCITT-FALSE of bytes 0..29

The EEPROM speaks the DS2431 command set at byte level: ROM commands READ ROM
0x33, SKIP ROM 0xCC, MATCH ROM 0x55, RESUME 0xA5; memory commands READ MEMORY
0xF0, WRITE SCRATCHPAD 0x0F, READ SCRATCHPAD 0xAA, COPY SCRATCHPAD 0x55 (8-byte
rows, authorised by TA1 TA2 E/S echoed from READ SCRATCHPAD).
"""

from __future__ import annotations

import os
import struct
from typing import Any

RECORD_FMT = "<2sBBIIIIIB5sH"
RECORD_SIZE = struct.calcsize(RECORD_FMT)  # 32
MAGIC = b"SP"
VERSION = 1
FLAG_FINISHED = 0x01
FAMILY_DS2431 = 0x2D
MEM_SIZE = 128
KINDS = ("new", "used", "inserted", "expired", "worn", "corrupt", "blank")


class RecordError(ValueError):
    """A cartridge record that is blank, of an unknown format, or fails its CRC."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc8(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC-8 (what ``onewire.crc8`` computes)."""
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def encode_record(fields: dict[str, Any]) -> bytes:
    body = struct.pack(
        RECORD_FMT,
        MAGIC,
        VERSION,
        int(fields["needles"]),
        int(fields["rated"]),
        int(fields["expiry"]),
        int(fields.get("made", 0)),
        int(fields.get("first_use", 0)),
        int(fields.get("used", 0)),
        FLAG_FINISHED if fields.get("finished") else 0,
        bytes(5),
        0,
    )
    return body[:-2] + struct.pack("<H", crc16(body[:-2]))


def decode_record(data: bytes) -> dict[str, Any]:
    if len(data) < RECORD_SIZE:
        raise RecordError("record truncated")
    data = bytes(data[:RECORD_SIZE])
    magic, version, needles, rated, expiry, made, first_use, used, flags, _res, crc = struct.unpack(
        RECORD_FMT, data
    )
    if magic != MAGIC or version != VERSION:
        raise RecordError("not a cartridge record")
    if crc16(data[:-2]) != crc:
        raise RecordError("record CRC mismatch")
    return {
        "needles": needles,
        "rated": rated,
        "expiry": expiry,
        "made": made,
        "first_use": first_use,
        "used": used,
        "finished": bool(flags & FLAG_FINISHED),
    }


def make_rom(serial: int) -> bytes:
    body = bytes([FAMILY_DS2431]) + serial.to_bytes(6, "little")
    return body + bytes([crc8(body)])


# protocol states
_IDLE, _ROM, _MATCH, _FUNC, _ARGS, _READMEM, _WSCRATCH = range(7)


class VirtualCartridge:
    """One cartridge: its 64-bit ROM id and 128-byte EEPROM, speaking 1-Wire."""

    def __init__(self, rom: bytes, memory: bytes | None = None) -> None:
        if len(rom) != 8 or crc8(rom[:7]) != rom[7]:
            raise ValueError("bad 1-Wire ROM id")
        self.rom = bytes(rom)
        self.memory = bytearray(b"\xff" * MEM_SIZE)
        if memory is not None:
            self.memory[: len(memory)] = memory
        self.strokes = 0  # strokes the needles really made while inserted
        self.insertions = 0
        self.copies = 0  # EEPROM rows programmed
        self._state = _IDLE
        self._out = bytearray()
        self._args = bytearray()
        self._cmd = 0
        self._scratch = bytearray(b"\xff" * 8)
        self._ta = 0
        self._es = 0
        self._addr = 0

    # --- construction ------------------------------------------------------------
    @classmethod
    def make(
        cls,
        kind: str = "new",
        *,
        now: int,
        serial: int | None = None,
        needles: int = 14,
        rated: int = 100000,
        shelf_life_s: int = 63072000,
        **overrides: Any,
    ) -> VirtualCartridge:
        """A cartridge in a given condition (``KINDS``), dated against ``now`` (Unix s).

        ``new``: never used; ``used``: used in a finished session; ``inserted``:
        used in an unfinished session (pulled out and put back); ``expired``:
        past its shelf life; ``worn``: its rated strokes used up; ``corrupt``:
        CRC broken; ``blank``: an unprogrammed EEPROM. ``overrides`` set fields.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown cartridge kind {kind!r}; one of {', '.join(KINDS)}")
        if serial is None:
            serial = int.from_bytes(os.urandom(6), "little")
        made = now - 86400
        fields: dict[str, Any] = {
            "needles": needles,
            "rated": rated,
            "made": made,
            "expiry": made + shelf_life_s,
            "first_use": 0,
            "used": 0,
            "finished": False,
        }
        if kind == "used":
            fields.update(first_use=now - 7200, used=rated // 10, finished=True)
        elif kind == "inserted":
            fields.update(first_use=now - 600, used=rated // 20)
        elif kind == "expired":
            fields.update(made=now - shelf_life_s - 86400, expiry=now - 86400)
        elif kind == "worn":
            fields.update(first_use=now - 7200, used=rated)
        fields.update(overrides)
        cart = cls(make_rom(serial))
        if kind != "blank":
            cart.memory[:RECORD_SIZE] = encode_record(fields)
        if kind == "corrupt":
            cart.memory[20] ^= 0x5A
        return cart

    @property
    def id(self) -> bytes:
        return self.rom

    @property
    def record(self) -> dict[str, Any]:
        """The decoded record (raises :class:`RecordError` if it is bad)."""
        return decode_record(bytes(self.memory[:RECORD_SIZE]))

    def write_record(self, fields: dict[str, Any]) -> None:
        """Program the record directly (a factory programmer, not the pen)."""
        self.memory[:RECORD_SIZE] = encode_record(fields)

    # --- 1-Wire slave -------------------------------------------------------------
    def ow_reset(self) -> bool:
        self._state = _ROM
        self._out.clear()
        self._args.clear()
        return True

    def ow_read_byte(self) -> int:
        if self._out:
            return self._out.pop(0)
        if self._state == _READMEM:
            a = self._addr
            self._addr += 1
            if a < MEM_SIZE:
                return self.memory[a]
            return 0x00 if a < 0x90 else 0xFF
        return 0xFF

    def ow_write_byte(self, b: int) -> None:
        st = self._state
        if st == _ROM:
            if b == 0x33:
                self._out[:] = self.rom
                self._state = _FUNC
            elif b in (0xCC, 0xA5):
                self._state = _FUNC
            elif b == 0x55:
                self._args.clear()
                self._state = _MATCH
            else:
                self._state = _IDLE
        elif st == _MATCH:
            self._args.append(b)
            if len(self._args) == 8:
                self._state = _FUNC if bytes(self._args) == self.rom else _IDLE
                self._args.clear()
        elif st == _FUNC:
            self._out.clear()
            self._cmd = b
            self._args.clear()
            if b in (0xF0, 0x0F, 0x55):
                self._state = _ARGS
            elif b == 0xAA:
                crc = crc16(bytes([0xAA, self._ta & 0xFF, self._ta >> 8, self._es]) + self._scratch)
                self._out[:] = bytes([self._ta & 0xFF, self._ta >> 8, self._es]) + self._scratch
                self._out += bytes([~crc & 0xFF, (~crc >> 8) & 0xFF])
                self._state = _IDLE
            else:
                self._state = _IDLE
        elif st == _ARGS:
            self._args.append(b)
            if self._cmd == 0xF0 and len(self._args) == 2:
                self._addr = self._args[0] | (self._args[1] << 8)
                self._state = _READMEM
            elif self._cmd == 0x0F and len(self._args) == 2:
                self._ta = self._args[0] | (self._args[1] << 8)
                self._scratch[:] = b"\xff" * 8
                self._es = (self._ta & 7) | 0x20  # PF until the row is filled
                self._state = _WSCRATCH
            elif self._cmd == 0x55 and len(self._args) == 3:
                ta = self._args[0] | (self._args[1] << 8)
                if (
                    ta == self._ta
                    and self._args[2] == self._es
                    and self._es == 0x07
                    and ta < MEM_SIZE
                ):
                    row = ta & ~7
                    self.memory[row : row + 8] = self._scratch
                    self._es |= 0x80  # AA: copy done
                    self.copies += 1
                    self._out[:] = b"\xaa" * 4
                self._state = _IDLE
        elif st == _WSCRATCH:
            off = self._es & 7
            self._scratch[off] = b
            if off == 7:
                self._es = 0x07  # row complete, no partial flag
                self._state = _IDLE
            else:
                self._es = (self._es & 0x20) | (off + 1)
