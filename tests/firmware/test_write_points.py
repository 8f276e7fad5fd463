"""Every storage write point of the firmware, enumerated and cut.

A RecordingFs (writepoints_scenario.py) records each write / append / rename /
remove with the firmware function that decided it. WRITE_POINTS documents that
set; a write point added to the firmware fails test_observed_write_points_are_
exactly_the_documented_ones (and the static scan) until it is documented here.

Then the power is cut at EVERY write point of the scenario (every index, and
for writes and appends also torn: 0 bytes, 1 byte, half), a fresh Store + Pen
boots over the same files and the test checks: the pen comes up safe (homing,
motor off, needles retracted, nothing resumes without a new permit and START),
every acknowledged log record is there with identical bytes, the counters are
the last committed record or the one being written (never behind), sequence
numbers are never handed out again, a permit whose ARM was ACKed cannot be
replayed, and a cartridge marked used stays refused.
"""

import ast
import contextlib
import json
from pathlib import Path

import pytest
from faultyfs import PowerLoss
from memfs import MemFs
from pen import wire
from pen.core import Pen
from pen.fsio import Fs
from pen.handler import Handler
from pen.store import Store
from pen.wear import F_USED
from rig import KEY, T0, Rig, signed_time
from stateful_support import assert_not_behind, snapshot
from writepoints_scenario import (
    DELEGATED,
    HELPERS,
    MAX_SEGMENTS,
    SEG_RECORDS,
    Ledger,
    RecordingFs,
    scenario,
)

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "pen"
COMMIT = "counters record (temp file, then rename over state.dat)"

