"""Bonds on the twin (the firmware bundle in MicroPython): a pen with a bond pairs a
new computer only inside the window its button opens (as ``scalppen sim`` holds it),
and the new computer's permit key revokes the old computer's bond; the pair
workflow names what was dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalppen import store as S
from scalppen.sim import PAIR_HOLD_MS, hold_button
from scalppen.transports.base import PairingFailed
from scalppen.workflows.pairing import pair_pen
from scalppen.workflows.radio import CENTRAL_ADDRESS, Radio
from tests.e2e.vpen_fixtures import run, within
from tests.twin.twin_rig import twin_rig

NEW_LAPTOP = "F0:5C:A1:00:00:0C"


def test_a_new_computer_pairs_only_in_the_window_and_revokes_the_old_bond(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path) as rig:
            await rig.pair()  # a pen without a bond pairs
            twin = rig.twin
            old_host = await twin.probe("app.ble.bonds.peers()")
            assert len(old_host) == 1
            db = S.open_store(tmp_path / "new-laptop.db")
            try:
                async with Radio(twin.link, keystore=tmp_path / "new-bonds.json",
                                 address=NEW_LAPTOP) as radio:
                    # Window closed: refused before any passkey, nothing stored.
                    with pytest.raises(PairingFailed):
                        await within(pair_pen(radio, db, rig.address, rig.passkey, rig.now),
                                     30.0)
                    assert len(rig.passkeys_seen()) == 1
                    assert await twin.probe("app.ble.bonds.peers()") == old_host
                    assert await twin.probe("app.ble.gate.refused") == 1

                    await hold_button(twin, PAIR_HOLD_MS)  # what `scalppen sim` does
                    assert await twin.probe("app.pen.pairing_open()") is True
                    paired = await within(
                        pair_pen(radio, db, rig.address, rig.passkey, rig.now), 30.0)
                    assert paired.new_key
                    assert paired.revoked == (CENTRAL_ADDRESS,)  # read from its log
            finally:
                db.close()
            peers = await twin.probe("app.ble.bonds.peers()")
            assert len(peers) == 1 and peers != old_host
            assert await twin.probe("app.ble.bonds.host") == peers[0]
            assert await twin.probe("app.pen.pairing_open()") is False  # closed by SET_KEY

            # The old computer's bond is gone: its keys no longer open the link.
            with pytest.raises(Exception):  # noqa: B017  (NotPaired or a refused pairing)
                pen = await rig.pen()
                await within(pen.status())

    run(scenario(), 150)
