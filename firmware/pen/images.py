# The pen's firmware images as MCUmgr's image group reports them (pen/smp.py): the
# two application slots of boot.py (/a/ and /b/), each with the manifest the build
# wrote (scalppen build). slot 0 is /a/, slot 1 is /b/; "active" is the slot
# running (/active), "confirmed" the slot that last started well (/good, written
# by pen/bootok.py; a slot on trial is active and not confirmed, as under MCUboot).
# A tested slot is active at once (its trial starts at the next reset), so none is
# "pending". The hash is the SHA-256 of the slot's manifest, which holds every
# file's SHA-256: one hash for the whole image.
import gc
import hashlib

from pen import bootok, smp

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


def inactive_slot():
    # The slot an upload fills: the one not running ("" when none is known).
    active = bootok.active_slot()
    if active not in SLOTS:
        return ""
    return SLOTS[1 - SLOTS.index(active)]


class Env:
    # What pen/smp.py asks of the pen. busy(): a session is armed, running or
    # paused (no update then: needles never move during one, and nothing of a
    # session is put at risk by a reset).
    def __init__(self, root="/", release_key=b"", busy=None, poll=None,
                 allow_downgrade=False):
        self.root = root
        self.allow_downgrade = allow_downgrade  # pen/board.py: development builds only
        self.key = release_key
        self.busy = busy or (lambda: False)
        self.poll = poll  # long work calls it (the pen feeds its watchdog)
        self.up = None  # the upload under way (pen/update.py)
        self.failure = None  # the last exception a request met (pen/smp.py answer)
        self.reset_asked = False  # an SMP reset was answered: the app resets

    def image_states(self):
        return states()

    def _slot_of(self, digest):
        # The slot whose manifest has SHA-256 `digest` ("" when none); the slot not
        # running first (both hold it after the same build was uploaded again).
        inactive = inactive_slot()
        for slot in (inactive, bootok.active_slot()):
            got = _scan(slot) if slot in SLOTS else None
            if got is not None and got[0] == digest:
                return slot
        return ""

    def set_state(self, body):
        # SMP image state write (group 1, command 0): "test" (confirm false) a slot by
        # its hash: it boots on trial from the next reset and rolls back unless it
        # marks itself good (pen/bootok.py, boot.py); "confirm" (confirm true, with
        # the running slot's hash or none): the running slot is kept.
        # -> the image states after, or an rc.
        if self.busy():
            return smp.EBUSY
        digest = body.get("hash")
        confirm = body.get("confirm", False) is True
        if digest is not None and (not isinstance(digest, bytes) or len(digest) != 32):
            return smp.EINVAL
        active = bootok.active_slot()
        if confirm:
            if digest is not None and self._slot_of(digest) != active:
                return smp.EBADSTATE  # only the running slot is confirmed
            bootok.mark_good()
            return {"images": states()}
        if digest is None:
            return smp.EINVAL
        slot = self._slot_of(digest)
        if not slot:
            return smp.ENOENT  # no slot has that image
        if slot != active:
            if self.up is not None and self.up.slot == slot and not self.up.done:
                return smp.EBADSTATE  # an upload into it is under way
            from pen.version import VERSION

            got = _scan(slot)
            bootok.set_active(slot, (got[1] if got else "") or "?", VERSION)
        return {"images": states()}

    def erase(self):
        # SMP image erase (group 1, command 5): empty the slot not running.
        from pen import update

        if self.busy():
            return smp.EBUSY
        slot = inactive_slot()
        if not slot or slot == bootok.good_slot():
            return smp.EBADSTATE  # never the slot a trial would roll back to
        if self.up is not None:
            self.up.abort()
            self.up = None
        else:
            update.rmtree(self.root.rstrip("/") + "/" + slot)
        return {}

    def reset(self):
        # SMP OS reset (group 0, command 5): answered, then the pen resets
        # (pen/app.py, a tick later). Refused while a session is armed or open.
        if self.busy():
            return smp.EBUSY
        self.reset_asked = True
        return {}

    def upload(self, body):
        # SMP image upload (group 1, command 1). -> the answer's map, or an rc.
        from pen import update
        from pen.version import VERSION

        off = body.get("off")
        data = body.get("data")
        if not isinstance(off, int) or not isinstance(data, bytes) or body.get("image", 0) != 0:
            return smp.EINVAL
        if self.busy():
            return smp.EBUSY  # a session is armed, running or paused
        if bootok.on_trial():
            return smp.EBADSTATE  # confirm the running build (or let it roll back) first
        slot = inactive_slot()
        if not slot:
            return smp.EBADSTATE
        try:
            if off == 0 and "len" in body:
                total = body["len"]
                sha = body.get("sha")
                if not isinstance(total, int) or (sha is not None and not isinstance(sha, bytes)):
                    return smp.EINVAL
                if self.up is None or self.up.slot != slot:
                    self.up = update.Upload(self.root, slot, self.key, VERSION, self.poll,
                                            self.allow_downgrade)
                if not self.up.same(total, sha):
                    self.up.begin(total, sha)
            elif self.up is None:
                return smp.EBADSTATE
            nxt = self.up.write(off, data)
        except update.UploadError as e:
            self.last_error = e.why
            return e.rc
        finally:
            gc.collect()  # each chunk's garbage at once: the heap stays in one piece
        rsp = {"off": nxt}
        if self.up.done:
            rsp["match"] = self.up.match()
        return rsp
