"""Permit keys at rest: sealed in the database with a key the database does not hold.

Each database has its own sealing key (AES-256-GCM), kept in the vault (the
operating system's keyring, or an owner-only file on a headless machine) under
``database-<toolkit id>``; a pen's permit key is stored sealed with it, bound to the
pen's serial (a sealed key moved to another pen's row does not open). Reading the
database file alone gives no permit key.

In a clinic, every laptop that issues permits needs the same sealing key:
``scalppen db key export FILE`` on the laptop that has it, ``scalppen db key import
FILE`` on each other (the file is owner-only; carry it, then delete it).
"""

from __future__ import annotations

from typing import Final

from scalppen.store.db import Store
from scalppen.store.toolkit import toolkit_id
from scalppen.vault import KEY_SIZE, Sealer, Vault, VaultError, open_vault, sealer

#: A permit key as it was stored before sealing: the raw 32 bytes.
PLAIN_SIZE: Final = 32


def vault_of(db: Store) -> Vault:
    """The vault this store's sealing key lives in (the computer's, once per store)."""
    if db.vault is None:
        db.vault = open_vault()
    found: Vault = db.vault
    return found


def key_name(db: Store) -> str:
    return f"database-{toolkit_id(db)}"


def database_sealer(db: Store, *, create: bool) -> Sealer:
    """This database's sealer.

    Raises:
        VaultError: its key is not in this computer's vault (and ``create`` is False).
    """
    vault = vault_of(db)
    found = sealer(vault, key_name(db), create=create)
    if found is None:
        raise VaultError(
            f"the key that seals this database's permit keys ({key_name(db)}) is not in the "
            f"{vault.kind}",
            "unlock the keyring it was made in, import it (scalppen db key import FILE), "
            "or pair the pen again",
        )
    return found


def context(serial: str) -> bytes:
    return b"scalppen permit key\x00" + serial.encode()


def seal_key(db: Store, serial: str, key: bytes) -> bytes:
    return database_sealer(db, create=True).seal(key, context(serial))


def open_key(db: Store, serial: str, stored: bytes) -> bytes:
    """A stored permit key, opened (a plain one from an older version as it is)."""
    if len(stored) == PLAIN_SIZE:
        return stored
    return database_sealer(db, create=False).open(stored, context(serial))


def seal_plain_keys(db: Store) -> int:
    """Seal the permit keys an older version stored plain; how many."""
    rows = db.query("SELECT serial, permit_key FROM pens WHERE permit_key IS NOT NULL")
    plain = [(r["serial"], bytes(r["permit_key"])) for r in rows
             if len(bytes(r["permit_key"])) == PLAIN_SIZE]
    if not plain:
        return 0
    with db.transaction():
        for serial, key in plain:
            db.execute("UPDATE pens SET permit_key = ? WHERE serial = ?",
                       (seal_key(db, serial, key), serial))
    return len(plain)


def export_key(db: Store) -> bytes:
    """This database's sealing key, to carry to another laptop of the clinic."""
    return bytes(toolkit_id(db).encode() + b":" + _raw_key(db))


def _raw_key(db: Store) -> bytes:
    raw = vault_of(db).get(key_name(db))
    if raw is None or len(raw) != KEY_SIZE:
        raise VaultError(f"this computer does not hold the key of {key_name(db)}",
                         "export it from the laptop that paired the pens")
    return raw


def import_key(db: Store, blob: bytes) -> None:
    """Keep another laptop's copy of this database's sealing key in this computer's vault.

    Raises:
        VaultError: a key for another database, or damaged.
    """
    tid, _, raw = blob.partition(b":")
    if tid.decode(errors="replace") != toolkit_id(db) or len(raw) != KEY_SIZE:
        raise VaultError("this key file is for another database, or damaged",
                         "export it again from a laptop that uses this database")
    vault = vault_of(db)
    held = vault.get(key_name(db))
    if held is not None and held != raw:
        raise VaultError("this computer already holds a different key for this database",
                         "permit keys sealed with it would no longer open: nothing changed")
    vault.put(key_name(db), raw)
