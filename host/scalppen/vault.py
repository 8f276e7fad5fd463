"""Secrets at rest: the operating system's keyring where one exists, else owner-only files.

The toolkit keeps a few secrets: the key that seals each database's permit keys,
the key that seals this computer's Bluetooth bond file, and a clinician's signing
key. Each is a short byte string kept under a name. Where the ``keyring`` package
finds a real keyring (Secret Service, macOS Keychain, Windows Credential Locker)
they live there; on a headless machine they live in owner-only files under
``SCALPPEN_HOME/keys``, and a file others can read is refused, as the database is.

``SCALPPEN_KEYRING=off`` forces the files (a machine whose keyring cannot be
unlocked); ``scalppen doctor`` says which is in use.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scalppen import paths
from scalppen.private_files import check_private

#: The keyring service every entry is filed under.
SERVICE: Final = "scalppen"
#: Environment variable: ``off`` keeps secrets in owner-only files even with a keyring.
ENV: Final = "SCALPPEN_KEYRING"
#: Keyring backends below this priority are not keyrings (``fail``, ``null``) or keep
#: secrets in plain or weakly protected files (``keyrings.alt``: 0.5 and 0.6).
MIN_PRIORITY: Final = 1
#: Names are short words (they become file names on a headless machine).
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,80}")
#: A sealed blob: format byte, 12-byte nonce, ciphertext with its 16-byte tag.
SEAL_FORMAT: Final = 1
KEY_SIZE: Final = 32
_NONCE: Final = 12


class VaultError(Exception):
    """A secret cannot be kept or read; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class Vault(Protocol):
    """Where secrets are kept."""

    #: One line for ``scalppen doctor``: which store, and where.
    kind: str

    def get(self, name: str) -> bytes | None:
        """The secret kept under ``name``, or None."""

    def put(self, name: str, value: bytes) -> None:
        """Keep ``value`` under ``name`` (replacing any)."""

    def delete(self, name: str) -> None:
        """Forget ``name`` (nothing if it is not kept)."""


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a vault name")
    return name


class KeyringVault:
    """Secrets in the operating system's keyring, base64 under service ``scalppen``."""

    def __init__(self, backend: Any) -> None:
        self._kr = backend
        self.kind = f"keyring ({type(backend).__module__}.{type(backend).__name__})"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from keyring.errors import KeyringError

        try:
            return fn(*args)
        except KeyringError as exc:
            raise VaultError(
                f"the keyring refused to {what} ({exc or type(exc).__name__})",
                f"unlock the keyring, or set {ENV}=off to keep keys in owner-only files",
            ) from None

    def get(self, name: str) -> bytes | None:
        text = self._call("read a key", self._kr.get_password, SERVICE, _check_name(name))
        return None if text is None else base64.b64decode(text)

    def put(self, name: str, value: bytes) -> None:
        encoded = base64.b64encode(value).decode()
        self._call("store a key", self._kr.set_password, SERVICE, _check_name(name), encoded)

    def delete(self, name: str) -> None:
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            self._call("forget a key", self._kr.delete_password, SERVICE, _check_name(name))


class FileVault:
    """Secrets in owner-only files (0600 in a 0700 directory), one per name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.kind = f"owner-only files in {directory} (no keyring on this computer)"

    def _path(self, name: str) -> Path:
        return self.directory / f"{_check_name(name)}.key"

    def get(self, name: str) -> bytes | None:
        path = self._path(name)
        check_private(self.directory, "the key directory")
        check_private(path, "a secret key")
        try:
            return base64.b64decode(path.read_bytes())
        except FileNotFoundError:
            return None

    def put(self, name: str, value: bytes) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_private(self.directory, "the key directory")
        path = self._path(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, base64.b64encode(value))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def usable_keyring() -> Any | None:
    """The keyring backend to use, or None when there is no real one (or it is off)."""
    if os.environ.get(ENV, "").strip().lower() in {"off", "0", "no", "file", "files"}:
        return None
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    try:
        priority = float(backend.priority)
    except Exception:  # a backend whose priority check itself fails is not usable
        return None
    return backend if priority >= MIN_PRIORITY else None


def open_vault() -> Vault:
    """The keyring where there is one, else owner-only files under the toolkit's home."""
    backend = usable_keyring()
    if backend is not None:
        return KeyringVault(backend)
    return FileVault(paths.home() / "keys")


class Sealer:
    """AES-256-GCM with a key from the vault: secrets stored elsewhere travel sealed.

    ``context`` binds a blob to what it belongs to (a pen's serial), so a sealed
    key copied to another row does not open.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a sealing key has {KEY_SIZE} bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return bytes([SEAL_FORMAT]) + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, blob: bytes, context: bytes) -> bytes:
        if len(blob) < 1 + _NONCE + 16 or blob[0] != SEAL_FORMAT:
            raise VaultError("a sealed secret is damaged or of an unknown format")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], context)
        except InvalidTag:
            raise VaultError(
                "a sealed secret does not open with this computer's key (altered, moved, or "
                "sealed by another key)",
                "re-pair the pen, or restore the keyring the key was made in",
            ) from None


def sealer(vault: Vault, name: str, *, create: bool) -> Sealer | None:
    """The sealer whose key is kept under ``name``; a new key if ``create`` and none is
    kept, else None."""
    key = vault.get(name)
    if key is None:
        if not create:
            return None
        key = os.urandom(KEY_SIZE)
        vault.put(name, key)
    return Sealer(key)
