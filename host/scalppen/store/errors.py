"""Errors the session store raises. Each message is one line a user can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class DatabaseLockedError(StoreError):
    """Another program holds the database's write lock for too long."""


class CorruptDatabaseError(StoreError):
    """The file is not an SQLite database, or it is damaged."""


class InsecurePermissionsError(StoreError):
    """The database file can be read or written by other users."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer version of this program."""


class ReadOnlyDatabaseError(StoreError):
    """The database (or its directory) cannot be written: read commands still work."""


class NotFoundError(StoreError, LookupError):
    """A pen, profile, session or other row does not exist."""


class ExportFormatError(StoreError, ValueError):
    """An unknown export format or data set."""
