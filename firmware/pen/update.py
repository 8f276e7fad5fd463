# A signed firmware image uploaded over SMP into the inactive application slot
# (docs/updates.md; the format: scalppen_protocol/image.py).
#
# The image streams in by offset: its header, its index (every file with its size
# and SHA-256), then the files. The pen checks the Ed25519 signature once, over
# SHA-256 of the header and the index, with the release public key its board.json
# holds; refuses another key, an older version than the one running (rollback),
# and paths outside the slot; writes each file into the inactive slot as it lands
# and checks its SHA-256 at its end; and at the last byte the SHA-256 of the whole
# image the first chunk announced. The slot's manifest.json is the image's last
# file, so a slot with a cut upload never looks bootable (boot.py). An upload cut
# anywhere goes on from the offset the pen reports (in RAM: a reset starts over).
#
# Policy of when an upload may run (no session armed, running or paused; the
# running slot confirmed) is the caller's: pen/app.py asks busy() first.
import gc
import hashlib
import os
import struct

from pen import ed25519
from pen.smp import EACCESSDENIED, EBADSTATE, ECORRUPT, EINVAL, EMSGSIZE  # MGMT_ERR_* codes

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

MAGIC = b"SPIMG\x00"
SIGN_PREFIX = b"scalppen/image\x00"
SIGNED_FMT = "<6sBBBBHHII"  # magic, format, flags, major, minor, patch, count, index_len, total
SIGNED_SIZE = const(22)
HEADER_SIZE = const(94)  # + key id (8) + signature (64)
MAX_IMAGE = const(1048576)
MAX_FILES = const(96)
MAX_INDEX = const(8192)
MANIFEST = "manifest.json"



class UploadError(Exception):
    def __init__(self, rc, why):
        super().__init__(why)  # (MicroPython has no Exception.__init__ to call by name)
        self.rc = rc
        self.why = why


def version_tuple(text):
    # "1.2.3" -> (1, 2, 3); anything else -> (0, 0, 0)
    parts = str(text).split(".")
    try:
        return (int(parts[0]), int(parts[1]), int(parts[2].split("-")[0]))
    except (ValueError, IndexError):
        return (0, 0, 0)


def _safe_path(path):
    if not path or path[0] == "/" or "\\" in path or len(path) > 64:
        return False
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return False
    return True


def rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        child = path + "/" + name
        if _isdir(child):
            rmtree(child)
        else:
            os.remove(child)
    os.rmdir(path)


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


