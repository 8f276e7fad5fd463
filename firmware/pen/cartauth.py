# Cartridge authentication (rules 13, 15): the cartridge carries a SHA-256 secure
# authenticator modelled on Maxim's DS28E50 family (see docs/fidelity.md); this
# module holds its page layouts and the checks, the 1-Wire transfers are in
# pen/hw_cartridge.py. Pure functions: the CPython plant runs them too.
#
# Pages (32 bytes each):
#   0 factory record, write-protected at the factory:
#     0 magic b"SP" | 2 version 2 | 3 needles u8 | 4 rated u32 | 8 expiry u32 |
#     12 made u32 | 16 reserved x14 | 30 CRC-16/CCITT-FALSE of bytes 0..29
#   1 usage, EPROM emulation (a bit only ever goes from 1 to 0):
#     0 first_use u32 (0xFFFFFFFF: never used) | 4 finished (0xFF: not finished) |
#     5 0xFF x27
#   2 the decrement-only counter (17 bits, read-only): 0 counter u32 | 4 0x00 x28.
#     The factory sets it to the rated strokes; the strokes used are rated - counter.
#
# Every page is read with Compute and Read Page Authentication: the chip answers
# HMAC-SHA256(device secret, ROM id | page no | page data | challenge | MANID), a
# fresh 32-byte challenge each time. The device secret is HMAC-SHA256(master key,
# b"scalppen/cartridge" | ROM id), loaded and locked at the factory; the chip never
# gives it out, the pen derives it from the master key it holds (board data
# "cartridge"/"auth_key"). A record copied to another chip, rewritten, or replayed
# fails the MAC; the usage page and the counter only move one way in the chip.
import struct

from pen.crc import crc16
from pen.permit import equal, hmac_sha256

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

PAGE = const(32)
PAGES = const(3)  # factory, usage, counter
P_FACTORY = const(0)
P_USAGE = const(1)
P_COUNTER = const(2)
VERSION = const(2)
COUNTER_MAX = const(0x1FFFF)  # the DS28E50's counter is 17 bits
# Strokes per count: 17 bits hold 131,071 counts, short of the 150,000-stroke default
# rating (rule 14), so one count stands for two strokes (262,142 at most). Strokes
# used are recorded rounded up to the next count: never fewer than were made.
STROKES_PER_COUNT = const(2)
MANID = b"\x00\x00"  # manufacturer id bytes the chip mixes into every MAC
SECRET_PREFIX = b"scalppen/cartridge"
_FACTORY_FMT = "<2sBBIII14sH"
_NEVER = const(0xFFFFFFFF)

# Verdicts of check() (the pen maps them to error codes in pen/wear.py).
OK = const(0)
UNAUTHENTIC = const(1)  # a MAC failed: not a chip the factory keyed, or not its data
INVALID = const(2)  # the factory page is blank, of another format, or corrupt


def device_secret(master, rom):
    return hmac_sha256(master, SECRET_PREFIX + bytes(rom))


def page_mac(secret, rom, page, data, challenge):
    return hmac_sha256(secret, bytes(rom) + bytes((page,)) + bytes(data) + bytes(challenge) + MANID)


def encode_factory(needles, rated, expiry, made):
    body = struct.pack(_FACTORY_FMT, b"SP", VERSION, needles, rated, expiry, made, bytes(14), 0)
    return body[:30] + struct.pack("<H", crc16(body[:30]))


def encode_usage(first_use=0, finished=False):
    head = struct.pack("<IB", first_use if first_use else _NEVER, 0 if finished else 0xFF)
    return head + b"\xff" * 27


def encode_counter(value):
    return struct.pack("<I", value) + bytes(28)


def decode(pages):
    # The record fields of the three pages, or None if the factory page is not a
    # record (blank, another format, corrupt).
    f = pages[P_FACTORY]
    if len(f) != PAGE or crc16(f[:30]) != struct.unpack("<H", f[30:32])[0]:
        return None
    magic, ver, needles, rated, expiry, made, _res, _crc = struct.unpack(_FACTORY_FMT, f)
    if magic != b"SP" or ver != VERSION:
        return None
    first, fin = struct.unpack("<IB", pages[P_USAGE][:5])
    counter = struct.unpack("<I", pages[P_COUNTER][:4])[0]
    left = counter * STROKES_PER_COUNT
    used = rated - left if left < rated else 0
    return {
        "needles": needles,
        "rated": rated,
        "expiry": expiry,
        "made": made,
        "first_use": 0 if first == _NEVER else first,
        "used": used,
        "finished": fin != 0xFF,  # any bit cleared: the one-way flag was set
    }


def check(master, rom, pages, macs, challenges):
    # OK, UNAUTHENTIC or INVALID for pages read with their MACs to the challenges.
    secret = device_secret(master, rom)
    for p in range(PAGES):
        if not equal(macs[p], page_mac(secret, rom, p, pages[p], challenges[p])):
            return UNAUTHENTIC
    return OK if decode(pages) is not None else INVALID


def record(rom, verdict, pages):
    # The dict the core sees (pen/io.py Inputs.cartridge): the fields, "valid" (a
    # readable record) and "auth" (its MACs verified; a record that fails keeps
    # its fields for the log but is never used).
    rec = decode(pages) if pages is not None else None
    if rec is None:
        rec = {"needles": 0, "rated": 0, "expiry": 0, "made": 0, "first_use": 0, "used": 0,
               "finished": False}
    rec["id"] = bytes(rom)
    rec["valid"] = verdict != INVALID and pages is not None and decode(pages) is not None
    rec["auth"] = verdict == OK
    return rec


def crc16_ow(data, crc=0):
    # The 1-Wire CRC-16 (reflected poly 0xA001, init 0) of the authenticator's
    # command and result frames; a frame followed by its inverted CRC leaves 0xB001.
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
