"""Faults of the pen's flash and USB link during flashing, planned for the twin.

:class:`FlashFaults` is the plan (``TwinPen.flash_faults``); change its fields while
the twin runs. The twin learns which paths to watch from the bridge: the reply to
its first message (every process start: a power-up, a reset, the soft reset a
deploy begins with) carries the watched path substrings, and any later reply
whose plan changed carries them again. While the twin sits in the REPL it sends no
messages, so a plan made then takes effect at the next process start (``scalppen
flash`` and mpremote start with a soft reset). Writes to watched files ask this
plan, one bridge call per ``write()``; other writes never leave the twin
(``twin/mpy/launch.py``, ``_File``).

Faults (a write is one ``write()`` call on a file open for writing):

- **Corrupted write** (``corrupt_writes``, ``corrupt_path``): the next
  ``corrupt_writes`` writes of at least one byte to files whose absolute path on
  the pen contains ``corrupt_path`` reach the flash with their middle byte
  inverted; the writer sees no error, only a read-back shows it. ``corrupted``
  counts them.
- **Link cut** (``cut_after_bytes``, ``cut_path``): once ``cut_after_bytes`` more
  bytes were written to files whose path contains ``cut_path``, the USB cable is
  pulled: the write that crosses the limit puts only the bytes up to it on the
  flash and raises ``OSError(EIO)`` in the twin (the rest of that exec never
  runs), and the host's end of the serial hangs up (its reads and writes fail;
  ``TwinPen.cut_usb``). The half-written file stays; the pen keeps running, in
  its REPL. ``cut`` tells it happened; ``open_serial()`` afterwards is a new cable.
- **Small flash** (``TwinPen(flash_size=...)``, not part of this plan): the
  littlefs partition's size in bytes. ``os.statvfs`` reports it in 4 KiB blocks,
  and a write (or the creation of a file) that would need more blocks than are
  free raises ``OSError(ENOSPC)`` (28), as littlefs does (``LFS2_ERR_NOSPC``).
  Usage is counted as the statvfs model counts it: one block per directory,
  whole blocks per file, at least one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FlashFaults:
    """Fault plan of the pen's flash writes and its USB link (see the module)."""

    #: upcoming writes to files whose path contains ``corrupt_path`` to corrupt
    corrupt_writes: int = 0
    corrupt_path: str = ""
    #: cut the USB link once this many more bytes went to files matching ``cut_path``
    cut_after_bytes: int | None = None
    cut_path: str = ""
    #: writes corrupted so far
    corrupted: int = 0
    #: the link was cut
    cut: bool = False
    #: pulls the cable (the twin sets it to its ``cut_usb``)
    on_cut: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    _cut_written: int = field(default=0, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "cut_after_bytes":  # a new limit counts from now
            object.__setattr__(self, "_cut_written", 0)
        object.__setattr__(self, name, value)

    def watched(self) -> list[str] | None:
        """The path substrings whose writes the twin must ask about; None: no fault."""
        watch = []
        if self.corrupt_writes > 0:
            watch.append(self.corrupt_path)
        if self.cut_after_bytes is not None:
            watch.append(self.cut_path)
        return watch or None

    def write(self, path: str, n: int) -> list[int]:
        """The twin is about to write ``n`` bytes to ``path``.

        Returns ``[allowed, flip, cut]``: how many bytes reach the flash, the index
        of the byte to invert (-1: none), 1 if the link is cut after them.
        """
        flip = -1
        if self.corrupt_writes > 0 and n > 0 and self.corrupt_path in path:
            self.corrupt_writes -= 1
            self.corrupted += 1
            flip = n // 2
        if self.cut_after_bytes is not None and self.cut_path in path:
            room = self.cut_after_bytes - self._cut_written
            if n >= room:
                self.cut_after_bytes = None
                self.cut = True
                if self.on_cut is not None:
                    self.on_cut()
                return [max(0, room), -1, 1]
            self._cut_written += n
        return [n, flip, 0]
