"""``scalppen doctor``'s rows on keys at rest: where the vault is, and whether the
permit keys and the Bluetooth bond keys are sealed, as (what, state, problem)."""

from __future__ import annotations

from pathlib import Path

from scalppen import paths
from scalppen.private_files import mode_of
from scalppen.vault import FileVault, Vault, VaultError, open_vault

Row = tuple[str, str, str]


def vault_rows(vault: Vault) -> list[Row]:
    rows: list[Row] = [("key storage", vault.kind, "")]
    if isinstance(vault, FileVault) and vault.directory.exists():
        for f in sorted(vault.directory.iterdir()):
            mode = mode_of(f) or 0
            if mode & 0o077:
                rows.append(("key file", f"{f} ({mode:o})",
                             f"{f} can be read by other users: chmod 600 {f}"))
    return rows


def permit_key_rows(target: str, vault: Vault) -> list[Row]:
    """The permit keys in the database: sealed, plain, or sealed with a key not here."""
    from scalppen.store import open_store
    from scalppen.store.db import is_url
    from scalppen.store.sealing import PLAIN_SIZE, key_name

    if not is_url(target) and not Path(target).exists():
        return [("permit keys", "no database yet", "")]
    try:
        with open_store(target, timeout_s=2, create=False) as db:
            db.vault = vault
            rows = db.query("SELECT permit_key FROM pens WHERE permit_key IS NOT NULL")
            name = key_name(db)
    except Exception as exc:  # doctor reports; it does not stop at the first problem
        return [("permit keys", "cannot read the database", str(exc).splitlines()[0])]
    plain = sum(1 for r in rows if len(bytes(r["permit_key"])) == PLAIN_SIZE)
    sealed = len(rows) - plain
    held = _held(vault, name)
    state = f"{sealed} sealed with {name}" + (f", {plain} plain" if plain else "")
    if sealed and not held:
        return [("permit keys", state,
                 f"the key {name} is not in the {vault.kind}: import it "
                 "(scalppen db key import FILE) or pair the pens again")]
    return [("permit keys", state,
             f"{plain} permit key(s) stored plain by an older version: any command that "
             "opens the database seals them" if plain else "")]


def bond_rows(vault: Vault) -> list[Row]:
    path = paths.keystore()
    if not path.exists():
        return [("Bluetooth bond keys", f"{path}: none yet", "")]
    from scalppen.transports.bond_store import MAGIC

    with path.open("rb") as fh:
        sealed = fh.read(len(MAGIC)) == MAGIC
    mode = mode_of(path) or 0
    problem = (f"{path} can be read by other users: chmod 600 {path}" if mode & 0o077 else
               "" if sealed else
               f"{path} holds bond keys plain (an older version): the next Bluetooth command "
               "seals it")
    return [("Bluetooth bond keys",
             f"{path} ({mode:o}), {'sealed' if sealed else 'plain'}", problem)]


def _held(vault: Vault, name: str) -> bool:
    try:
        return vault.get(name) is not None
    except VaultError:
        return False


def key_rows(target: str) -> list[Row]:
    try:
        vault = open_vault()
    except VaultError as exc:
        return [("key storage", "unavailable", f"{exc}: {exc.hint}")]
    return [*vault_rows(vault), *permit_key_rows(target, vault), *bond_rows(vault)]
