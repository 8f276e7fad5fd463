"""Opening the session store for a command, and finding the profile or pen it names.

Shared by the commands that work on the database only (``profile``, ``screen``,
``adverse``, ``clear``, ``lockouts``, ``report``, ``logs``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from scalppen.cli.common import UsageError
from scalppen.cli.context import options
from scalppen.store import (
    NotFoundError,
    Pen,
    Profile,
    Store,
    get_profile,
    list_pens,
    list_profiles,
    open_store,
)

#: How long a command waits for another program's write lock on the database.
LOCK_TIMEOUT_S: float = 5.0


def open_db(ctx: typer.Context) -> Store:
    """Open (creating if needed) the database named by ``--db``.

    Raises:
        StoreError: locked, damaged, not private, or from a newer version (one line).
    """
    from scalppen import actor

    store = open_store(options(ctx).db, timeout_s=LOCK_TIMEOUT_S)
    store.actor = actor.current()
    if not store.read_only:
        from scalppen.store.sealing import seal_plain_keys

        try:
            seal_plain_keys(store)  # permit keys an older version stored plain
        except BaseException:
            store.close()
            raise
    return store


def pen_spec(ctx: typer.Context, local: str | None) -> str | None:
    """The pen a command is about: its own ``--pen``, else the global one."""
    return local if local else options(ctx).pen


def parse_time(text: str, option: str = "--now") -> datetime:
    """An ISO 8601 time from the command line; without an offset it is taken as UTC.

    Raises:
        UsageError: not an ISO 8601 time.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 time", "e.g. 2026-03-01T12:00+01:00"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _who(profiles: list[Profile]) -> str:
    return ", ".join(f"{p.id} {p.name}" for p in profiles)


def resolve_profile(db: Store, spec: str | None, *, owner_of: Pen | None = None) -> Profile:
    """The profile named on the command line (id or name), or the only one there is.

    Without ``spec``: the owner of ``owner_of`` if it has one, else the only patient
    profile.

    Raises:
        NotFoundError: no such profile, or no profile at all.
        UsageError: the name is ambiguous, or there are several profiles to choose from.
    """
    if spec is not None and spec.strip():
        text = spec.strip()
        if text.isdigit():
            try:
                return get_profile(db, int(text))
            except NotFoundError:
                raise NotFoundError(f"no profile {text}: see `scalppen profile list`") from None
        named = [p for p in list_profiles(db) if p.name.casefold() == text.casefold()]
        if len(named) == 1:
            return named[0]
        if named:
            raise UsageError(
                f"several profiles are named {text!r} ({_who(named)})", "pass the profile's id"
            )
        raise NotFoundError(f"no profile named {text!r}: see `scalppen profile list`")
    if owner_of is not None and owner_of.owner_profile_id is not None:
        return get_profile(db, owner_of.owner_profile_id)
    patients = [p for p in list_profiles(db) if p.role != "clinician"]
    if len(patients) == 1:
        return patients[0]
    if not patients:
        raise NotFoundError("no patient profile yet: add one with `scalppen profile add NAME`")
    raise UsageError(
        f"there are several profiles ({_who(patients)})", "choose one with --profile ID|NAME"
    )


def resolve_pen(db: Store, spec: str) -> Pen:
    """The known pen with this serial number or Bluetooth address.

    Raises:
        NotFoundError: no such pen in the database.
    """
    text = spec.strip()
    pens = list_pens(db)
    for pen in pens:
        if pen.serial == text:
            return pen
    for pen in pens:
        if pen.ble_address and pen.ble_address.casefold() == text.casefold():
            return pen
    known = ", ".join(p.serial for p in pens) or "none"
    raise NotFoundError(f"no pen {text!r} in the database (known: {known}): pair it first")
