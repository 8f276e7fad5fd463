"""Pack a built bundle's application slot into a signed image for an update over
SMP (the format: ``scalppen_protocol.image``; the pen's side: ``pen/update.py``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scalppen.flash.build import MANIFEST_NAME, load_bundle
from scalppen.release import key_id, public_raw
from scalppen_protocol.image import (
    HEADER_SIZE,
    MAX_FILES,
    MAX_IMAGE,
    SIGN_PREFIX,
    FileEntry,
    ImageHeader,
    SignedHeader,
)


class ImageError(Exception):
    """A bundle that cannot be packed (one line)."""


def _version(text: str) -> tuple[int, int, int]:
    try:
        major, minor, patch = (int(p) for p in text.split("-")[0].split(".")[:3])
    except ValueError:
        raise ImageError(f"version {text!r} is not major.minor.patch") from None
    return major, minor, patch


def pack_image(bundle_dir: Path, private: Ed25519PrivateKey) -> bytes:
    """The signed image of ``bundle_dir``'s slot files and its manifest (last)."""
    bundle_dir = Path(bundle_dir)
    manifest = load_bundle(bundle_dir)
    files = [(f.path, (bundle_dir / f.path).read_bytes()) for f in manifest.slot_files()]
    files.append((MANIFEST_NAME, (bundle_dir / MANIFEST_NAME).read_bytes()))
    if len(files) > MAX_FILES:
        raise ImageError(f"{len(files)} files, the pen takes {MAX_FILES}")
    index = b"".join(FileEntry.build({"path": p, "size": len(d),
                                      "sha256": hashlib.sha256(d).digest()}) for p, d in files)
    total = HEADER_SIZE + len(index) + sum(len(d) for _, d in files)
    if total > MAX_IMAGE:
        raise ImageError(f"the image is {total} bytes, the pen takes {MAX_IMAGE}")
    major, minor, patch = _version(manifest.version)
    signed = SignedHeader.build({"flags": 0, "major": major, "minor": minor, "patch": patch,
                                 "count": len(files), "index_len": len(index),
                                 "total_len": total})
    digest = hashlib.sha256(signed + index).digest()
    public = public_raw(private)
    header = ImageHeader.build({"flags": 0, "major": major, "minor": minor, "patch": patch,
                                "count": len(files), "index_len": len(index), "total_len": total,
                                "key_id": key_id(public),
                                "signature": private.sign(SIGN_PREFIX + digest)})
    return header + index + b"".join(d for _, d in files)