class Upload:
    def __init__(self, root, slot, release_key, running_version, poll=None,
                 allow_downgrade=False):
        self.root = root.rstrip("/")
        self.allow_downgrade = allow_downgrade  # a development build's test override
        self.slot = slot  # "a" or "b": the inactive one
        self.key = release_key
        self.running = version_tuple(running_version)
        self.poll = poll  # called during the signature check (the pen feeds its watchdog)
        self.total = 0
        self.sha = b""
        self.off = 0
        self.done = False
        self.version = ""
        self._all = None
        self._buf = bytearray()  # header and index until they are whole
        self._got = 0  # bytes of _buf filled
        self._files = None  # [(path, size, sha256)] once the index is verified
        self._i = 0  # the file being written
        self._left = 0
        self._f = None
        self._h = None

    def _path(self, rel):
        return self.root + "/" + self.slot + "/" + rel

    def begin(self, total, sha):
        if not 0 < total <= MAX_IMAGE:
            raise UploadError(EMSGSIZE, "image length")
        if sha is not None and len(sha) != 32:
            raise UploadError(EINVAL, "sha")
        self.close()
        self.total = total
        self.sha = sha or b""
        self.off = 0
        self.done = False
        self._all = hashlib.sha256()
        self._buf = bytearray(HEADER_SIZE)
        self._got = 0
        self._files = None
        self._i = 0

    def same(self, total, sha):
        # A first chunk of the image already under way: the upload resumes.
        return self._all is not None and total == self.total and sha == self.sha and not self.done

    def write(self, off, data):
        # -> the next offset the pen wants (off of the next chunk).
        if self._all is None or self.done:
            raise UploadError(EBADSTATE, "no upload under way")
        if off != self.off:
            return self.off  # resend from here
        if len(data) > self.total - self.off:
            raise UploadError(EINVAL, "past the image's length")
        try:
            self._take(data)
        except UploadError:
            self.abort()
            raise
        except OSError:
            self.abort()
            raise UploadError(ECORRUPT, "flash write failed")
        self.off += len(data)
        self._all.update(data)
        if self.off == self.total:
            if self._files is None or self._i < len(self._files):
                self.abort()
                raise UploadError(ECORRUPT, "image shorter than its index")
            self.done = True
        return self.off

    def match(self):
        # Whether the whole image's SHA-256 is the one the first chunk announced.
        return bool(self.sha) and self._all is not None and self._all.digest() == self.sha

    # ---- the stream ----------------------------------------------------------------
    def _take(self, data):
        data = memoryview(data)  # slices without copies: the heap is small
        i = 0
        n = len(data)
        while i < n:
            if self._files is None:
                # header, then index, into one buffer made at its final size (no
                # growing and copying on a small heap)
                k = min(len(self._buf) - self._got, n - i)
                self._buf[self._got:self._got + k] = data[i:i + k]
                self._got += k
                i += k
                if self._got == HEADER_SIZE and len(self._buf) == HEADER_SIZE:
                    self._check_header()
                    head = self._buf
                    self._buf = bytearray(HEADER_SIZE + self._index_len(head))
                    self._buf[:HEADER_SIZE] = head
                elif self._got == len(self._buf) > HEADER_SIZE:
                    self._open_index()
                continue
            if self._i >= len(self._files):
                raise UploadError(ECORRUPT, "image longer than its index")
            if self._f is None:
                self._start_file()
            f = self._f
            h = self._h
            assert f is not None and h is not None
            k = min(self._left, n - i)
            chunk = data[i:i + k]
            f.write(chunk)
            h.update(chunk)
            self._left -= k
            i += k
            if self._left == 0:
                self._end_file()

    @staticmethod
    def _index_len(head):
        return struct.unpack_from("<I", head, 14)[0]

    def _check_header(self):
        magic, fmt, _flags, _ma, _mi, _pa, count, index_len, total = struct.unpack(
            SIGNED_FMT, bytes(self._buf[:SIGNED_SIZE]))
        if magic != MAGIC or fmt != 1:
            raise UploadError(EINVAL, "not a scalppen image")
        if total != self.total:
            raise UploadError(EINVAL, "length differs from the image's own")
        if not 0 < count <= MAX_FILES or not 0 < index_len <= MAX_INDEX:
            raise UploadError(EINVAL, "index size")
        if HEADER_SIZE + index_len > total:
            raise UploadError(EINVAL, "index past the end")
        if not self.key:
            raise UploadError(EACCESSDENIED, "no release key on this pen")
        if bytes(self._buf[SIGNED_SIZE:SIGNED_SIZE + 8]) != hashlib.sha256(self.key).digest()[:8]:
            raise UploadError(EACCESSDENIED, "signed with another key")

    def _open_index(self):
        buf = self._buf
        mv = memoryview(buf)
        h = hashlib.sha256(mv[:SIGNED_SIZE])
        h.update(mv[HEADER_SIZE:])
        sig = bytes(mv[SIGNED_SIZE + 8:HEADER_SIZE])
        if not ed25519.verify(self.key, SIGN_PREFIX + h.digest(), sig, self.poll):
            raise UploadError(EACCESSDENIED, "bad signature")
        gc.collect()  # the verification's big-number garbage, before the long-lived list
        _m, _f, _fl, major, minor, patch, count, index_len, total = struct.unpack_from(
            SIGNED_FMT, buf, 0)
        if (major, minor, patch) < self.running and not self.allow_downgrade:
            raise UploadError(EBADSTATE, "older than the running version")
        files = []
        j = HEADER_SIZE
        end = HEADER_SIZE + index_len
        size_sum = 0
        for _ in range(count):
            if j >= end:
                raise UploadError(EINVAL, "index")
            ln = buf[j]
            if j + 1 + ln + 36 > end:
                raise UploadError(EINVAL, "index")
            try:
                path = bytes(mv[j + 1:j + 1 + ln]).decode()
            except UnicodeError:
                raise UploadError(EINVAL, "index path")
            size = struct.unpack_from("<I", buf, j + 1 + ln)[0]
            digest = bytes(mv[j + 5 + ln:j + 37 + ln])
            j += 37 + ln
            if not _safe_path(path):
                raise UploadError(EINVAL, "path outside the slot")
            files.append((path, size, digest))
            size_sum += size
        if j != end or HEADER_SIZE + index_len + size_sum != total:
            raise UploadError(EINVAL, "index does not add up")
        if not files or files[-1][0] != MANIFEST:
            raise UploadError(EINVAL, "the manifest must come last")
        self.version = "%d.%d.%d" % (major, minor, patch)
        del mv
        self._buf = bytearray()
        # the inactive slot is emptied: nothing of it stays bootable while it fills
        rmtree(self.root + "/" + self.slot)
        os.mkdir(self.root + "/" + self.slot)
        self._files = files
        self._i = 0
        while self._files is not None and self._i < len(files) and files[self._i][1] == 0:
            self._start_file()
            self._end_file()

    def _start_file(self):
        files = self._files
        assert files is not None
        path, size, _digest = files[self._i]
        parts = path.split("/")
        d = self.root + "/" + self.slot
        for p in parts[:-1]:
            d += "/" + p
            if not _isdir(d):
                os.mkdir(d)
        self._f = open(self._path(path) + ".part", "wb")
        self._h = hashlib.sha256()
        self._left = size

    def _end_file(self):
        files = self._files
        f = self._f
        h = self._h
        assert files is not None and f is not None and h is not None
        path, _size, digest = files[self._i]
        f.close()
        self._f = None
        if h.digest() != digest:
            raise UploadError(ECORRUPT, "file " + path + " differs from its index")
        os.rename(self._path(path) + ".part", self._path(path))
        self._i += 1

    def close(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None

    def abort(self):
        # A failed upload leaves the inactive slot empty and not bootable.
        self.close()
        self._all = None
        self._files = None
        self._buf = bytearray()
        try:
            rmtree(self.root + "/" + self.slot)
        except OSError:
            pass
