"""Deploy a firmware bundle to the pen: two slots, verification, atomic switch, rollback.

On the pen's flash::

    /boot.py /main.py /board.json   root files of the bundle (replaced via .new + rename)
    /a/...  /b/...                  application slots, each with its manifest.json
    /active                         slot boot.py runs ("a" or "b")
    /good                           last slot that started well (pen.bootok.mark_good)
    /bootcount                      failed starts of the slot on trial

A deploy writes into the slot that is not the last good one, never into the slot
that runs: files whose SHA-256 already matches are kept, files present with the
same hash in the other slot are copied on the pen, the rest are uploaded. Every
written file is read back and hashed on the pen; a mismatch is written again
(``retries`` times) and otherwise fails the deploy. Only when the whole slot and
its manifest verify is ``/active`` switched (temporary file + rename). If the
new build then fails to start three times, boot.py switches back to ``/good``.
An unchanged bundle already active on the pen is not written at all.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalppen.flash.build import MANIFEST_NAME, TARGET_MPY, FileEntry, Manifest, load_bundle
from scalppen.flash.build import sha256_hex as _sha
from scalppen.flash.devicefs import DeviceFS
from scalppen.flash.errors import (
    FlashFullError,
    IncompatibleDeviceError,
    LinkError,
    VerificationError,
)
from scalppen.flash.port import SerialLike, open_serial
from scalppen.flash.rawrepl import RawRepl

SLOTS = ("a", "b")
ROOT_FILES = ("/boot.py", "/main.py", "/board.json")

#: ``progress(done_bytes, total_bytes, path)``: called as files go to the pen.
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class DeviceState:
    active: str  # "" if the pen was never deployed to
    good: str
    mpy: tuple[int, int] | None
    block_size: int
    free_bytes: int
    slots: dict[str, dict[str, tuple[int, str]]]  # slot -> relative path -> (size, sha256)
    root: dict[str, tuple[int, str] | None]  # "/boot.py" -> (size, sha256) or None


@dataclass
class DeployPlan:
    target: str
    up_to_date: bool
    unchanged: list[str] = field(default_factory=list)
    uploads: list[FileEntry] = field(default_factory=list)
    copies: list[tuple[FileEntry, str]] = field(default_factory=list)  # (file, source on pen)
    removes: list[str] = field(default_factory=list)
    root_writes: list[FileEntry] = field(default_factory=list)
    needed_bytes: int = 0

    @property
    def bytes_to_send(self) -> int:
        return sum(f.size for f in self.uploads) + sum(f.size for f in self.root_writes)


@dataclass
class DeployResult:
    version: str
    build_id: str
    slot: str
    previous_slot: str
    plan: DeployPlan
    dry_run: bool
    retries: int = 0
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return self.plan.up_to_date


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block)) * block


def read_state(fs: DeviceFS) -> DeviceState:
    """Everything the plan needs, in one exchange with the pen."""
    fs.install()
    raw = fs._call(
        "{'active': _sp_read('/active'), 'good': _sp_read('/good'),"
        " 'mpy': getattr(__import__('sys').implementation, '_mpy', None),"
        " 'vfs': _sp_statvfs(), 'a': _sp_tree('/a', {}, ''), 'b': _sp_tree('/b', {}, ''),"
        f" 'root': _sp_hashes({list(ROOT_FILES)!r})}}",
        timeout=60,
    )
    mpy = raw.get("mpy")
    active = (raw.get("active") or "").strip()
    good = (raw.get("good") or "").strip()
    bsize, _blocks_total, bfree = raw["vfs"]
    return DeviceState(
        active=active if active in SLOTS else "",
        good=good if good in SLOTS else "",
        mpy=None if mpy is None else (int(mpy) & 0xFF, (int(mpy) >> 8) & 3),
        block_size=int(bsize),
        free_bytes=int(bsize) * int(bfree),
        slots={s: {p: (int(v[0]), str(v[1])) for p, v in raw[s].items()} for s in SLOTS},
        root={p: (None if v is None else (int(v[0]), str(v[1])))
              for p, v in raw["root"].items()},
    )


def check_compatible(state: DeviceState) -> None:
    if state.mpy is None:
        raise IncompatibleDeviceError("the pen's MicroPython cannot load .mpy files")
    if state.mpy != TARGET_MPY:
        raise IncompatibleDeviceError(
            f"the pen loads .mpy v{state.mpy[0]}.{state.mpy[1]}, the build is "
            f"v{TARGET_MPY[0]}.{TARGET_MPY[1]} (MicroPython 1.27)")


def plan_deploy(manifest: Manifest, manifest_bytes: bytes, state: DeviceState) -> DeployPlan:
    """What a deploy of ``manifest`` onto a pen in ``state`` would do (no I/O)."""
    slot_files = manifest.slot_files()
    root_files = manifest.root_files()
    manifest_sha = _sha(manifest_bytes)

    def root_changes() -> list[FileEntry]:
        out = []
        for f in root_files:
            have = state.root.get("/" + f.path)
            if have is None or have[1] != f.sha256:
                out.append(f)
        return out

    active = state.active
    if active:
        tree = state.slots[active]
        have_manifest = tree.get(MANIFEST_NAME)
        if (have_manifest is not None and have_manifest[1] == manifest_sha
                and all(tree.get(f.path, (0, ""))[1] == f.sha256 for f in slot_files)
                and not root_changes()):
            return DeployPlan(target=active, up_to_date=True,
                              unchanged=[f.path for f in manifest.files])

    base = state.good or state.active
    target = "b" if base == "a" else "a"
    other = "b" if target == "a" else "a"
    plan = DeployPlan(target=target, up_to_date=False)
    tree = state.slots[target]
    other_tree = state.slots[other]
    wanted = {f.path for f in slot_files}
    bs = state.block_size
    freed = 0
    for path, (size, _sha256) in sorted(tree.items()):
        if path not in wanted:
            plan.removes.append(path)
            freed += _blocks(size, bs)
    need = _blocks(len(manifest_bytes), bs)
    for f in slot_files:
        have = tree.get(f.path)
        if have is not None and have[1] == f.sha256:
            plan.unchanged.append(f.path)
            continue
        if have is not None:
            freed += _blocks(have[0], bs)
        src = other_tree.get(f.path)
        if src is not None and src[1] == f.sha256:
            plan.copies.append((f, f"/{other}/{f.path}"))
        else:
            plan.uploads.append(f)
        need += _blocks(f.size, bs)
    for f in root_changes():
        plan.root_writes.append(f)
        need += _blocks(f.size, bs)  # the .new copy exists next to the old file for a moment
    plan.needed_bytes = max(0, need - freed)
    return plan


class Deployer:
    """Runs a plan on the pen through a :class:`DeviceFS`."""

    def __init__(self, fs: DeviceFS, bundle_dir: Path, manifest: Manifest,
                 manifest_bytes: bytes, *, retries: int = 2,
                 progress: ProgressFn | None = None) -> None:
        self.fs = fs
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.manifest_bytes = manifest_bytes
        self.retries = retries
        self.progress = progress
        self.retried = 0
        self._done = 0
        self._total = 0

    def _report(self, n: int, path: str) -> None:
        self._done += n
        if self.progress is not None:
            self.progress(self._done, self._total, path)

    def _write_verified(self, dest: str, data: bytes, label: str) -> None:
        want = _sha(data)
        for attempt in range(self.retries + 1):
            start = self._done
            got = self.fs.write_file(dest, data, progress=lambda n: self._report(n, label))
            if got == want:
                return
            if attempt < self.retries:
                self.retried += 1
                self._done = start
                self._report(0, label)
        raise VerificationError(
            f"{label} on the pen does not match the build after {self.retries + 1} writes")

    def _copy_verified(self, src: str, dest: str, f: FileEntry) -> None:
        for attempt in range(self.retries + 1):
            if self.fs.copy(src, dest) == f.sha256:
                self._report(f.size, f.path)
                return
            if attempt < self.retries:
                self.retried += 1
        # the copy on the pen is bad: send the file instead
        self._write_verified(dest, (self.bundle_dir / f.path).read_bytes(), f.path)

    def run(self, plan: DeployPlan, state: DeviceState) -> None:
        fs = self.fs
        t = plan.target
        self._total = (plan.bytes_to_send + sum(f.size for f, _ in plan.copies)
                       + len(self.manifest_bytes))
        if state.active == t:  # the slot to overwrite is on trial: run the good one meanwhile
            fs.put_text("/active", state.good)
            fs.remove("/bootcount")
        fs.remove(f"/{t}/{MANIFEST_NAME}")
        for path in plan.removes:
            fs.remove(f"/{t}/{path}")
        dirs = sorted({f"/{t}/" + f.path.rsplit("/", 1)[0] for f in self.manifest.slot_files()
                       if "/" in f.path} | {f"/{t}"})
        for d in dirs:
            fs.mkdir(d)
        for f, src in plan.copies:
            self._copy_verified(src, f"/{t}/{f.path}", f)
        for f in plan.uploads:
            self._write_verified(f"/{t}/{f.path}", (self.bundle_dir / f.path).read_bytes(),
                                 f.path)
        # the whole slot, read back once more before it may run
        dests = [f"/{t}/{f.path}" for f in self.manifest.slot_files()]
        hashes = fs.hashes(dests)
        for f, dest in zip(self.manifest.slot_files(), dests, strict=True):
            have = hashes.get(dest)
            if have is None or have[1] != f.sha256:
                raise VerificationError(f"{f.path} on the pen does not match the build")
        self._write_verified(f"/{t}/{MANIFEST_NAME}", self.manifest_bytes, MANIFEST_NAME)
        for f in plan.root_writes:
            self._write_verified(f"/{f.path}.new", (self.bundle_dir / f.path).read_bytes(),
                                 f.path)
            fs.rename(f"/{f.path}.new", f"/{f.path}")
        # the switch: one rename; a fresh trial for the new slot (and no outcome of
        # an update over Bluetooth: INFO's update says none since this flash)
        fs.remove("/bootcount")
        fs.remove("/update")
        fs.put_text("/active", t)


def deploy_bundle(
    bundle_dir: str | Path,
    port: str | SerialLike,
    *,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    retries: int = 2,
    reset: bool = True,
    timeout: float = 5.0,
) -> DeployResult:
    """Deploy the bundle in ``bundle_dir`` to the pen on ``port``.

    Args:
        bundle_dir: a bundle made by :func:`scalppen.flash.build.build_bundle`.
        port: a serial port name (opened and closed here) or an open pyserial-like port.
        dry_run: read the pen and plan, change nothing.
        progress: ``progress(done_bytes, total_bytes, path)`` while files go over.
        retries: extra writes of a file whose read-back hash differs.
        reset: after switching, soft-reset the pen so the new build starts.
        timeout: seconds of silence from the pen before giving up.

    Returns:
        What was planned and done.

    Raises:
        BundleError, NoSuchPortError, PortBusyError, PortAccessError,
        NotMicroPythonError, IncompatibleDeviceError, FlashFullError,
        VerificationError, LinkError, DeviceExecError.
    """
    started = time.monotonic()
    bundle = Path(bundle_dir)
    manifest = load_bundle(bundle)
    manifest_bytes = (bundle / MANIFEST_NAME).read_bytes()
    owned = isinstance(port, str)
    ser = open_serial(port) if isinstance(port, str) else port
    try:
        repl = RawRepl(ser, timeout=timeout)
        repl.enter(soft_reset=True)
        fs = DeviceFS(repl)
        state = read_state(fs)
        check_compatible(state)
        plan = plan_deploy(manifest, manifest_bytes, state)
        result = DeployResult(manifest.version, manifest.build_id, plan.target,
                              state.active, plan, dry_run)
        if not plan.up_to_date and plan.needed_bytes > state.free_bytes:
            raise FlashFullError(
                f"the pen's flash is full: the build needs {plan.needed_bytes // 1024} kB more, "
                f"{state.free_bytes // 1024} kB are free")
        if dry_run or plan.up_to_date:
            repl.exit()
        else:
            deployer = Deployer(fs, bundle, manifest, manifest_bytes, retries=retries,
                                progress=progress)
            deployer.run(plan, state)
            result.retries = deployer.retried
            if reset:
                repl.reboot_to_app()
            else:
                repl.exit()
        result.seconds = time.monotonic() - started
        return result
    finally:
        if owned:
            with contextlib.suppress(Exception):  # the port may already be gone
                ser.close()


def device_manifest(port: str | SerialLike, slot: str | None = None) -> dict[str, object] | None:
    """The manifest of the active (or given) slot on the pen, None if there is none."""
    owned = isinstance(port, str)
    ser = open_serial(port) if isinstance(port, str) else port
    try:
        repl = RawRepl(ser)
        repl.enter(soft_reset=False)
        fs = DeviceFS(repl)
        slot = slot or (fs.read_text("/active") or "").strip()
        if slot not in SLOTS:
            return None
        text = fs.read_text(f"/{slot}/{MANIFEST_NAME}")
        repl.exit()
        return None if text is None else dict(json.loads(text))
    except ValueError as exc:
        raise LinkError(f"the pen's manifest is unreadable: {exc}") from None
    finally:
        if owned:
            ser.close()
