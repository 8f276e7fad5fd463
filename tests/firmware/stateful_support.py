"""Helpers for test_stateful_safety.py.

- RecordingStore / StatefulRig: the firmware Store and the shared Rig, with every
  acknowledged log append (Store.append returned) recorded, and small log
  segments so rotation happens within a few dozen steps.
- committed(): the counters record as a fresh boot would load it from flash.
- Counter snapshots and the "never goes backwards" comparison.
- The model's own copy of the rule 6 interval table, written from
  SAFETY_RULES.md and not imported from pen.safety (the model must not share the
  firmware's mistakes).
"""

from types import SimpleNamespace

from pen.core import Pen
from pen.handler import Handler
from pen.store import Store
from rig import Rig

DAY_S = 86400
SEG_RECORDS = 16
MAX_SEGMENTS = 3
N_HP = 4  # hp[0..3]: strokes, punctures, sessions, run_s (monotone); hp[4]: first session


def interval_s(depth_um):
    """Rule 6: minimum time after a session of this depth before the next one."""
    if depth_um >= 1000:
        return 7 * DAY_S
    if depth_um >= 500:
        return 3 * DAY_S
    return DAY_S


class RecordingStore(Store):
    """A Store that adds the seq of every acknowledged append to `acked`."""

    def __init__(self, fs, acked, **kw):
        self.acked = acked
        Store.__init__(self, fs, **kw)

    def append(self, *args, **kw):
        seq = Store.append(self, *args, **kw)
        self.acked.add(seq)
        return seq


class StatefulRig(Rig):
    """The shared Rig over a RecordingStore with small segments."""

    def __init__(self, fs, acked, **kw):
        self.acked = acked
        Rig.__init__(self, fs, **kw)

    def boot(self, reset_code=0, rtc=0):
        self.store = RecordingStore(self.fs, self.acked, seg_records=SEG_RECORDS,
                                    max_segments=MAX_SEGMENTS)
        self.pen = Pen(self.board, self.store, rtc, reset_code)
        self.h = Handler(self.pen)
        self.h.hello = True


def committed(fs):
    """The counters a boot would load now (state.dat, else state.tmp, else defaults)."""
    return Store._load_counters(SimpleNamespace(fs=fs))


def snapshot(c):
    """The monotone part of a counters record."""
    carts = {h: (rec[0], rec[1]) for h, rec in c["carts"].items()}
    return {"hp": list(c["hp"]), "nfloor": c["nfloor"], "seq": c["seq"], "carts": carts,
            "nonces": {n[0] for n in c["nonces"]}}


def assert_not_behind(new, old, where):
    """Every counter of `new` is at or ahead of `old`; flags never lose a bit."""
    for i in range(N_HP):
        assert new["hp"][i] >= old["hp"][i], f"{where}: hp[{i}] went back {old['hp']} -> {new['hp']}"
    if old["hp"][N_HP]:
        assert new["hp"][N_HP] == old["hp"][N_HP], f"{where}: first-session time changed"
    assert new["nfloor"] >= old["nfloor"], f"{where}: nonce floor went back"
    assert new["seq"] >= old["seq"], f"{where}: log seq floor went back"
    for h, (used, flags) in old["carts"].items():
        if h in new["carts"]:
            nu, nf = new["carts"][h]
            assert nu >= used, f"{where}: cartridge {h} used count went back {used} -> {nu}"
            assert nf & flags == flags, f"{where}: cartridge {h} lost flags {flags:#x} -> {nf:#x}"
    # a nonce leaves the list only when the floor covers it (bounded list)
    gone = old["nonces"] - new["nonces"]
    assert not gone or new["nfloor"] > 0, f"{where}: used nonces forgotten {sorted(gone)}"
