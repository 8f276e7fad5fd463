"""This toolkit's identity: a random id made with the database.

A signed clearance names the toolkit it is for, so one made for another patient's
computer does not clear a lock here; the key that seals this database's permit
keys is filed in the vault under it.
"""

from __future__ import annotations

from scalppen.store.db import Store
from scalppen.store.errors import StoreError


def toolkit_id(db: Store) -> str:
    """The 16-hex-digit id of the toolkit this database belongs to."""
    row = db.query_one("SELECT toolkit_id FROM toolkit WHERE one = 1")
    if row is None:
        raise StoreError("the database has no toolkit id: it is damaged")
    return str(row["toolkit_id"])
