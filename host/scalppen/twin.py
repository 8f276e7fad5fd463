"""The pen the toolkit runs against without hardware: the twin.

:func:`make_twin` builds the firmware bundle exactly as ``scalppen build`` does
(mpy-cross of the tree the toolkit runs from, the board's definition, the
manifest) and returns a :class:`~scalppen_hardware.twin.pen.TwinPen` whose blank
flash gets that bundle, as a pen leaves the factory. A flash that already holds
an application keeps it (a later ``scalppen flash`` changed it, say).

Each flash directory is its own pen: at its first use it gets a random chip id
(``machine.unique_id()``, from which the firmware makes the serial) and a random
static BLE address, kept in the flash directory's ``identity.json`` (as
``board.json`` is), the way a factory burns them into a chip once.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scalppen.flash.build import build_bundle, find_board
from scalppen.transports.base import ExtraMissing

_bundles: dict[str, Path] = {}


def firmware_dir() -> Path:
    from scalppen_hardware.virtual_pen import FIRMWARE_DIR

    return FIRMWARE_DIR


def boards_dir() -> Path:
    return firmware_dir().parent / "hardware" / "boards"


def factory_bundle(board: str = "pen-s3-revb", *, clinic: bool = False) -> Path:
    """The bundle of the current firmware tree for ``board`` (built once per process
    and tree); ``clinic``: for a pen shared by a clinic (rule 6 per patient)."""
    fw = firmware_dir()
    board_path = find_board(boards_dir(), board)
    digest = hashlib.sha256(board_path.read_bytes() + (b"clinic" if clinic else b""))
    for p in sorted(fw.rglob("*.py")):
        digest.update(p.relative_to(fw).as_posix().encode() + b"\0" + p.read_bytes())
    key = digest.hexdigest()
    cached = _bundles.get(key)
    if cached is not None and (cached / "manifest.json").exists():
        return cached
    out = Path(tempfile.mkdtemp(prefix="scalppen-bundle-")) / "firmware"
    atexit.register(shutil.rmtree, out.parent, True)
    build_bundle(fw, out, board_path, clinic=clinic)
    _bundles[key] = out
    return out


#: Where a twin's chip id and BLE address are kept, in its flash directory.
IDENTITY_FILE = "identity.json"


def pen_identity(flash_dir: Path) -> tuple[bytes, str]:
    """The chip id (6 bytes) and random static BLE address of the pen whose flash is
    ``flash_dir``: made at random on first use and kept in :data:`IDENTITY_FILE`."""
    path = Path(flash_dir) / IDENTITY_FILE
    try:
        data = json.loads(path.read_text())
        uid = bytes.fromhex(data["unique_id"])
        address = str(data["address"])
        if len(uid) != 6:
            raise ValueError("unique_id is not 6 bytes")
        return uid, address
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a pen identity ({exc})") from None
    uid = os.urandom(6)
    raw = bytearray(os.urandom(6))
    raw[0] |= 0xC0  # a random static address has its two top bits set (BT Core Vol 6 B 1.3.2.1)
    address = ":".join(f"{b:02X}" for b in raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"unique_id": uid.hex(), "address": address}) + "\n")
    return uid, address


def make_twin(flash_dir: Path, link: Any, *, board: str = "pen-s3-revb", clinic: bool = False,
              **kwargs: Any) -> Any:
    """A twin pen on ``link`` whose flash is ``flash_dir`` (see TwinPen's arguments);
    its chip id and address are the flash directory's own (:func:`pen_identity`)
    unless given; its factory bundle is the current tree's (a clinic pen's with
    ``clinic``) unless ``bundle_dir``."""
    try:
        from scalppen_hardware.twin.pen import TwinPen
    except ImportError as exc:  # bumble / the unix port are the "sim" extra
        raise ExtraMissing("the virtual pen", "bumble", "sim") from exc
    uid, address = pen_identity(flash_dir)
    kwargs.setdefault("unique_id", uid)
    kwargs.setdefault("address", address)
    bundle = kwargs.pop("bundle_dir", None) or factory_bundle(board, clinic=clinic)
    return TwinPen(flash_dir, link, bundle_dir=bundle, board=board, **kwargs)
