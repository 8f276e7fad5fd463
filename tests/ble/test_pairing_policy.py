"""Who may bond with the pen (``pen/ble.py`` + ``pen/pairing.py``) on the virtual radio.

Only a pairing in which the pen showed its passkey (LE Secure Connections with MITM)
and a 16-byte key bonds; Just Works stores nothing; a pen with a bond pairs a new
host only inside the window opened on the pen; failed passkeys back off; a new
host's permit key revokes the other hosts' bonds.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bleak import BleakClient
from bleak.exc import BleakError
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from pen.pairing import BACKOFF_FIRST_MS, BACKOFF_MAX_MS, FREE_FAILURES, backoff_ms

from scalppen.transports.bumble_bleak import BumbleCentral, open_central
from tests.ble.harness import VirtualPen, run, wait_for
from tests.ble.test_ble_link import _connect, _setup

STRANGER = "F0:5C:A1:00:00:0B"


async def _pair(central: BumbleCentral, pen: VirtualPen, offset: int = 0) -> BleakClient:
    client = await _connect(central)
    await client.pair(passkey_provider=pen.passkey_provider(offset=offset))
    await wait_for(lambda: pen.pen.authenticated)
    return client


async def _attempt(central: BumbleCentral, pen: VirtualPen, offset: int = 0) -> bool:
    """One pairing attempt from ``central``; True if it bonded. Leaves no link."""
    client = await _connect(central)
    try:
        await asyncio.wait_for(client.pair(passkey_provider=pen.passkey_provider(offset)), 8)
        ok = True
    except (BleakError, TimeoutError, EOFError):
        ok = False
    except asyncio.CancelledError:  # bumble: "abort: disconnection event occurred"
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        ok = False
    if client.is_connected:
        await client.disconnect()
    await wait_for(lambda: not pen.pen.connected)
    return ok


async def _stranger(link: LocalLink, tmp_path: Path, name: str = STRANGER) -> BumbleCentral:
    return await open_central(link, address=name, keystore_path=str(tmp_path / f"{name[-2:]}.json"))


def _just_works(central: BumbleCentral, max_key: int = 16) -> None:
    central.device.pairing_config_factory = lambda _conn: PairingConfig(
        sc=True, mitm=False, bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT,
                                 maximum_encryption_key_size=max_key))


def test_a_bonded_pen_pairs_a_new_host_only_inside_the_window(tmp_path: Path) -> None:
    async def scenario() -> None:
        link, pen, host = await _setup(tmp_path)
        client = await _pair(host, pen)  # a pen without a bond is pairable
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)
        host_key = pen.pen.bonds.peers()[0]

        stranger = await _stranger(link, tmp_path)
        # Window closed: no passkey is shown, the link is dropped, nothing stored.
        assert not await _attempt(stranger, pen)
        assert len(pen.shown_passkeys) == 1
        assert pen.pen.bonds.peers() == [host_key]
        assert pen.pen.gate.refused == 1

        pen.window_open = True  # the button held on the pen
        assert await _attempt(stranger, pen)
        assert len(pen.pen.bonds.peers()) == 2 and host_key in pen.pen.bonds.peers()
        assert [n[0] for n in pen.pen.notes] == ["paired", "paired"]
        await stranger.close()
        await _teardown_all(pen, host)

    run(scenario(), 40)


def test_just_works_stores_nothing_and_evicts_nothing(tmp_path: Path) -> None:
    # Refused, NimBLE's overflow handler looks for a bonded peer to unpair
    # (ble_store_util_status_rr): it must find none, or the host's bond would go.
    async def scenario() -> None:
        link, pen, host = await _setup(tmp_path)
        pen.pen.bonds.max_bonds = 1  # a full table: the host is its only bond
        client = await _pair(host, pen)
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)
        before = list(pen.pen.bonds.entries)
        pen.window_open = True  # even inside the window

        stranger = await _stranger(link, tmp_path)
        _just_works(stranger)
        client = await _connect(stranger)
        await asyncio.wait_for(client._backend._conn.pair(), 8)  # type: ignore[attr-defined]
        await wait_for(lambda: pen.pen.encrypted)
        assert not pen.pen.authenticated and pen.shown_passkeys == [pen.shown_passkeys[0]]
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)
        assert pen.pen.bonds.entries == before
        assert pen.radio.irq_errors == []
        await stranger.close()
        await _teardown_all(pen, host)

    run(scenario(), 40)


def test_a_key_shorter_than_16_bytes_does_not_bond_or_link(tmp_path: Path) -> None:
    class Typist(PairingDelegate):
        async def get_number(self) -> int | None:
            return int(await pen.passkey_provider()())

    async def scenario() -> None:
        host.device.pairing_config_factory = lambda _conn: PairingConfig(
            sc=True, mitm=True, bonding=True,
            delegate=Typist(io_capability=PairingDelegate.KEYBOARD_INPUT_ONLY,
                            maximum_encryption_key_size=7))
        client = await _connect(host)
        conn = client._backend._conn  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.pair(), 8)
        await wait_for(lambda: not pen.pen.connected)  # the pen dropped the link
        assert len(pen.shown_passkeys) == 1  # a MITM pairing, the passkey shown
        assert not pen.pen.authenticated and pen.pen.bonds.count() == 0
        assert True not in pen.link_events
        await _teardown_all(pen, host)

    async def setup_and_run() -> None:
        nonlocal pen, host
        _link, pen, host = await _setup(tmp_path)
        await scenario()

    pen: VirtualPen
    host: BumbleCentral
    run(setup_and_run(), 40)


def test_failed_passkeys_back_off_across_reconnects(tmp_path: Path) -> None:
    async def scenario() -> None:
        _link, pen, host = await _setup(tmp_path)
        for _ in range(FREE_FAILURES):
            assert not await _attempt(host, pen, offset=1)  # a wrong passkey
        assert len(pen.shown_passkeys) == FREE_FAILURES
        # Backing off: even the right passkey gets no chance, none is shown.
        assert not await _attempt(host, pen)
        assert len(pen.shown_passkeys) == FREE_FAILURES
        pen.clock_ms += BACKOFF_FIRST_MS - 1
        assert not await _attempt(host, pen)
        pen.clock_ms += 1
        assert not await _attempt(host, pen, offset=1)  # one more wrong: twice the wait
        assert pen.pen.gate.wait_ms() == 2 * BACKOFF_FIRST_MS
        pen.clock_ms += 2 * BACKOFF_FIRST_MS
        assert await _attempt(host, pen)  # right, after the wait
        assert pen.pen.gate.failures == 0 and pen.pen.bonds.count() == 1
        await _teardown_all(pen, host)

    run(scenario(), 60)


def test_backoff_doubles_up_to_its_cap() -> None:
    waits = [backoff_ms(n) for n in range(1, 20)]
    assert waits[:FREE_FAILURES - 1] == [0] * (FREE_FAILURES - 1)
    assert waits[FREE_FAILURES - 1] == BACKOFF_FIRST_MS
    assert all(b == min(2 * a, BACKOFF_MAX_MS) for a, b in
               zip(waits[FREE_FAILURES - 1:], waits[FREE_FAILURES:], strict=False))
    assert waits[-1] == BACKOFF_MAX_MS


def test_a_new_permit_key_revokes_the_other_hosts_bonds(tmp_path: Path) -> None:
    async def scenario() -> None:
        link, pen, host = await _setup(tmp_path)
        stranger = await _stranger(link, tmp_path)
        client = await _pair(stranger, pen)  # the old laptop
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)
        old = pen.pen.bonds.peers()
        pen.window_open = True
        client = await _pair(host, pen)  # the new one, in the window
        new = [p for p in pen.pen.bonds.peers() if p not in old]
        assert pen.pen.revoke_others() == old
        assert pen.pen.bonds.peers() == new and pen.pen.bonds.host == new[0]
        assert pen.pen.notes[-1] == ("revoked", old)
        await client.disconnect()
        await wait_for(lambda: not pen.pen.connected)
        pen.window_open = False
        # The old laptop's keys no longer open the link, nor may it pair again.
        assert not await _attempt(stranger, pen)
        assert pen.pen.bonds.peers() == new
        await stranger.close()
        await _teardown_all(pen, host)

    run(scenario(), 40)


async def _teardown_all(pen: VirtualPen, *centrals: BumbleCentral) -> None:
    await pen.radio.power_off()
    for central in centrals:
        await central.close()
