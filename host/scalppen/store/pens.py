"""Pens and profiles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from scalppen.policy.history import PenLimits
from scalppen.store.db import Store, from_ts, to_ts, utcnow
from scalppen.store.dialect import Row
from scalppen.store.errors import NotFoundError, StoreError
from scalppen.store.rows import Pen, Profile

ROLES: Final = ("patient", "user", "clinician")


def _pen(row: Row) -> Pen:
    return Pen(
        serial=row["serial"],
        model=row["model"],
        fw_version=row["fw_version"],
        hw_rev=row["hw_rev"],
        ble_address=row["ble_address"],
        paired_at=from_ts(row["paired_at"]),
        limits=json.loads(row["limits_json"]),
        owner_profile_id=row["owner_profile_id"],
        has_key=row["has_key"] == 1,
    )


_PEN_COLS: Final = (
    "serial, model, fw_version, hw_rev, ble_address, paired_at, limits_json, owner_profile_id, "
    "permit_key IS NOT NULL AS has_key"
)


def ensure_pen(db: Store, serial: str) -> None:
    """Make sure a row for ``serial`` exists (log sync may precede pairing)."""
    if not serial:
        raise StoreError("a pen needs a serial number")
    db.execute("INSERT INTO pens (serial) VALUES (?) ON CONFLICT DO NOTHING", (serial,))


def upsert_pen(
    db: Store,
    serial: str,
    *,
    model: str = "",
    fw_version: str = "",
    hw_rev: str = "",
    ble_address: str | None = None,
    limits: Mapping[str, Any] | None = None,
    paired_at: datetime | None = None,
    owner_profile_id: int | None = None,
) -> Pen:
    """Insert a pen or update what it reports (INFO); keeps the key and pairing time.

    Args:
        db: the store.
        serial: the pen's serial number.
        model: model name.
        fw_version: firmware version.
        hw_rev: hardware revision.
        ble_address: Bluetooth address, if known.
        limits: the hard limits of INFO (``Limits`` fields).
        paired_at: set when pairing; left as it was when None.
        owner_profile_id: the profile the pen belongs to, if it has one owner.

    Returns:
        The stored pen.
    """
    with db.transaction():
        ensure_pen(db, serial)
        db.execute(
            "UPDATE pens SET model = ?, fw_version = ?, hw_rev = ?,"
            " ble_address = COALESCE(?, ble_address),"
            " limits_json = COALESCE(?, limits_json),"
            " paired_at = COALESCE(?, paired_at),"
            " owner_profile_id = COALESCE(?, owner_profile_id) WHERE serial = ?",
            (
                model,
                fw_version,
                hw_rev,
                ble_address,
                json.dumps(dict(limits), sort_keys=True) if limits is not None else None,
                to_ts(paired_at) if paired_at is not None else None,
                owner_profile_id,
                serial,
            ),
        )
    return get_pen(db, serial)


def get_pen(db: Store, serial: str) -> Pen:
    """The pen with ``serial``.

    Raises:
        NotFoundError: no such pen.
    """
    row = db.query_one(f"SELECT {_PEN_COLS} FROM pens WHERE serial = ?", (serial,))
    if row is None:
        raise NotFoundError(f"no pen {serial!r} in the database: pair it first")
    return _pen(row)


def list_pens(db: Store) -> list[Pen]:
    """Every pen, by serial."""
    return [_pen(r) for r in db.query(f"SELECT {_PEN_COLS} FROM pens ORDER BY serial")]


def set_permit_key(db: Store, serial: str, key: bytes) -> None:
    """Store the pen's permit key, sealed with this database's key (``store.sealing``)."""
    if len(key) != 32:
        raise StoreError("a permit key is 32 bytes")
    get_pen(db, serial)
    from scalppen.store.sealing import seal_key

    db.execute("UPDATE pens SET permit_key = ? WHERE serial = ?",
               (seal_key(db, serial, key), serial))


def get_permit_key(db: Store, serial: str) -> bytes | None:
    """The pen's permit key, or None if it has none.

    Raises:
        NotFoundError: no such pen.
        VaultError: the key that seals it is not on this computer.
    """
    row = db.query_one("SELECT permit_key FROM pens WHERE serial = ?", (serial,))
    if row is None:
        raise NotFoundError(f"no pen {serial!r} in the database: pair it first")
    stored = row["permit_key"]
    if stored is None:
        return None
    from scalppen.store.sealing import open_key

    return open_key(db, serial, bytes(stored))


def pen_limits(db: Store, serial: str) -> PenLimits:
    """The hard limits the pen last reported, as the policy takes them."""
    return PenLimits.from_info(get_pen(db, serial).limits)


def _profile(row: Row) -> Profile:
    created = from_ts(row["created_at"])
    assert created is not None
    return Profile(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        birth_year=row["birth_year"],
        created_at=created,
        notes=row["notes"],
    )


def add_profile(
    db: Store,
    name: str,
    *,
    role: str = "patient",
    birth_year: int | None = None,
    notes: str = "",
    now: datetime | None = None,
) -> Profile:
    """Add a profile.

    Raises:
        StoreError: empty name, unknown role, or a name another profile has (names
            pick profiles on the command line: two alike would be ambiguous).
    """
    if not name.strip():
        raise StoreError("a profile needs a name")
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    # as the command line matches names (casefold); the schema's unique index
    # (migration 3) is the backstop for two programs adding at once
    key = name.strip().casefold()
    for same in db.query("SELECT id, name FROM profiles"):
        if str(same["name"]).strip().casefold() == key:
            raise StoreError(f"profile {same['id']} is already called {same['name']!r}: give "
                             "another name (e.g. with a family name or an initial)")
    new_id = db.insert(
        "INSERT INTO profiles (name, role, birth_year, created_at, notes) VALUES (?, ?, ?, ?, ?)",
        (name.strip(), role, birth_year, to_ts(now or utcnow()), notes),
    )
    return get_profile(db, new_id)


def get_profile(db: Store, profile_id: int) -> Profile:
    """The profile with ``profile_id``.

    Raises:
        NotFoundError: no such profile.
    """
    row = db.query_one("SELECT * FROM profiles WHERE id = ?", (profile_id,))
    if row is None:
        raise NotFoundError(f"no profile {profile_id}")
    return _profile(row)


def list_profiles(db: Store, role: str | None = None) -> list[Profile]:
    """Every profile (of one role if given), by id."""
    if role is None:
        rows = db.query("SELECT * FROM profiles ORDER BY id")
    else:
        rows = db.query("SELECT * FROM profiles WHERE role = ? ORDER BY id", (role,))
    return [_profile(r) for r in rows]
