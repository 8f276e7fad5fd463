"""Needle cartridge with a SHA-256 secure authenticator on 1-Wire (DS28E50-like).

The chip is modelled on Maxim's DS28E50/DS28E16 secure authenticators (SHA-256
in place of their SHA3-256: MicroPython has ``hashlib.sha256``; see
docs/fidelity.md for what is modelled and what is simplified):

* a 64-bit ROM id: family code ``FAMILY``, 48-bit serial, CRC-8;
* a 32-byte secret, loaded and locked at the factory, never readable;
* three 32-byte pages (the layouts are in ``firmware/pen/cartauth.py``): 0 the
  factory record, write-protected; 1 the usage page in EPROM emulation (a write
  can only clear bits); 2 the decrement-only 17-bit counter (read-only);
* page protection that is one-way too (a protection bit once set stays set).

Commands, after READ ROM 0x33 / MATCH ROM 0x55 / SKIP ROM 0xCC / RESUME 0xA5, are
framed as the DS28E50's: ``66h, length, command, parameters``; the chip answers the
inverted 1-Wire CRC-16 of those bytes; the master sends the release byte ``AAh``;
after the command's time the master reads a dummy byte, ``length, result,
data``, and the inverted CRC-16 of ``length, result, data``. Reading before the
time is up gives 0xFF (the chip holds the line high while it works). Commands:
READ MEMORY 44h (page), WRITE MEMORY 96h (page, 32 bytes), READ STATUS AAh,
SET PAGE PROTECTION C3h (page, protection), COMPUTE AND READ PAGE AUTHENTICATION
A5h (page, 32-byte challenge; answers the page data and its MAC, as the DS28E15's
Read Authenticated Page does, where the DS28E50 answers the MAC alone), DECREMENT
COUNTER C9h (amount, u24 little-endian; the DS28E50 decrements by one per command).
Result bytes: AAh success, 55h protected, 77h bad parameter.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from typing import Any

FAMILY = 0x17  # the family code of Maxim's SHA-256 authenticators (DS28E15)
PAGE = 32
PAGES = 3
P_FACTORY, P_USAGE, P_COUNTER = 0, 1, 2
VERSION = 2
COUNTER_MAX = 0x1FFFF
#: Strokes one count stands for (``pen/cartauth.py``): 17 bits of counts hold up to
#: 262,142 strokes, the 150,000-stroke default rating included (rule 14).
STROKES_PER_COUNT = 2
RATED_MAX = COUNTER_MAX * STROKES_PER_COUNT


def counts_left(rated: int, used: int) -> int:
    """The counter that shows at least ``used`` of ``rated`` strokes used."""
    return max(0, rated - used) // STROKES_PER_COUNT
MANID = b"\x00\x00"
SECRET_PREFIX = b"scalppen/cartridge"
#: The development master key; the boards' JSON carry the same (``cartridge.auth_key``).
DEV_MASTER_KEY = bytes.fromhex("5ca1bbe0c0a7d3e5" * 4)
PROT_WP = 0x02  # write-protected
PROT_EM = 0x04  # EPROM emulation: a write can only clear bits
RESULT_OK, RESULT_PROTECTED, RESULT_PARAM = 0xAA, 0x55, 0x77
# Command times (us): of the order of the family's datasheets and of the DS28E16
# driver's waits (a few ms to compute or read, up to 100 ms to program EEPROM).
T_READ_US = 3_000
T_COMPUTE_US = 5_000
T_WRITE_US = 60_000
KINDS = ("new", "used", "inserted", "expired", "worn", "corrupt", "blank", "undated")
_NEVER = 0xFFFFFFFF
_FACTORY_FMT = "<2sBBIII14sH"


class RecordError(ValueError):
    """A cartridge record that is blank, of an unknown format, or fails its CRC."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the factory page's own check."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc16_ow(data: bytes, crc: int = 0) -> int:
    """The 1-Wire CRC-16 (reflected poly 0xA001, init 0) of command and result frames."""
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
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


def make_rom(serial: int, family: int = FAMILY) -> bytes:
    body = bytes([family]) + serial.to_bytes(6, "little")
    return body + bytes([crc8(body)])


