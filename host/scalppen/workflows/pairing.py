"""Pairing a pen with this computer: bond, set its clock, give it a permit key, remember it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from scalppen import store as S
from scalppen.client import Pen
from scalppen.results import PenInfo
from scalppen.transports.base import PasskeyProvider
from scalppen.workflows.radio import Radio
from scalppen_protocol.codes import RecordKind

#: Log records read back after a new permit key to find the bonds it revoked (the
#: pen keeps 8 bonds: at most 7 BONDS_REVOKED records follow its KEY_SET).
_TAIL_RECORDS = 16


class KeyConflict(Exception):
    """The pen already holds a permit key this computer does not know."""

    hint = "hold the pen's button for 3 s to open pairing, then pair again"


@dataclass(frozen=True)
class Paired:
    info: PenInfo
    address: str
    new_key: bool
    #: Addresses of the hosts whose bonds the pen dropped for the new permit key.
    revoked: tuple[str, ...] = ()


async def pair_pen(
    radio: Radio,
    db: S.Store,
    address: str,
    passkey: PasskeyProvider,
    now: Callable[[], datetime],
    owner_profile_id: int | None = None,
) -> Paired:
    """Pair with the pen at ``address`` and register it in the store.

    The permit key (32 random bytes) is created here, sent once over the
    authenticated link and kept only in the store (file mode 0600).

    Raises:
        PairingFailed: wrong passkey or timeout; KeyConflict; TransportError.
    """
    transport = await radio.pair(address, passkey)
    revoked: tuple[str, ...] = ()
    async with Pen(transport) as pen:
        info = pen.info
        assert info is not None
        known = _known_key(db, info.serial)
        new_key = False
        key = known
        if not info.key_set or key is None:
            key = secrets.token_bytes(32)
            try:
                await pen.set_key(key)
            except Exception as exc:
                if info.key_set:
                    raise KeyConflict(
                        f"pen {info.serial} already has a permit key from another computer"
                    ) from exc
                raise
            new_key = True
            revoked = await _revoked_bonds(pen)
        S.upsert_pen(
            db, info.serial, model=info.model, fw_version=info.fw_version, hw_rev=info.hw_rev,
            ble_address=address, limits=info.limits.__dict__ if info.limits else None,
            paired_at=now(), owner_profile_id=owner_profile_id,
        )
        if new_key:
            S.set_permit_key(db, info.serial, key)
        # the clock, signed with the key now stored (read now: pairing took a while)
        await pen.set_time(int(now().timestamp()), key)
    return Paired(info=info, address=address, new_key=new_key, revoked=revoked)


def bond_address(a: int, b: int) -> str:
    """The host address a PAIRED / BONDS_REVOKED record names from its ``a`` (the
    address's low four bytes) and ``b`` (its top two), least significant first."""
    raw = int(a).to_bytes(4, "little") + (int(b) & 0xFFFF).to_bytes(2, "little")
    return ":".join(f"{x:02X}" for x in reversed(raw))


async def _revoked_bonds(pen: Pen) -> tuple[str, ...]:
    # The pen logs one BONDS_REVOKED record per host right after its KEY_SET.
    last = (await pen.read_log(1, 1)).last_seq
    page = await pen.read_log(max(1, last - _TAIL_RECORDS + 1), _TAIL_RECORDS)
    revoked: list[str] = []
    for record in page.records:
        if record.kind == RecordKind.KEY_SET:
            revoked = []
        elif record.kind == RecordKind.BONDS_REVOKED:
            revoked.append(bond_address(record.a, record.b))
    return tuple(revoked)


def _known_key(db: S.Store, serial: str) -> bytes | None:
    try:
        return S.get_permit_key(db, serial)
    except S.NotFoundError:
        return None
