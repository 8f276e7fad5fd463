# Character OLED (US2066-style, 4 x 20) on I2C: writes only the rows that changed.
from micropython import const

_CTRL_CMD = const(0x80)  # Co=1, D/C=0: one command byte follows
_CTRL_DATA = const(0x40)  # Co=0, D/C=1: the rest is data
_INIT = b"\x00\x2a\x09\x28\x01\x0c"  # RE=1, 4-line mode, RE=0, clear, display on
_OFF = b"\x00\x08"  # display off (D=0): the glass dark, the controller idle


class Display:
    def __init__(self, board, i2c):
        d = board["display"]
        self._i2c = i2c
        self._addr = d["addr"]
        self._cols = d["cols"]
        self._rows = d["rows"]
        self._row_addr = d["row_addr"]
        self._shown = [None] * self._rows  # type: list[str | None]
        self._text = None
        self.errors = 0
        try:
            self._i2c.writeto(self._addr, _INIT)
            self._shown = [""] * self._rows
        except OSError:
            self.errors += 1

    def _row_bytes(self, line):
        out = bytearray(self._cols)
        n = len(line)
        for i in range(self._cols):
            c = ord(line[i]) if i < n else 32
            out[i] = c if 32 <= c < 127 else 63  # '?' for what the font lacks
        return out

    def show(self, text):
        if text == self._text:
            return
        lines = text.split("\n") if text else []
        failed = False
        for r in range(self._rows):
            line = lines[r][: self._cols] if r < len(lines) else ""
            if line == self._shown[r]:
                continue
            buf = bytearray(3 + self._cols)
            buf[0] = _CTRL_CMD
            buf[1] = 0x80 | self._row_addr[r]
            buf[2] = _CTRL_DATA
            buf[3:] = self._row_bytes(line)
            try:
                self._i2c.writeto(self._addr, buf)
                self._shown[r] = line
            except OSError:
                self.errors += 1
                failed = True
        self._text = None if failed else text

    def off(self):
        # Before deep sleep: the glass goes dark (the next boot's init turns it on).
        try:
            self._i2c.writeto(self._addr, _OFF)
        except OSError:
            self.errors += 1
        self._text = None
