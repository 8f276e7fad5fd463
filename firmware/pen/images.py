# The pen's firmware images as MCUmgr's image group reports them (pen/smp.py): the
# two application slots of boot.py (/a/ and /b/), each with the manifest the build
# wrote (scalppen build). slot 0 is /a/, slot 1 is /b/; "active" is the slot
# running (/active), "confirmed" the slot that last started well (/good, written
# by pen/bootok.py; a slot on trial is active and not confirmed, as under MCUboot).
# No slot is "pending" yet: nothing marks one for the next reset over SMP. The hash is the SHA-256 of the slot's
# manifest, which holds every file's SHA-256: one hash for the whole image.
import hashlib

from pen import bootok

SLOTS = ("a", "b")


_VERSION_KEY = b'\n "version": "'  # a top-level key of the manifest (indent 1)
_CHUNK = 256


def _scan(slot):
    # -> (SHA-256 of the slot's manifest, its version), or None when it has none.
    # Read 256 bytes at a time: a manifest is a few KB, more than a fragmented heap
    # may hold in one piece, and an SMP request must never fail the pen.
    h = hashlib.sha256()
    version = None
    tail = b""
    try:
        with open("/" + slot + "/manifest.json", "rb") as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                if version is None:
                    buf = tail + chunk
                    i = buf.find(_VERSION_KEY)
                    if i < 0:
                        tail = buf[-len(_VERSION_KEY):]
                        continue
                    start = i + len(_VERSION_KEY)
                    j = buf.find(b'"', start)
                    if j < 0:
                        tail = buf[i:] if len(buf) - i < 64 else b""
                        continue
                    version = buf[start:j].decode()[:32]
    except (OSError, UnicodeError):
        return None
    return h.digest(), version or ""


def states():
    active = bootok.active_slot()
    good = bootok.good_slot()
    out = []
    for i in range(len(SLOTS)):
        slot = SLOTS[i]
        got = _scan(slot)
        if got is None:
            continue
        out.append({
            "image": 0, "slot": i, "version": got[1], "hash": got[0], "bootable": True,
            "pending": False,
            "confirmed": slot == good or (not good and slot == active),
            "active": slot == active, "permanent": False,
        })
    return out


class Env:
    # What pen/smp.py asks of the pen.
    def image_states(self):
        return states()