def device_secret(master: bytes, rom: bytes) -> bytes:
    """The per-chip secret the factory loads: HMAC-SHA256(master, prefix | ROM id)."""
    return hmac.new(master, SECRET_PREFIX + rom, hashlib.sha256).digest()


def page_mac(secret: bytes, rom: bytes, page: int, data: bytes, challenge: bytes) -> bytes:
    msg = rom + bytes([page]) + bytes(data) + bytes(challenge) + MANID
    return hmac.new(secret, msg, hashlib.sha256).digest()


def encode_factory(fields: dict[str, Any]) -> bytes:
    body = struct.pack(
        _FACTORY_FMT, b"SP", VERSION, int(fields["needles"]), int(fields["rated"]),
        int(fields["expiry"]), int(fields.get("made", 0)), bytes(14), 0,
    )
    return body[:30] + struct.pack("<H", crc16(body[:30]))


def encode_usage(first_use: int = 0, finished: bool = False) -> bytes:
    return struct.pack("<IB", first_use or _NEVER, 0 if finished else 0xFF) + b"\xff" * 27


def decode_pages(pages: list[bytes], counter: int) -> dict[str, Any]:
    """The record the pages and counter hold (raises :class:`RecordError`)."""
    f = bytes(pages[P_FACTORY])
    magic, ver, needles, rated, expiry, made, _res, crc = struct.unpack(_FACTORY_FMT, f)
    if magic != b"SP" or ver != VERSION:
        raise RecordError("not a cartridge record")
    if crc16(f[:30]) != crc:
        raise RecordError("record CRC mismatch")
    first, fin = struct.unpack("<IB", bytes(pages[P_USAGE][:5]))
    return {
        "needles": needles,
        "rated": rated,
        "expiry": expiry,
        "made": made,
        "first_use": 0 if first == _NEVER else first,
        "used": max(0, rated - counter * STROKES_PER_COUNT),
        "finished": fin != 0xFF,
    }


# protocol states
_IDLE, _ROM, _MATCH, _FUNC, _LEN, _CMD, _RELEASE, _RESULT = range(8)
_ARGS = {0x44: 2, 0x96: 34, 0xAA: 1, 0xC3: 3, 0xA5: 34, 0xC9: 4}  # length byte of each command


