"""Keys at rest (issue 13 item 2): on a machine with a keyring no key is in plain text
in any file the toolkit writes; on a headless one, keys live in owner-only files that
are refused when others can read them; sealed keys do not open elsewhere."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scalppen import store as S
from scalppen.private_files import NotPrivate
from scalppen.store.sealing import seal_plain_keys
from scalppen.transports.bond_store import MAGIC, SealedJsonKeyStore
from scalppen.vault import FileVault, VaultError
from tests.cli.keyring_session import keyring_session
from tests.e2e.sim_proc import SCALPPEN, Sim

KEY = bytes(range(32))


def forms(secret: bytes) -> list[bytes]:
    """How a key could sit in a file: raw, hex either case, base64."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(),
            base64.b64encode(secret), base64.b64encode(secret).rstrip(b"=")]


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# ------------------------------------------------------------------ a real keyring


def _run(env: dict[str, str], *args: str, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALPPEN, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=90)


_READ_KEYS = """
import asyncio, json, sys
from scalppen import paths, store as S
from scalppen.transports.bond_store import SealedJsonKeyStore
from scalppen.vault import open_vault
db = S.open_store(paths.default_db())
(pen,) = S.list_pens(db)
bonds = SealedJsonKeyStore(str(paths.keystore()))
db_, keymap = asyncio.run(bonds.load())
values = []
def walk(x):
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "value" and isinstance(v, str):
                values.append(v)
            else:
                walk(v)
walk(keymap)
print(json.dumps({"permit": S.get_permit_key(db, pen.serial).hex(), "bonds": values,
                  "vault": open_vault().kind}))
"""


