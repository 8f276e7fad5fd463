"""The write-point scenario of test_write_points.py.

- RecordingFs: a FaultyFs that records every write point (write, append, rename,
  remove) with the firmware call site that decided it (call_site()).
- Ledger / LedgerStore: what the firmware acknowledged before a power cut: log
  appends that returned (seq -> bytes), the last completed counters commit and
  the one in progress, permits whose ARM was ACKed, cartridges.
- scenario(): one deterministic run through everything that writes: boot,
  SET_KEY, SET_TIME, refusals of every request, ARM (nonce), START, running
  (session warning, 30 s checkpoint, deeper setting, link loss, resume), STOP,
  cartridge swap, a fault stop, a reset mid-session, a standalone session from
  the button, log rotation (6-record segments) and a boot that recovers the
  leftovers of an earlier crash (torn tail, stale seg.tmp, one segment too many).
  The firmware keeps no bonds or secrets other than the permit key (no
  GET/SET_SECRET in the protocol), so SET_KEY is the only key write.
"""

import json
import os
import re
import sys
from pathlib import Path

from faultyfs import FaultyFs, PowerLoss
from pen import wire
from pen.core import Pen
from pen.handler import Handler
from pen.store import Store, pack_record
from plant import cartridge
from rig import Rig, make_board, signed_ack, signed_time

FIRMWARE = str(Path(__file__).resolve().parents[2] / "firmware" / "pen") + os.sep
SEG_RECORDS = 6
MAX_SEGMENTS = 3
OTHER_KEY = bytes(range(101, 133))
DAY_S = 86400

# Storage helpers: a write they make is put down to the firmware function that
# called them (the one that decided to write).
HELPERS = {"store.Store.append", "store.Store.commit", "core.Pen._log", "core.Pen._commit",
           "core.Pen._refuse", "core.Pen._checkpoint", "core.Pen._persist_session",
           "core.Pen._refusal", "core.Pen._clock_moved"}
DELEGATED = {("store.Store.append", "append"), ("store.Store.commit", "write"),
             ("store.Store.commit", "rename")}


def board():
    return make_board(session_warn_s=5, session_cap_s=120,
                      standalone={"enabled": True, "depth_um": 500, "duration_s": 600})


def pattern(name):
    return re.sub(r"^log\d{8}\.bin$", "log*.bin", name)


def _pen_frames():
    names = []
    f = sys._getframe(2)
    while f is not None:
        path = f.f_code.co_filename
        if path.startswith(FIRMWARE) and not path.endswith("fsio.py"):
            names.append(Path(path).stem + "." + f.f_code.co_qualname)
        f = f.f_back
    return names


def call_site(op):
    """The firmware function that decided this write (module.Class.function)."""
    frames = _pen_frames()
    writer = frames[0]
    if (writer, op) in DELEGATED:
        for name in frames[1:]:
            if name not in HELPERS:
                return name
    return writer


class RecordingFs(FaultyFs):
    """A FaultyFs that records (call site, op, file pattern) at each write point."""

    def __init__(self, root, fail_at=0, torn=0):
        FaultyFs.__init__(self, root, fail_at, torn)
        self.log = []

    def _rec(self, op, name):
        if not self.dead:
            self.log.append((call_site(op), op, name))

    def write(self, name, data):
        self._rec("write", pattern(name))
        FaultyFs.write(self, name, data)

    def append(self, name, data):
        self._rec("append", pattern(name))
        FaultyFs.append(self, name, data)

    def rename(self, old, new):
        self._rec("rename", pattern(old) + ">" + pattern(new))
        FaultyFs.rename(self, old, new)

    def remove(self, name):
        self._rec("remove", pattern(name))
        FaultyFs.remove(self, name)


def _copy(c):
    return json.loads(json.dumps(c))


class Ledger:
    def __init__(self):
        self.acked = {}  # seq -> 22 bytes, for every append that returned
        self.committed = None  # counters of the last completed commit (None: defaults)
        self.pending = None  # counters of a commit in progress
        self.permits = []  # permits whose ARM was acknowledged
        self.carts = {}  # cartridge id hex -> its EEPROM record (the plant's dict)
        self.rig = None
        self.clock = 0  # the pen's clock at the last tick


class LedgerStore(Store):
    def __init__(self, fs, ledger):
        self.ledger = ledger
        Store.__init__(self, fs, seg_records=SEG_RECORDS, max_segments=MAX_SEGMENTS)
        if ledger.committed is None:
            ledger.committed = _copy(self.c)

    def append(self, kind, time=0, code=0, depth_um=0, a=0, b=0, flags=0, reserve=0):
        seq = Store.append(self, kind, time, code, depth_um, a, b, flags, reserve)
        self.ledger.acked[seq] = pack_record(seq, time, kind, flags, code, depth_um, a, b)
        return seq

    def commit(self):
        if self.c["seq"] < self.next_seq:
            self.c["seq"] = self.next_seq
        self.ledger.pending = _copy(self.c)
        Store.commit(self)
        self.ledger.committed = self.ledger.pending
        self.ledger.pending = None


