"""The pen the toolkit runs against without hardware: the twin.

:func:`make_twin` builds the firmware bundle exactly as ``scalppen build`` does
(mpy-cross of the tree the toolkit runs from, the board's definition, the
manifest) and returns a :class:`~scalppen_hardware.twin.pen.TwinPen` whose blank
flash gets that bundle, as a pen leaves the factory. A flash that already holds
an application keeps it (a later ``scalppen flash`` changed it, say).
"""

from __future__ import annotations

import atexit
import hashlib
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


def factory_bundle(board: str = "pen-s3-revb") -> Path:
    """The bundle of the current firmware tree for ``board`` (built once per process
    and tree)."""
    fw = firmware_dir()
    board_path = find_board(boards_dir(), board)
    digest = hashlib.sha256(board_path.read_bytes())
    for p in sorted(fw.rglob("*.py")):
        digest.update(p.relative_to(fw).as_posix().encode() + b"\0" + p.read_bytes())
    key = digest.hexdigest()
    cached = _bundles.get(key)
    if cached is not None and (cached / "manifest.json").exists():
        return cached
    out = Path(tempfile.mkdtemp(prefix="scalppen-bundle-")) / "firmware"
    atexit.register(shutil.rmtree, out.parent, True)
    build_bundle(fw, out, board_path)
    _bundles[key] = out
    return out


def make_twin(flash_dir: Path, link: Any, *, board: str = "pen-s3-revb", **kwargs: Any) -> Any:
    """A twin pen on ``link`` whose flash is ``flash_dir`` (see TwinPen's arguments)."""
    try:
        from scalppen_hardware.twin.pen import TwinPen
    except ImportError as exc:  # bumble / the unix port are the "sim" extra
        raise ExtraMissing("the virtual pen", "bumble", "sim") from exc
    return TwinPen(flash_dir, link, bundle_dir=factory_bundle(board), board=board, **kwargs)
