# Needle cartridge: presence, and its record in the cartridge's SHA-256 secure
# authenticator on 1-Wire (page layouts and checks in pen/cartauth.py).
#
# Presence is polled with a 1-Wire reset every few ticks; two missed presence
# pulses in a row mean the cartridge is out. A cartridge that answers is read
# once, at insertion: READ STATUS (its pages must be locked as the factory locks
# them), then each page with Compute and Read Page Authentication to a fresh
# random challenge; the record reaches the core only when all of it has been
# checked (Inputs.cartridge["auth"]). A command is sent on one tick and its result
# read on a later one, after the chip's command time, so no tick waits for the
# chip's SHA engine or EEPROM. Writes go the only ways the chip allows: the usage
# page (first use, finished) clears bits, the counter (strokes left) counts down.
import binascii
import os
import struct

import onewire
from machine import Pin
from micropython import const

from pen import cartauth
from pen.crc import crc8

_READ_ROM = const(0x33)
_START = const(0x66)
_RELEASE = const(0xAA)
_OK = const(0xAA)
_CMD_STATUS = const(0xAA)
_CMD_AUTH = const(0xA5)
_CMD_WRITE = const(0x96)
_CMD_DECREMENT = const(0xC9)
_CRC_RESIDUE = const(0xB001)  # 1-Wire CRC-16 of a frame followed by its inverted CRC
_PROT_WP = const(0x02)
_PROT_EM = const(0x04)
_RETRIES = const(3)
_MISSES_OUT = const(2)
_MAX_DECREMENT = const(0xFFFFFF)  # the command's amount is 24 bits


def invalid_record(rom):
    # What the core sees for a cartridge that cannot be read.
    return cartauth.record(rom, cartauth.INVALID, None)


def _key(c):
    try:
        k = binascii.unhexlify(c.get("auth_key", ""))
    except (ValueError, TypeError):
        return None
    return k if len(k) >= 16 else None  # no key: every cartridge fails its check