class ScenarioRig(Rig):
    """The shared Rig over a LedgerStore; stops at the tick the power dies in."""

    def __init__(self, fs, ledger):
        self.ledger = ledger
        ledger.rig = self
        Rig.__init__(self, fs, board=board())

    def boot(self, reset_code=0):
        self.store = LedgerStore(self.fs, self.ledger)
        self.pen = Pen(self.board, self.store, 0, reset_code)
        self.h = Handler(self.pen)
        self.h.hello = True

    def tick(self):
        out = Rig.tick(self)
        self.ledger.clock = self.pen.clock() or self.ledger.clock
        if self.fs.dead:  # the core failed safe on the PowerLoss: the power is off
            raise PowerLoss("in a tick")
        return out

    def arm_ok(self, **kw):
        p = self.permit(**kw)
        assert self.code(wire.T_ARM, p) == 0
        self.ledger.permits.append(p)
        return p

    def new_cart(self, n):
        rec = cartridge(cid=b"\x2d\x0c" + bytes([n]) * 6)
        self.ledger.carts[rec["id"].hex()] = rec
        self.plant.inp.cartridge = None
        self.run(50)
        self.plant.inp.cartridge = rec
        self.run(50)

    def later(self, days=8):
        # days pass with the pen on (rule 6 runs on its running time too)
        self.idle(days * DAY_S, step_s=3600)
        # the host synced the log meanwhile, and says so
        assert self.code(wire.T_LOG_ACK, signed_ack(self.store.last_seq())) == 0

    def press(self, ms=100):
        self.plant.inp.button = True
        self.run(ms)
        self.plant.inp.button = False
        self.run(100)


def _refusals(r):
    assert r.code(wire.T_SET_KEY, {"key": OTHER_KEY}, auth=False) == wire.E_NOT_AUTHORIZED
    forged = r.permit()
    forged["tag"] = bytes(32)
    assert r.code(wire.T_ARM, forged) == wire.E_PERMIT_BAD_TAG
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 600}) == wire.E_DEPTH_OFF_GRID
    assert r.code(wire.T_SET_SPEED, {"level": 9}) == wire.E_SPEED_OUT_OF_RANGE
    assert r.code(wire.T_START) == wire.E_NOT_ARMED
    assert r.code(wire.T_START) == wire.E_NOT_ARMED  # a repeat: counted, written later
    r.arm_ok(depth=500, duration=60)
    r.plant.inp.link_epoch += 1  # the link that armed it changed: disarmed
    r.run(20)
    assert r.pen.state == wire.S_IDLE


def _session_with_everything(r):
    r.arm_ok(depth=1000, duration=100)
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    assert r.code(wire.T_SET_SPEED, {"level": 0}) == 0
    assert r.code(wire.T_START) == 0
    r.run(6000)  # session warning at 5 s
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 750}) == 0  # deeper: persisted at once
    r.run(31000)  # the 30 s checkpoint
    r.plant.inp.link_up = False
    r.run(100)
    r.plant.inp.link_up = True
    assert r.pen.state == wire.S_PAUSED and r.code(wire.T_START) == 0  # resume
    r.run(1000)
    assert r.end_session() == 0
    r.run(200)


def _fault_session(r):
    r.new_cart(2)
    r.later()
    r.arm_ok(depth=500, duration=60)
    assert r.code(wire.T_START) == 0
    r.run(1000)
    r.plant.stall = True
    r.run(100)
    assert r.pen.state == wire.S_FAULT
    r.plant.stall = False
    r.run(2000)


def _reset_mid_session(r):
    r.new_cart(3)
    r.later()
    r.arm_ok(depth=500, duration=60)
    assert r.code(wire.T_START) == 0
    r.run(1000)
    clock = r.pen.clock()
    r.boot(wire.E_FAULT_WATCHDOG)
    assert r.code(wire.T_SET_TIME, signed_time(clock + 1)) == 0
    r.run(1500)


def _standalone_session(r):
    r.new_cart(4)
    r.later()
    r.press()  # short press in IDLE: the board's standalone session
    assert r.pen.state == wire.S_RUNNING
    r.run(1000)
    r.press()  # a press stops at once
    r.run(200)


def _crash_leftovers(root, store):
    # What an earlier power loss can leave: a torn tail, a stale temp file, and a
    # segment the rotation had not removed yet.
    newest = os.path.join(root, f"log{store.segs[-1]:08d}.bin")
    with open(newest, "ab") as f:
        f.write(b"\x07\x00\x00\x00\x00")
    with open(os.path.join(root, "seg.tmp"), "wb") as f:
        f.write(b"stale")
    open(os.path.join(root, "log00000001.bin"), "wb").close()


def _reboot_over_leftovers(r):
    clock = r.pen.clock()
    _crash_leftovers(r.fs.root, r.store)
    r.boot()
    assert r.store.recovered == 5
    assert r.code(wire.T_SET_TIME, signed_time(clock + 1)) == 0
    r.run(1500)


def scenario(fs, ledger):
    """Everything that writes, in order. Raises PowerLoss where the power dies."""
    r = ScenarioRig(fs, ledger)  # boot, SET_KEY, SET_TIME, homing, cartridge seen
    ledger.carts[r.plant.inp.cartridge["id"].hex()] = r.plant.inp.cartridge
    _refusals(r)
    _session_with_everything(r)
    _fault_session(r)
    _reset_mid_session(r)
    _standalone_session(r)
    _reboot_over_leftovers(r)
    return r
