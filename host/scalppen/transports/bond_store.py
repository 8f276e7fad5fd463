"""Bumble's bond keys at rest: its JSON key store, written sealed.

bumble keeps each bonded pen's keys (LTK, IRK, CSRK) in a JSON file. Here the same
JSON is sealed (AES-256-GCM) with a key kept in the vault (the keyring, or an
owner-only file on a headless machine) under ``bonds-<hash of the file's path>``,
and bound to that path: the file alone gives no key. A plain file written by an
older version is read once and sealed on the next write (``open_central`` seals it
at once). Written as bumble writes it: to a temporary file, then renamed, owner-only.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Final

from bumble.keys import JsonKeyStore

from scalppen.vault import Sealer, Vault, VaultError, open_vault, sealer

#: What a sealed bond file starts with (a plain one starts with ``{``).
MAGIC: Final = b"SCALPPEN-SEALED-BONDS/1\n"


class SealedJsonKeyStore(JsonKeyStore):
    """bumble's ``JsonKeyStore``, its file sealed with a key from the vault."""

    def __init__(self, filename: str, vault: Vault | None = None) -> None:
        super().__init__(namespace=None, filename=filename)
        self._vault = vault or open_vault()
        where = str(self.filename).encode()
        self.key_name = f"bonds-{hashlib.sha256(where).hexdigest()[:16]}"
        self._context = b"scalppen bonds\x00" + where

    def _sealer(self, create: bool) -> Sealer:
        found = sealer(self._vault, self.key_name, create=create)
        if found is None:
            raise VaultError(
                f"the key that seals the Bluetooth bonds in {self.filename} is not in the "
                f"{self._vault.kind}",
                f"unlock the keyring it was made in, or move {self.filename} away and pair "
                "the pens again",
            )
        return found

    def is_plain(self) -> bool:
        """True when the file holds bonds an older version wrote plain."""
        try:
            with open(self.filename, "rb") as fh:
                return not fh.read(len(MAGIC)).startswith(MAGIC) and \
                    os.path.getsize(self.filename) > 0
        except FileNotFoundError:
            return False

    def read(self) -> dict[str, Any]:
        """The whole file opened: ``{namespace: {address: keys}}`` (``{}`` if none)."""
        return self._read()

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.filename, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return {}
        if not raw:
            return {}
        if raw.startswith(MAGIC):
            raw = self._sealer(create=False).open(raw[len(MAGIC):], self._context)
        try:
            db = json.loads(raw)
        except ValueError:
            raise VaultError(f"{self.filename} is damaged: it holds no bonds that can be read",
                             f"move {self.filename} away and pair the pens again") from None
        return db if isinstance(db, dict) else {}

    async def load(self) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
        db = self._read()
        if self.namespace in db:
            return db, db[self.namespace]
        if self.namespace == self.DEFAULT_NAMESPACE and len(db) == 1:
            return db, next(iter(db.values()))
        fresh: dict[str, dict[str, Any]] = {}
        db[self.namespace] = fresh
        return db, fresh

    async def save(self, db: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.directory_name.mkdir(parents=True, exist_ok=True)
        plain = json.dumps(db, sort_keys=True).encode()
        blob = MAGIC + self._sealer(create=True).seal(plain, self._context)
        tmp = self.filename.with_name(f".{self.filename.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.filename)

    async def seal_if_plain(self) -> bool:
        """Seal a plain file from an older version now; True if it was plain."""
        if not self.is_plain():
            return False
        db = self._read()
        await self.save(db)
        return True