# (call site, op, file) -> what the write protects. The call site is the firmware
# function that decided the write (store/core helpers are looked through).
WRITE_POINTS = {
    ("core.Pen.__init__", "append", "log*.bin"): "BOOT record: every start and its reset cause",
    ("core.Pen._close_interrupted", "write", "state.tmp"):
        "session cut by a reset closed at boot: last end and depth (rule 6), cartridge finished (rule 13)",
    ("core.Pen._close_interrupted", "rename", "state.tmp>state.dat"): "commits the record above",
    ("core.Pen._close_interrupted", "append", "log*.bin"): "SESSION_END record flagged interrupted",
    ("core.Pen.set_time", "write", "state.tmp"):
        "the SET_TIME's nonce, spent before the clock moves (no replay)",
    ("core.Pen.set_time", "rename", "state.tmp>state.dat"): "commits the spent nonce",
    ("core.Pen.set_time", "append", "log*.bin"): "TIME_SET record (old and new clock), or the refusal",
    ("core.Pen.log_ack", "write", "state.tmp"):
        "the host's acknowledged log floor: only records at or below it may be overwritten",
    ("core.Pen.log_ack", "rename", "state.tmp>state.dat"): "commits the floor",
    ("core.Pen._count_lock", "write", "state.tmp"):
        "rule 6 by running time: the interval still to serve, every 5 min and when it ends",
    ("core.Pen._count_lock", "rename", "state.tmp>state.dat"): "commits the interval still to serve",
    ("core.Pen.set_key", "write", "state.tmp"): "the permit key (rule 20)",
    ("core.Pen.set_key", "rename", "state.tmp>state.dat"): "commits the key",
    ("core.Pen.set_key", "append", "log*.bin"): "KEY_SET record, or the refused SET_KEY",
    ("core.Pen.arm", "write", "state.tmp"): "the permit's nonce, spent before the ACK (rule 20: no replay)",
    ("core.Pen.arm", "rename", "state.tmp>state.dat"): "commits the spent nonce before the ACK",
    ("core.Pen.arm", "append", "log*.bin"): "ARMED record, or PERMIT_REFUSED with the reason",
    ("core.Pen.set_depth", "write", "state.tmp"):
        "a deeper setting while running: the session's depth for the interval after a reset (rule 6)",
    ("core.Pen.set_depth", "rename", "state.tmp>state.dat"): "commits the session's depth",
    ("core.Pen.set_depth", "append", "log*.bin"): "refused SET_DEPTH record (rules 1, 2, 20)",
    ("core.Pen.set_speed", "append", "log*.bin"): "refused SET_SPEED record (rule 8)",
    ("core.Pen.start", "write", "state.tmp"):
        "session opened (start, depth, cartridge used, handpiece sessions: rules 6, 13) "
        "or resumed (checkpoint: last needling time and depth)",
    ("core.Pen.start", "rename", "state.tmp>state.dat"): "commits the open session before needling",
    ("core.Pen.start", "append", "log*.bin"): "SESSION_START record, or START_REFUSED with the reason",
    ("core.Pen._run", "write", "state.tmp"):
        "30 s checkpoint: strokes, needling time, last needling time, cartridge wear (rules 6, 14)",
    ("core.Pen._run", "rename", "state.tmp>state.dat"): "commits the checkpoint",
    ("core.Pen._run", "append", "log*.bin"): "SESSION_WARN (rule 5) and LINK_LOST (rule 21) records",
    ("core.Pen.stop", "write", "state.tmp"):
        "a STOP in the first 30 s: the paused session's checkpoint (resumable)",
    ("core.Pen.stop", "rename", "state.tmp>state.dat"): "commits the paused session",
    ("core.Pen.stop", "append", "log*.bin"): "SESSION_STOPPED record (needling ms, strokes)",
    ("core.Pen._end_session", "write", "state.tmp"):
        "session closed: last end and depth (rule 6), cartridge finished (rule 13), wear (rule 14)",
    ("core.Pen._end_session", "rename", "state.tmp>state.dat"): "commits the closed session",
    ("core.Pen._end_session", "append", "log*.bin"): "SESSION_END record with the stop reason",
    ("core.Pen._enter_fault", "append", "log*.bin"): "FAULT record (rules 3, 8, 9, 11, 21)",
    ("core.Pen._cartridge", "write", "state.tmp"):
        "cartridge in or out: the current cartridge, removed-after-use flag (rule 13)",
    ("core.Pen._cartridge", "rename", "state.tmp>state.dat"): "commits the cartridge change",
    ("core.Pen._cartridge", "append", "log*.bin"): "CARTRIDGE_IN / CARTRIDGE_OUT records",
    ("core.Pen._short_press", "append", "log*.bin"): "ARMED record of a standalone session",
    ("core.Pen._watch_link", "append", "log*.bin"): "DISARMED record: the arming link changed",
    ("core.Pen._flush_refusals", "append", "log*.bin"):
        "REFUSALS_REPEATED records: the counts of repeated refusals, and of records that found no room",
    ("store.Store.append", "remove", "log*.bin"):
        "log rotation: drops the oldest segment, only once the host acknowledged all of it",
    ("store.Store._recover", "remove", "seg.tmp"): "boot: a stale truncation temp file",
    ("store.Store._recover", "remove", "log*.bin"): "boot: a segment an interrupted rotation left",
    ("store.Store._recover", "write", "seg.tmp"): "boot: the log segment without its torn tail",
    ("store.Store._recover", "rename", "seg.tmp>log*.bin"):
        "boot: replaces the torn segment in one step",
    ("store.Store._recover", "append", "log*.bin"):
        "LOG_RECOVERED record (the torn record's seq is never reused)",
}
TORN = {"0-bytes": 0, "1-byte": 1, "half": -1}
OPS = ("write", "rename", "append", "remove")


def write_point_rows():
    """The documented write points as (call site, op, file, what it protects) rows."""
    keys = sorted(WRITE_POINTS, key=lambda k: (k[0], OPS.index(k[1]), k[2]))
    return [(site, op, f, WRITE_POINTS[(site, op, f)]) for site, op, f in keys]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    fs = RecordingFs(str(tmp_path_factory.mktemp("reference")))
    scenario(fs, Ledger())
    return fs.log


# ---- the set of write points ------------------------------------------------------------
def test_observed_write_points_are_exactly_the_documented_ones(reference):
    assert set(reference) == set(WRITE_POINTS)


def _static_sites(path):
    tree = ast.parse(path.read_text())
    sites = set()
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef)]:
        for fn in [n for n in cls.body if isinstance(n, ast.FunctionDef)]:
            site = f"{path.stem}.{cls.name}.{fn.name}"
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                if _writes(site, call.func):
                    sites.add(site)
    return sites


def _writes(site, func):
    if not isinstance(func, ast.Attribute):
        return False
    recv = ast.unparse(func.value)
    if recv.endswith("fs") and func.attr in ("write", "append", "rename", "remove"):
        return (site, func.attr) not in DELEGATED
    pen_helpers = {h.rsplit(".", 1)[1] for h in HELPERS if h.startswith("core.Pen.")}
    helper = ((recv == "self" and func.attr in pen_helpers)
              or (recv.endswith("store") and func.attr in ("append", "commit"))
              or (site.startswith("store.") and recv == "self" and func.attr == "append"))
    return helper and site not in HELPERS


