"""BleTransport over bumble: the virtual pen's real GATT service, pairing with a passkey.

The pen side here echoes every ATT write back as a notification, so a frame sent
through BleTransport's fragmentation comes back through its reassembly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("bumble")

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT / "hardware" / "scalppen_hardware" / "upy", ROOT / "firmware"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bumble.link import LocalLink  # noqa: E402
from pen import wire  # noqa: E402

from scalppen.transports.base import NotPaired, PairingFailed  # noqa: E402
from scalppen.transports.ble import BleTransport, scan  # noqa: E402
from scalppen.transports.bumble_bleak import open_central  # noqa: E402
from scalppen_protocol import gatt  # noqa: E402
from tests.ble.harness import PEN_ADDRESS, VirtualPen, run  # noqa: E402
from tests.client.scripted_pen import make_record  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_ble_transport_pairs_and_round_trips_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        link = LocalLink()
        pen = VirtualPen(link, tmp_path / "ble_secrets.json")
        pen.boot()
        await pen.ble.idle()
        central = await open_central(link)
        ble = BleTransport(PEN_ADDRESS, backend=central.client_backend, retry_delay=0.05)
        try:
            found = await scan(0.5, backend=central.scanner_backend)
            assert [f.address.upper() for f in found] == [PEN_ADDRESS]

            with pytest.raises(NotPaired):
                await ble.connect()
            with pytest.raises(PairingFailed):
                await ble.pair(pen.passkey_provider(offset=1))
            await ble.pair(pen.passkey_provider())
            assert ble.connected and ble.mtu == gatt.PREFERRED_MTU

            frame = wire.encode(wire.T_LOG_PAGE, 3, {
                "first_seq": 1, "last_seq": 40,
                "records": [make_record(s) for s in range(1, 41)]})
            await ble.send_frame(frame)
            assert await ble.recv_frame(timeout=5) == frame
            assert ble.link_errors == 0
        finally:
            await ble.close()
            await pen.radio.power_off()
            await central.close()

    run(scenario(), timeout=45)