class VirtualCartridge:
    """One cartridge: its ROM id, secret, pages, counter and protection, on 1-Wire."""

    def __init__(self, rom: bytes, *, secret: bytes | None = None) -> None:
        if len(rom) != 8 or crc8(rom[:7]) != rom[7]:
            raise ValueError("bad 1-Wire ROM id")
        self.rom = bytes(rom)
        self._secret = secret if secret is not None else os.urandom(32)  # unkeyed: random
        self.pages = [bytearray(b"\xff" * PAGE) for _ in range(PAGES - 1)]
        self.counter = COUNTER_MAX
        self.protection = [0, 0, PROT_WP]
        self.now_us: Callable[[], int] | None = None  # the bus's clock (None: no waits)
        self.strokes = 0  # strokes the needles really made while inserted
        self.insertions = 0
        self.writes = 0  # EEPROM writes done (pages, counter, protection)
        self.refused = 0  # writes the chip refused (protected page, bad parameter)
        self._state = _IDLE
        self._frame = bytearray()
        self._out = bytearray()
        self._ready_us = 0
        self._result = b""

    # --- construction ------------------------------------------------------------
    @classmethod
    def make(
        cls,
        kind: str = "new",
        *,
        now: int,
        serial: int | None = None,
        needles: int = 14,
        rated: int = 150_000,
        shelf_life_s: int = 63072000,
        master: bytes = DEV_MASTER_KEY,
        **overrides: Any,
    ) -> VirtualCartridge:
        """A cartridge as the factory keys it, in a condition (``KINDS``), dated against ``now``.

        ``new``: never used; ``used``: used in a finished session; ``inserted``:
        used in an unfinished session (pulled out and put back); ``expired``: past
        its shelf life; ``worn``: its rated strokes used up; ``corrupt``: the
        factory page's CRC broken; ``blank``: a chip the factory never keyed or
        programmed; ``undated``: no manufacture date. ``overrides`` set fields.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown cartridge kind {kind!r}; one of {', '.join(KINDS)}")
        if serial is None:
            serial = int.from_bytes(os.urandom(6), "little")
        rom = make_rom(serial)
        if kind == "blank":
            return cls(rom)
        made = now - 86400
        fields: dict[str, Any] = {
            "needles": needles, "rated": rated, "made": made, "expiry": made + shelf_life_s,
            "first_use": 0, "used": 0, "finished": False,
        }
        if kind == "used":
            fields.update(first_use=now - 7200, used=rated // 10, finished=True)
        elif kind == "inserted":
            fields.update(first_use=now - 600, used=rated // 20)
        elif kind == "expired":
            fields.update(made=now - shelf_life_s - 86400, expiry=now - 86400)
        elif kind == "worn":
            fields.update(first_use=now - 7200, used=rated)
        elif kind == "undated":
            fields.update(made=0)
        fields.update(overrides)
        cart = cls(rom, secret=device_secret(master, rom))
        cart.factory_program(fields)
        if kind == "corrupt":
            cart.pages[P_FACTORY][20] ^= 0x5A
        return cart

    def factory_program(self, fields: dict[str, Any]) -> None:
        """What the factory's programmer does once: the pages, the counter, then the locks."""
        rated = int(fields["rated"])
        if not 0 < rated <= RATED_MAX:
            raise ValueError(f"rated strokes {rated} outside 1..{RATED_MAX} (the counter's)")
        self.pages[P_FACTORY][:] = encode_factory(fields)
        first, fin = int(fields.get("first_use", 0)), bool(fields.get("finished"))
        self.pages[P_USAGE][:] = encode_usage(first, fin)
        self.counter = counts_left(rated, int(fields.get("used", 0)))
        self.protection = [PROT_WP, PROT_EM, PROT_WP]

    @property
    def id(self) -> bytes:
        return self.rom

    @property
    def record(self) -> dict[str, Any]:
        """The decoded record (raises :class:`RecordError` if it is bad)."""
        return decode_pages([bytes(p) for p in self.pages] + [self.page(P_COUNTER)], self.counter)

    def page(self, n: int) -> bytes:
        if n == P_COUNTER:
            return struct.pack("<I", self.counter) + bytes(28)
        return bytes(self.pages[n])

    # --- what the chip allows (also what a chip programmer in the wrong hands gets) ---
    def write_page(self, n: int, data: bytes) -> int:
        """WRITE MEMORY: the result byte. A write-protected page refuses; an EPROM page
        keeps only the bits both hold."""
        if n not in (P_FACTORY, P_USAGE) or len(data) != PAGE:
            self.refused += 1
            return RESULT_PARAM
        prot = self.protection[n]
        if prot & PROT_WP:
            self.refused += 1
            return RESULT_PROTECTED
        if prot & PROT_EM:
            data = bytes(a & b for a, b in zip(self.pages[n], data, strict=True))
        self.pages[n][:] = data
        self.writes += 1
        return RESULT_OK

    def decrement(self, amount: int) -> int:
        """DECREMENT COUNTER by ``amount`` (it stops at 0; it never goes up)."""
        if amount <= 0:
            self.refused += 1
            return RESULT_PARAM
        self.counter = max(0, self.counter - amount)
        self.writes += 1
        return RESULT_OK

    def set_protection(self, n: int, prot: int) -> int:
        if not 0 <= n < PAGES:
            self.refused += 1
            return RESULT_PARAM
        self.protection[n] |= prot & (PROT_WP | PROT_EM)
        self.writes += 1
        return RESULT_OK

    def authenticate(self, n: int, challenge: bytes) -> bytes:
        """COMPUTE AND READ PAGE AUTHENTICATION: the MAC of page ``n`` to ``challenge``."""
        return page_mac(self._secret, self.rom, n, self.page(n), challenge)

    # --- attacks (what someone without the secret can make) ------------------------
    def clone(self, *, rom: bytes | None = None, **fields: Any) -> VirtualCartridge:
        """An emulator loaded with this chip's readable pages (``fields`` rewritten into
        them, the factory CRC made good) and counter, answering as ``rom`` (default:
        this ROM id). Its secret is a guess: the chip never gives its own out."""
        twin = VirtualCartridge(rom or self.rom)
        twin.pages = [bytearray(p) for p in self.pages]
        twin.counter = self.counter
        twin.protection = list(self.protection)  # an emulator claims the locks too
        if fields:
            rec = {**self.record, **fields}
            twin.pages[P_FACTORY][:] = encode_factory(rec)
            twin.pages[P_USAGE][:] = encode_usage(int(rec["first_use"]), bool(rec["finished"]))
            twin.counter = counts_left(int(rec["rated"]), int(rec["used"]))
        return twin

    def rewrite(self, **fields: Any) -> list[str]:
        """Try to put ``fields`` on this chip with a chip programmer (every command the
        chip has); -> the fields the chip refused to take."""
        rec = {**self.record, **fields}
        refused = []
        factory = any(k in fields for k in ("needles", "rated", "expiry", "made"))
        if factory and self.write_page(P_FACTORY, encode_factory(rec)) != RESULT_OK:
            refused.append("factory")
        if "first_use" in fields or "finished" in fields:
            want = encode_usage(int(rec["first_use"]), bool(rec["finished"]))
            self.write_page(P_USAGE, want)
            if bytes(self.pages[P_USAGE]) != want:
                refused.append("usage")
        if "used" in fields:
            target = counts_left(int(rec["rated"]), int(fields["used"]))
            if target < self.counter:
                self.decrement(self.counter - target)
            if self.counter != target:
                refused.append("used")
        return refused

    # --- 1-Wire slave -------------------------------------------------------------
    def _now(self) -> int:
        return self.now_us() if self.now_us is not None else 0

    def ow_reset(self) -> bool:
        self._state = _ROM
        self._out.clear()
        self._frame.clear()
        return True

    def ow_read_byte(self) -> int:
        if self._state == _RESULT and not self._out:
            if self._now() < self._ready_us:
                return 0xFF  # still working: the line stays high
            n = len(self._result)
            body = bytes([n]) + self._result
            crc = ~crc16_ow(body) & 0xFFFF
            self._out[:] = b"\xff" + body + bytes([crc & 0xFF, crc >> 8])
            self._state = _IDLE
        if self._out:
            return self._out.pop(0)
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
                self._frame.clear()
                self._state = _MATCH
            else:
                self._state = _IDLE
        elif st == _MATCH:
            self._frame.append(b)
            if len(self._frame) == 8:
                self._state = _FUNC if bytes(self._frame) == self.rom else _IDLE
                self._frame.clear()
        elif st == _FUNC:
            self._out.clear()
            self._frame[:] = bytes([b])
            self._state = _LEN if b == 0x66 else _IDLE
        elif st == _LEN:
            self._frame.append(b)
            self._state = _CMD if b > 0 else _IDLE
        elif st == _CMD:
            self._frame.append(b)
            if len(self._frame) == 2 + self._frame[1]:
                crc = ~crc16_ow(bytes(self._frame)) & 0xFFFF
                self._out[:] = bytes([crc & 0xFF, crc >> 8])
                self._state = _RELEASE
        elif st == _RELEASE:
            self._out.clear()
            if b == 0xAA:
                self._run(bytes(self._frame[2:]))
            else:
                self._state = _IDLE

    def _run(self, cmd: bytes) -> None:
        op, args = cmd[0], cmd[1:]
        t = T_READ_US
        if _ARGS.get(op) != len(cmd):
            res = bytes([RESULT_PARAM])
        elif op == 0x44:
            ok = args[0] < PAGES
            res = bytes([RESULT_OK]) + self.page(args[0]) if ok else bytes([RESULT_PARAM])
        elif op == 0xAA:
            res = bytes([RESULT_OK, *self.protection]) + MANID + b"\x01"
        elif op == 0xA5:
            t = T_COMPUTE_US
            if args[0] < PAGES:
                res = bytes([RESULT_OK]) + self.page(args[0]) + self.authenticate(args[0], args[1:])
            else:
                res = bytes([RESULT_PARAM])
        elif op == 0x96:
            t = T_WRITE_US
            res = bytes([self.write_page(args[0], args[1:])])
        elif op == 0xC3:
            t = T_WRITE_US
            res = bytes([self.set_protection(args[0], args[1])])
        else:  # 0xC9
            t = T_WRITE_US
            res = bytes([self.decrement(args[0] | args[1] << 8 | args[2] << 16)])
        self._result = res
        self._ready_us = self._now() + t
        self._state = _RESULT
