# A pen.fsio.Fs that loses power at the Nth write point (write, append, rename,
# remove), optionally after writing only part of the data (a torn write).
# MicroPython-compatible: also used inside the VM.
from pen.fsio import Fs


class PowerLoss(Exception):
    pass


class FaultyFs(Fs):
    # fail_at: 1-based index of the write point that loses power (0 = never);
    # torn: how many bytes of a failing write/append still reach the file
    # (-1 = half of them).
    def __init__(self, root, fail_at=0, torn=0):
        Fs.__init__(self, root)
        self.fail_at = fail_at
        self.torn = torn
        self.points = 0
        self.dead = False

    def _point(self):
        if self.dead:
            raise PowerLoss("already off")
        self.points += 1
        return self.fail_at and self.points == self.fail_at

    def _partial(self, data):
        n = len(data) // 2 if self.torn < 0 else self.torn
        return data[:min(n, len(data))]

    def write(self, name, data):
        if self._point():
            self.dead = True
            Fs.write(self, name, self._partial(data))
            raise PowerLoss("write " + name)
        Fs.write(self, name, data)

    def append(self, name, data):
        if self._point():
            self.dead = True
            part = self._partial(data)
            if part:
                Fs.append(self, name, part)
            raise PowerLoss("append " + name)
        Fs.append(self, name, data)

    def rename(self, old, new):
        if self._point():
            self.dead = True
            raise PowerLoss("rename " + old)
        Fs.rename(self, old, new)

    def remove(self, name):
        if self._point():
            self.dead = True
            raise PowerLoss("remove " + name)
        Fs.remove(self, name)