def test_every_static_write_call_site_is_documented():
    """A new call of a storage helper anywhere in firmware/pen fails until documented
    (and exercised by the scenario, by the test above)."""
    static = set()
    for path in sorted(FIRMWARE.glob("*.py")):
        if path.name not in ("fsio.py", "wire.py"):
            static |= _static_sites(path)
    assert static == {site for site, _, _ in WRITE_POINTS}


def test_write_point_table_markdown_lists_every_point():
    from writepoints_table import markdown

    lines = markdown(write_point_rows()).splitlines()
    assert lines[0].startswith("| call site |") and len(lines) == 2 + len(WRITE_POINTS)
    for (site, op, name, _), text in zip(write_point_rows(), lines[2:], strict=True):
        assert text.startswith(f"| `{site}` | {op} | `{name}` |")


# ---- power cut at every write point --------------------------------------------------------
def _copy(c):
    return json.loads(json.dumps(c))


def _reboot(root, ledger):
    old = ledger.rig
    r = Rig.__new__(Rig)  # the shared rig's helpers, over the same body, without its set-up
    r.fs, r.board, r.plant, r.t = Fs(root), old.board, old.plant, old.t
    r.seq, r.nonce, r.events, r.max_duty = 0, 0, [], 0
    r.store = Store(r.fs, seg_records=SEG_RECORDS, max_segments=MAX_SEGMENTS)
    return r


def _boot_pen(r):
    r.pen = Pen(r.board, r.store, 0, wire.E_FAULT_WATCHDOG)
    r.h = Handler(r.pen)


def _check_counters(loaded, ledger, at):
    assert loaded in (ledger.committed, ledger.pending), f"{at}: counters are neither old nor new"
    assert_not_behind(snapshot(loaded), snapshot(ledger.committed), at)


def _check_log(store, ledger, at):
    first = store.first_seq()
    recs = store.read(0, 1 << 20)[2]
    present = {int.from_bytes(b[:4], "little"): bytes(b) for b in recs}
    assert len(present) == len(recs), f"{at}: a seq appears twice"
    top = max(ledger.acked, default=0)
    for seq, body in ledger.acked.items():
        if seq >= first:
            assert present.get(seq) == body, f"{at}: acknowledged record {seq} lost or changed"
    newest = sorted(ledger.acked)[-SEG_RECORDS * (MAX_SEGMENTS - 1):]
    assert all(s in present for s in newest), f"{at}: rotation dropped recent records"
    assert all(s in ledger.acked or s > top for s in present), f"{at}: unacknowledged record"
    assert store.next_seq > top, f"{at}: seq {store.next_seq} would be handed out again"


def _check_safe_restart(r, ledger, at):
    assert r.pen.state == wire.S_HOMING and r.pen.permit is None, f"{at}: not homing at boot"
    if not r.pen.key():  # the power went before the key reached flash
        assert r.code(wire.T_SET_KEY, {"key": KEY}) == 0
    assert r.code(wire.T_SET_TIME, signed_time(ledger.clock or T0)) == 0
    for _ in range(200):
        out = r.tick()
        assert out.motor_duty == 0 and out.depth_target_um == 0, f"{at}: needles moved at boot"
    assert r.pen.state == wire.S_IDLE, f"{at}: state {r.pen.state} after homing"
    assert r.code(wire.T_START) == wire.E_NOT_ARMED, f"{at}: something resumed"


def _check_used_stays_used(r, ledger, at):
    for p in ledger.permits:
        assert r.code(wire.T_ARM, p) == wire.E_PERMIT_REPLAYED, f"{at}: ACKed permit replayed"
    for h, (_used, flags) in ledger.committed["carts"].items():
        if flags & F_USED:
            code = r.pen.wear.code(ledger.carts[h], r.pen.clock())
            assert code in (wire.E_CARTRIDGE_USED, wire.E_CARTRIDGE_REINSERTED), \
                f"{at}: used cartridge {h} accepted again ({code})"


