# In-memory stand-in for pen.fsio.Fs (same interface), for fast property tests.
# MicroPython-compatible: also used inside the VM.


class MemFs:
    def __init__(self, files=None):
        self.files = files if files is not None else {}

    def read(self, name):
        d = self.files.get(name)
        return bytes(d) if d is not None else None

    def read_at(self, name, offset, size):
        d = self.files.get(name)
        return bytes(d[offset:offset + size]) if d is not None else None

    def write(self, name, data):
        self.files[name] = bytearray(data)

    def append(self, name, data):
        if name not in self.files:
            self.files[name] = bytearray()
        self.files[name].extend(data)

    def rename(self, old, new):
        self.files[new] = self.files.pop(old)

    def remove(self, name):
        self.files.pop(name, None)

    def exists(self, name):
        return name in self.files

    def size(self, name):
        d = self.files.get(name)
        return -1 if d is None else len(d)

    def listdir(self):
        return list(self.files.keys())

    def flush(self, f):
        pass