class Cartridge:
    def __init__(self, board):
        c = board["cartridge"]
        self._ow = onewire.OneWire(Pin(board["pins"]["onewire"]))
        self._family = c["family"]
        self._master = _key(c)
        tick = board["limits"]["tick_ms"]
        self._poll = c["poll_ms"] // tick if c["poll_ms"] >= tick else 1
        # the chip's command times (its datasheet), in ticks to wait for a result
        self._t_compute = (c.get("compute_ms", 10) + tick - 1) // tick
        self._t_write = (c.get("write_ms", 100) + tick - 1) // tick
        self._n = 0
        self._misses = 0
        self.rom = None
        self.record = None  # dict for Inputs.cartridge, or None
        self.changed = False  # presence or record changed on the last poll
        self.errors = 0
        self._forget()

    def _forget(self):
        # page data as read (and as written since), and the MACs read with it
        self._pages = [None, None, None]  # type: list
        self._macs = [None, None, None]  # type: list
        self._chal = [None, None, None]
        self._locked = False
        self._step = 0  # 0 status, 1..3 pages, 4 checked
        self._sent = None  # the command in flight
        self._wait = 0  # ticks until its result may be read
        self._tries = 0
        self._want_usage = None  # usage page to write, or None
        self._want_used = 0  # strokes the counter should show as used

    @property
    def busy(self):
        return self._sent is not None or self._pending() is not None

    # --- commands ----------------------------------------------------------------
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

    def _send(self, cmd, wait):
        ow = self._ow
        ow.select_rom(self.rom)
        frame = bytes((_START, len(cmd))) + cmd
        ow.write(frame)
        crc = bytearray(2)
        ow.readinto(crc)
        if cartauth.crc16_ow(frame + crc) != _CRC_RESIDUE:
            return False
        ow.writebyte(_RELEASE)
        self._sent = cmd
        self._wait = wait
        return True

    def _result(self, n):
        # (result byte, data) of the command in flight, or None if it did not come
        # through (no answer, bad length or CRC).
        buf = bytearray(n + 5)  # dummy, length, result, n data, CRC-16
        self._ow.readinto(buf)
        ln = buf[1]
        if ln < 1 or ln > n + 1 or cartauth.crc16_ow(buf[1 : ln + 4]) != _CRC_RESIDUE:
            return None
        return buf[2], bytes(buf[3 : ln + 2])

    # --- per tick ----------------------------------------------------------------
    def poll(self):
        # Presence (every few ticks), or one step of reading or writing the chip.
        self.changed = False
        if self._sent is not None:
            if self._wait > 1:
                self._wait -= 1
                return
            self._finish()
            return
        self._n += 1
        if self._n >= self._poll:
            self._n = 0
            # the ROM, not bare presence: a cartridge swapped for another between two
            # polls is a new one, read and checked from the start
            rom = self._read_rom()
            if rom is not None:
                self._misses = 0
                if rom != self.rom:
                    self._forget()
                    self.rom = rom
                    if self.record is not None:
                        self.record = None
                        self.changed = True
                        return
            elif self.rom is not None:
                self._misses += 1
                if self._misses >= _MISSES_OUT:
                    if self.busy:
                        self.errors += 1
                    self.rom = None
                    self._forget()
                    if self.record is not None:
                        self.record = None
                        self.changed = True
                    return
        if self.rom is not None and self._misses == 0:
            self._next()

    def _next(self):
        # Send the next command the cartridge needs, if any.
        step = self._step
        if step == 0:
            self._send(bytes((_CMD_STATUS,)), 1)
        elif step <= cartauth.PAGES:
            chal = os.urandom(32)
            self._chal[step - 1] = chal
            self._send(bytes((_CMD_AUTH, step - 1)) + chal, self._t_compute)
        else:
            w = self._pending()
            if w is not None:
                self._send(w, self._t_write)

    def _pending(self):
        # The write command the record still needs, or None.
        if self._step <= cartauth.PAGES or self.record is None or not self.record["auth"]:
            return None
        if self._want_usage is not None and self._want_usage != self._pages[cartauth.P_USAGE]:
            return bytes((_CMD_WRITE, cartauth.P_USAGE)) + self._want_usage
        # counts to take off: down to the count that shows at least _want_used used
        rated = self.record["rated"]
        left = rated - self._want_used if self._want_used < rated else 0
        counter = self._counter()
        d = counter - left // cartauth.STROKES_PER_COUNT  # the counter stops at 0: worn out
        if d > 0:
            if d > _MAX_DECREMENT:
                d = _MAX_DECREMENT
            return bytes((_CMD_DECREMENT, d & 0xFF, (d >> 8) & 0xFF, d >> 16))
        return None

    def _counter(self):
        return struct.unpack("<I", self._pages[cartauth.P_COUNTER][:4])[0]

    def _finish(self):
        cmd = self._sent
        if cmd is None:
            return
        op = cmd[0]
        n = 6 if op == _CMD_STATUS else (64 if op == _CMD_AUTH else 0)
        got = self._result(n)
        self._sent = None
        if got is None or (op != _CMD_WRITE and op != _CMD_DECREMENT and got[0] != _OK):
            self._retry()
            return
        self._tries = 0
        res, data = got
        if op == _CMD_STATUS:
            if len(data) < 3:
                self._retry()
                return
            self._locked = bool(data[0] & _PROT_WP and data[1] & _PROT_EM and data[2] & _PROT_WP)
            self._step = 1
        elif op == _CMD_AUTH:
            if len(data) < 64:
                self._retry()
                return
            p = cmd[1]
            self._pages[p] = data[:32]
            self._macs[p] = data[32:64]
            self._step = p + 2
            if self._step > cartauth.PAGES:
                self._checked()
        elif res != _OK:
            self.errors += 1  # the chip refused the write: the record stays as it is
            self._want_usage = None
            self._want_used = 0
        else:
            if op == _CMD_WRITE:
                old = self._pages[cartauth.P_USAGE]
                new = cmd[2:]
                self._pages[cartauth.P_USAGE] = bytes(old[i] & new[i] for i in range(cartauth.PAGE))
                self._want_usage = None  # one write: a page that still differs is left as it is
            else:
                d = cmd[1] | cmd[2] << 8 | cmd[3] << 16
                c = self._counter()
                self._pages[cartauth.P_COUNTER] = cartauth.encode_counter(c - d if d < c else 0)
            self._update()

    def _checked(self):
        if self._master is None:
            verdict = cartauth.UNAUTHENTIC
        else:
            verdict = cartauth.check(self._master, self.rom, self._pages, self._macs, self._chal)
            if verdict == cartauth.OK and not self._locked:
                verdict = cartauth.UNAUTHENTIC  # pages the factory did not lock can be rewritten
        self.record = cartauth.record(self.rom, verdict, self._pages)
        self.changed = True

    def _update(self):
        # The record after a confirmed write (it was authenticated as read; the
        # chip applied the write the one way it allows).
        rec = cartauth.decode(self._pages)
        if rec is not None and self.record is not None:
            rec["id"] = self.rom
            rec["valid"] = True
            rec["auth"] = self.record["auth"]
            self.record = rec
            self.changed = True

    def _retry(self):
        self._tries += 1
        if self._tries >= _RETRIES:
            self._tries = 0
            self.errors += 1
            if self._step <= cartauth.PAGES:
                # it answers but cannot be read: shown as an invalid cartridge
                self._step = cartauth.PAGES + 1
                self.record = invalid_record(self.rom)
                self.changed = True
            else:
                self._want_usage = None
                self._want_used = 0

    def write(self, fields):
        # Ask for fields on the chip; programmed over the next ticks. Only what the
        # chip allows: first_use once, finished once, strokes used only upwards.
        rec = self.record
        checked = self._step > cartauth.PAGES
        if rec is None or not rec.get("valid") or not rec.get("auth") or not checked:
            self.errors += 1
            return False
        first = fields.get("first_use") or rec["first_use"]
        fin = bool(fields.get("finished")) or rec["finished"]
        usage = cartauth.encode_usage(rec["first_use"] or first, fin)
        if usage != self._pages[cartauth.P_USAGE]:
            self._want_usage = usage
        used = fields.get("used", 0)
        if used > self._want_used:
            self._want_used = used
        return True