def cut_and_check(root, n, torn):
    """Run the scenario with the power cut at write point n; reboot; check."""
    fs = RecordingFs(root, fail_at=n, torn=torn)
    ledger = Ledger()
    with contextlib.suppress(PowerLoss):
        scenario(fs, ledger)
    assert fs.dead, f"write point {n} not reached"
    at = f"write point {n} {fs.log[-1]} torn={torn}"
    r = _reboot(root, ledger)
    _check_counters(_copy(r.store.c), ledger, at)
    _check_log(r.store, ledger, at)
    _boot_pen(r)
    _check_safe_restart(r, ledger, at)
    _check_used_stays_used(r, ledger, at)
    return fs.log


@pytest.mark.parametrize("torn", TORN.values(), ids=TORN.keys())
def test_power_cut_at_every_write_point_is_safe(reference, tmp_path, torn):
    """Rules 6, 13, 20, 21 and the audit log: a cut at any write point (torn or not)
    reboots safe with nothing acknowledged lost, replayable or reusable."""
    cut = 0
    for n, (_site, op, _f) in enumerate(reference, 1):
        if torn and op not in ("write", "append"):
            continue  # renames and removes do not tear
        log = cut_and_check(str(tmp_path / str(n)), n, torn)
        assert log == reference[:n], f"write point {n}: the scenario is not deterministic"
        cut += 1
    assert cut >= (60 if torn else len(reference))


def test_cut_check_catches_a_nonce_spent_after_the_ack(tmp_path, monkeypatch):
    """Sanity (rule 20): with ARM's commit taken out (the nonce reaches flash only
    with the next commit), a cut at START's commit lets the ACKed permit replay."""
    arm = Pen.arm

    def arm_without_commit(self, p):
        self._commit = lambda: True
        try:
            return arm(self, p)
        finally:
            del self._commit

    monkeypatch.setattr(Pen, "arm", arm_without_commit)
    fs = RecordingFs(str(tmp_path / "ref"))
    scenario(fs, Ledger())
    n = fs.log.index(("core.Pen.start", "write", "state.tmp")) + 1
    with pytest.raises(AssertionError, match="ACKed permit replayed"):
        cut_and_check(str(tmp_path / "cut"), n, 0)


# ---- storage errors (flash full or failing, the power stays on) ---------------------------
class FullFs(MemFs):
    """A MemFs whose writes fail (ENOSPC) once `full` is set."""

    full = False

    def _check(self):
        if self.full:
            raise OSError(28, "no space left")

    def write(self, name, data):
        self._check()
        MemFs.write(self, name, data)

    def append(self, name, data):
        self._check()
        MemFs.append(self, name, data)

    def rename(self, old, new):
        self._check()
        MemFs.rename(self, old, new)


def _paused(r):
    assert r.start_session(250, 600) == 0
    r.run(500)
    r.plant.inp.contact = False
    r.run(100)
    r.plant.inp.contact = True
    assert r.pen.state == wire.S_PAUSED


def test_storage_error_at_session_start_refuses_the_start():
    """Rules 6, 13: a session whose record cannot reach flash never needles."""
    r = Rig(FullFs())
    assert r.arm() == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 500}) == 0
    before = json.dumps(r.pen.store.c, sort_keys=True)
    r.fs.full = True
    assert r.code(wire.T_START) == wire.E_STORAGE_FULL
    r.run(500)
    assert r.max_duty == 0 and r.pen.store.c["sess"] is None
    # nothing of the refused start stays in RAM: no session counted, cartridge unused
    assert json.dumps(r.pen.store.c, sort_keys=True) == before
    assert not r.plant.writes and not r.pen.cart.get("first_use")


def test_storage_error_at_resume_keeps_the_session_paused():
    """Rule 6: a resume whose checkpoint cannot reach flash does not needle."""
    r = Rig(FullFs())
    _paused(r)
    r.fs.full = True
    assert r.code(wire.T_START) == wire.E_STORAGE_FULL
    r.run(300)
    assert r.pen.state == wire.S_PAUSED and r.pen.out.motor_duty == 0


def test_storage_error_at_deeper_setting_keeps_the_depth():
    """Rule 6: a deeper setting that cannot be persisted is refused while running."""
    r = Rig(FullFs())
    assert r.arm(depth=1000) == 0
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 250}) == 0
    assert r.code(wire.T_START) == 0
    r.run(500)
    r.fs.full = True
    assert r.code(wire.T_SET_DEPTH, {"depth_um": 1000}) == wire.E_STORAGE_FULL
    r.run(300)
    assert r.pen.out.depth_target_um == 250 and r.pen.session_depth == 250
