"""The release key: Ed25519, made by the manufacturer (``scalppen release keygen``),
signs firmware images for updates over Bluetooth (``scalppen build --sign KEY``).
The pen holds only its public half (board.json ``release_key``, written by the
first flash over USB). The private half is a PEM file only its owner may read,
kept off the laptops that treat patients."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class ReleaseKeyError(Exception):
    """A release key that cannot be made or used (one line: what, and what to do)."""


def public_raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def key_id(public: bytes) -> bytes:
    """The 8 bytes an image names its key by: the start of SHA-256(public key)."""
    return hashlib.sha256(public).digest()[:8]


def keygen(path: Path) -> bytes:
    """Make a release key at ``path`` (PEM, owner-only) and ``path``.pub (hex);
    -> the public key. Never overwrites a key."""
    path = Path(path)
    if path.exists():
        raise ReleaseKeyError(f"{path} exists: a release key is never replaced by accident "
                              "(move it away first)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_raw(private)
    Path(str(path) + ".pub").write_text(public.hex() + "\n")
    return public


def load(path: Path) -> Ed25519PrivateKey:
    """The release key at ``path``; refused when others may read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseKeyError(f"cannot read the release key {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ReleaseKeyError(f"{path} can be read by others: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise ReleaseKeyError(f"{path} is not a release key (PEM, Ed25519)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseKeyError(f"{path} is not an Ed25519 key")
    return key