def test_with_a_keyring_no_key_is_plain_in_any_file_the_toolkit_wrote(tmp_path: Path) -> None:
    home = tmp_path / "scalppen-home"
    with keyring_session(tmp_path) as desktop:
        env = dict(desktop, SCALPPEN_HOME=str(home), COLUMNS="200")
        sim = Sim(home, flash=tmp_path / "pen-flash")  # the pen's own flash holds its key
        try:
            port = sim.port
            ble = ["--ble", f"bumble:tcp-client:127.0.0.1:{port}"]
            scan = _run(env, *ble, "scan", "--timeout", "2")
            assert scan.returncode == 0, scan.stderr
            address = re.search(r"([0-9A-F]{2}(:[0-9A-F]{2}){5})", scan.stdout).group(1)  # type: ignore[union-attr]
            pair = subprocess.Popen([*SCALPPEN, *ble, "pair", address], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
            passkey = sim.wait_for(r"^display: PAIR (\d{6})").group(1)
            out, err = pair.communicate(passkey + "\n", timeout=90)
            assert pair.returncode == 0, err
            assert _run(env, *ble, "status").returncode == 0  # the bond is used again
        finally:
            sim.stop()
        read = subprocess.run([os.sys.executable, "-c", _READ_KEYS], env=env,  # type: ignore[attr-defined]
                              capture_output=True, text=True, timeout=60)
        assert read.returncode == 0, read.stderr
        keys = json.loads(read.stdout)
        assert "SecretService" in keys["vault"]
        # the permit key, and every key bumble kept for the bond (LTK, IRK, CSRK): those
        # of 16 bytes; an all-zero one (a value the pairing left unset) is no secret
        bond_keys = [bytes.fromhex(v) for v in keys["bonds"]]
        secrets = [bytes.fromhex(keys["permit"])] + [
            k for k in bond_keys if len(k) == 16 and any(k)]
        assert len(secrets) >= 2, keys
        doctor = _run(env, "doctor", "--json")
        rows = {c["what"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert "keyring" in rows["key storage"]["state"]
    assert "sealed" in rows["Bluetooth bond keys"]["state"]
    assert not (home / "keys").exists()  # nothing fell back to files
    written = files_under(home)
    assert any(p.name == "scalppen.db" for p in written)
    assert (home / "bumble-bonds.json").read_bytes().startswith(MAGIC)
    for path in written:
        data = path.read_bytes()
        for secret in secrets:
            for form in forms(secret):
                assert form not in data, f"{path} holds a key in plain text"


# ------------------------------------------------------------------ headless machines


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S.Store:
    monkeypatch.setenv("SCALPPEN_HOME", str(tmp_path / "home"))
    store = S.open_store(tmp_path / "home" / "x.db")
    S.upsert_pen(store, "SP-1")
    S.upsert_pen(store, "SP-2")
    return store


def test_a_permit_key_is_stored_sealed_and_only_opens_in_its_own_row(db: S.Store) -> None:
    S.set_permit_key(db, "SP-1", KEY)
    S.set_permit_key(db, "SP-2", bytes(32))
    raw = {r["serial"]: bytes(r["permit_key"]) for r in
           db.query("SELECT serial, permit_key FROM pens")}
    assert all(KEY not in v and KEY.hex().encode() not in v for v in raw.values())
    assert S.get_permit_key(db, "SP-1") == KEY
    db.execute("UPDATE pens SET permit_key = ? WHERE serial = 'SP-2'", (raw["SP-1"],))
    with pytest.raises(VaultError, match="does not open"):
        S.get_permit_key(db, "SP-2")


def test_the_keys_are_owner_only_files_and_a_readable_one_is_refused(db: S.Store,
                                                                     tmp_path: Path) -> None:
    S.set_permit_key(db, "SP-1", KEY)
    vault = db.vault
    assert isinstance(vault, FileVault)
    (key_file,) = vault.directory.iterdir()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert vault.directory.stat().st_mode & 0o777 == 0o700
    key_file.chmod(0o644)
    with pytest.raises(NotPrivate, match="can be read by other users"):
        S.get_permit_key(db, "SP-1")


def test_a_lost_sealing_key_is_one_line_with_what_to_do(db: S.Store) -> None:
    S.set_permit_key(db, "SP-1", KEY)
    for f in db.vault.directory.iterdir():
        f.unlink()
    with pytest.raises(VaultError, match="is not in the owner-only files") as err:
        S.get_permit_key(db, "SP-1")
    assert "scalppen db key import" in err.value.hint


def test_a_plain_key_from_an_older_version_is_sealed(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALPPEN_HOME", str(tmp_path / "home"))
    path = tmp_path / "home" / "old.db"
    S.open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO pens (serial, permit_key) VALUES ('SP-1', ?)", (KEY,))
    conn.commit()
    conn.close()
    with S.open_store(path) as db:
        assert S.get_permit_key(db, "SP-1") == KEY  # readable as it is
        assert seal_plain_keys(db) == 1
        (stored,) = [bytes(r[0]) for r in db.query("SELECT permit_key FROM pens")]
        assert stored != KEY and len(stored) > 32
        assert S.get_permit_key(db, "SP-1") == KEY


def test_the_bond_file_is_sealed_and_a_plain_one_is_sealed_on_open(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    from bumble.keys import PairingKeys

    monkeypatch.setenv("SCALPPEN_HOME", str(tmp_path / "home"))
    path = tmp_path / "home" / "bonds.json"
    ltk = bytes(range(100, 116))
    plain = {"__DEFAULT__": {"C0:00:00:00:00:01/P": {"ltk": {"value": ltk.hex(),
                                                              "authenticated": True}}}}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(plain))

    async def scenario() -> None:
        store = SealedJsonKeyStore(str(path))
        assert store.is_plain()
        assert await store.seal_if_plain()
        assert path.read_bytes().startswith(MAGIC)
        got = await store.get("C0:00:00:00:00:01/P")
        assert got is not None and got.ltk is not None and got.ltk.value == ltk
        await store.update("C0:00:00:00:00:02/P", PairingKeys.from_dict(
            {"ltk": {"value": bytes(range(16)).hex(), "authenticated": True}}))
        assert len(await store.get_all()) == 2

    asyncio.run(scenario())
    data = path.read_bytes()
    for secret in (ltk, bytes(range(16))):
        assert not any(f in data for f in forms(secret))
    assert path.stat().st_mode & 0o777 == 0o600


def test_db_key_export_and_import_carry_the_sealing_key_to_another_laptop(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    room1, room2 = tmp_path / "room1", tmp_path / "room2"
    env1 = dict(os.environ, SCALPPEN_HOME=str(room1), SCALPPEN_DB=pg_url)
    env2 = dict(os.environ, SCALPPEN_HOME=str(room2), SCALPPEN_DB=pg_url)
    monkeypatch.setenv("SCALPPEN_HOME", str(room1))
    with S.open_store(pg_url) as db:
        S.upsert_pen(db, "SP-1")
        S.set_permit_key(db, "SP-1", KEY)
    probe = ["-c", "from scalppen import paths, store as S; import os;"
             "print(S.get_permit_key(S.open_store(os.environ['SCALPPEN_DB']), 'SP-1').hex())"]
    import sys

    before = subprocess.run([sys.executable, *probe], env=env2, capture_output=True, text=True)
    assert before.returncode != 0 and "is not in the owner-only files" in before.stderr
    exported = tmp_path / "clinic.key"
    out = subprocess.run([*SCALPPEN, "db", "key", "export", str(exported)], env=env1,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert exported.stat().st_mode & 0o777 == 0o600
    got = subprocess.run([*SCALPPEN, "db", "key", "import", str(exported)], env=env2,
                         capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    after = subprocess.run([sys.executable, *probe], env=env2, capture_output=True, text=True)
    assert after.stdout.strip() == KEY.hex(), after.stderr
