"""A clinician's signing key on their own computer, and the public key file they hand out.

``scalppen clinician init`` makes an Ed25519 key: the private half goes into the
vault (the keyring, or an owner-only file), the name and public half into
``SCALPPEN_HOME/clinician.json``. The public key file is what a patient's toolkit
pins (``scalppen clinician trust FILE``), shown with its fingerprint to compare.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scalppen import paths
from scalppen.policy.clearance_statement import Signed, Statement, fingerprint, signed_message
from scalppen.vault import Vault

#: The public key file's format tag.
PUBLIC_FORMAT: Final = "scalppen-clinician-key/1"
#: The largest public key file read (it is a few hundred bytes).
MAX_FILE: Final = 4096


class ClinicianKeyError(Exception):
    """No key here, a damaged key file, or a key that does not match."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class PublicKey:
    """A clinician's name and public key, as a toolkit pins it."""

    name: str
    public_key: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def to_json(self) -> str:
        import base64

        return json.dumps(
            {
                "format": PUBLIC_FORMAT,
                "name": self.name,
                "public_key": base64.b64encode(self.public_key).decode(),
                "fingerprint": self.fingerprint,
            },
            indent=2,
        ) + "\n"


def read_public_file(path: Path) -> PublicKey:
    """Read a clinician's public key file.

    Raises:
        ClinicianKeyError: missing, too large, not a key file, or its fingerprint
            line does not match its key.
    """
    import base64
    import binascii

    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE + 1)
    except OSError as exc:
        raise ClinicianKeyError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE:
        raise ClinicianKeyError(f"{path} is too large to be a clinician key file")
    try:
        data = json.loads(raw)
        if data.get("format") != PUBLIC_FORMAT:
            raise ValueError
        name = str(data["name"]).strip()
        key = base64.b64decode(data["public_key"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ClinicianKeyError(
            f"{path} is not a clinician key file ({PUBLIC_FORMAT})",
            "ask the clinician for the file `scalppen clinician init` wrote",
        ) from None
    if len(key) != 32 or not name:
        raise ClinicianKeyError(f"{path} is not a clinician key file: no name or a bad key")
    pub = PublicKey(name, key)
    if data.get("fingerprint") not in (None, pub.fingerprint):
        raise ClinicianKeyError(
            f"{path} was altered: its fingerprint line does not match its key",
            "ask the clinician for the file again",
        )
    return pub


def _vault_name() -> str:
    """The vault entry of this home's clinician key (one keyring serves many homes)."""
    where = str(paths.home().resolve()).encode()
    return f"clinician-{hashlib.sha256(where).hexdigest()[:12]}"


def identity_file() -> Path:
    return paths.home() / "clinician.json"


def create(vault: Vault, name: str) -> PublicKey:
    """Make this computer's clinician key.

    Raises:
        ClinicianKeyError: one exists already (a key is never silently replaced:
            toolkits pinned it).
    """
    if not name.strip():
        raise ClinicianKeyError("a clinician key needs the clinician's name", "pass --name NAME")
    if identity_file().exists() or vault.get(_vault_name()) is not None:
        raise ClinicianKeyError(
            "this computer already has a clinician key", "see it with: scalppen clinician show"
        )
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    vault.put(_vault_name(), raw)
    pub = PublicKey(name.strip(), private.public_key().public_bytes_raw())
    identity_file().write_text(pub.to_json())
    return pub


def load(vault: Vault) -> tuple[PublicKey, Ed25519PrivateKey]:
    """This computer's clinician key.

    Raises:
        ClinicianKeyError: none, or the vault's key is not the one the identity file names.
    """
    path = identity_file()
    if not path.exists():
        raise ClinicianKeyError(
            "this computer has no clinician key",
            "make one with: scalppen clinician init --name NAME",
        )
    pub = read_public_file(path)
    raw = vault.get(_vault_name())
    if raw is None or len(raw) != 32:
        raise ClinicianKeyError(
            f"the private half of {pub.name}'s key is not in the {vault.kind}",
            "unlock the keyring it was made in",
        )
    private = Ed25519PrivateKey.from_private_bytes(raw)
    if private.public_key().public_bytes_raw() != pub.public_key:
        raise ClinicianKeyError(f"{path} does not match the private key kept for it")
    return pub, private


def sign(private: Ed25519PrivateKey, statement: Statement) -> Signed:
    """Sign a statement."""
    record = statement.encode()
    return Signed(statement, record, private.sign(signed_message(record)))
