# The tiny filesystem interface every stored byte goes through, rooted at one
# directory. Tests substitute a FaultyFs (tests/firmware) that loses power at
# any write point. Names are flat (no sub-directories).
import os


class Fs:
    def __init__(self, root):
        self.root = root.rstrip("/") or "/"
        try:
            os.mkdir(self.root)
        except OSError:
            pass

    def path(self, name):
        if self.root == "/":
            return "/" + name
        return self.root + "/" + name

    def open(self, name, mode):
        return open(self.path(name), mode)

    def read(self, name):
        # Whole file as bytes, or None when it does not exist.
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return None
        try:
            return f.read()
        finally:
            f.close()

    def read_at(self, name, offset, size):
        # Up to size bytes from offset (b"" past the end), or None when the file
        # does not exist. Log reads use it so a page costs its own bytes only.
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return None
        try:
            f.seek(offset)
            return f.read(size)
        finally:
            f.close()

    def flush(self, f):
        f.flush()

    def write(self, name, data):
        # Create or replace; not atomic by itself (use write + rename).
        f = open(self.path(name), "wb")
        try:
            f.write(data)
            self.flush(f)
        finally:
            f.close()

    def append(self, name, data):
        f = open(self.path(name), "ab")
        try:
            f.write(data)
            self.flush(f)
        finally:
            f.close()

    def rename(self, old, new):
        # Atomic replace on littlefs and POSIX; where the target must not exist,
        # fall back to remove + rename (the loader then reads the temp file).
        try:
            os.rename(self.path(old), self.path(new))
        except OSError:
            self.remove(new)
            os.rename(self.path(old), self.path(new))

    def remove(self, name):
        try:
            os.remove(self.path(name))
        except OSError:
            pass

    def exists(self, name):
        try:
            os.stat(self.path(name))
            return True
        except OSError:
            return False

    def size(self, name):
        try:
            return os.stat(self.path(name))[6]
        except OSError:
            return -1

    def listdir(self):
        return os.listdir(self.root)
