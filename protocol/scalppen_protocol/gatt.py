"""The pen's GATT identifiers: one source of truth for host and firmware.

UUIDs are lower-case 128-bit strings (the form bleak reports). The firmware keeps
an equal copy in ``firmware/pen/ble.py``; ``tests/ble/test_gatt_uuids.py`` checks
that both agree.

The pen's own service carries two characteristics:

* request (host -> pen): write and write-without-response, authenticated link only;
  each ATT write is one fragment of a framed request (see ``fragment.py``).
* event (pen -> host): notify, authenticated link only; each notification is one
  fragment of a framed response or event.

Next to it the pen offers the standard Device Information (0x180A) and Battery
(0x180F) services, readable without pairing.
"""

from __future__ import annotations

from typing import Final

_BASE: Final = "-387c-4d32-bf79-1aa4c9d3edbc"

PEN_SERVICE_UUID: Final = "4a780001" + _BASE
REQUEST_CHAR_UUID: Final = "4a780002" + _BASE
EVENT_CHAR_UUID: Final = "4a780003" + _BASE


def sig_uuid(short: int) -> str:
    """A Bluetooth SIG 16-bit UUID as a lower-case 128-bit string."""
    return f"{short:08x}-0000-1000-8000-00805f9b34fb"


DEVICE_INFORMATION_SERVICE_UUID: Final = sig_uuid(0x180A)
MANUFACTURER_NAME_CHAR_UUID: Final = sig_uuid(0x2A29)
MODEL_NUMBER_CHAR_UUID: Final = sig_uuid(0x2A24)
SERIAL_NUMBER_CHAR_UUID: Final = sig_uuid(0x2A25)
FIRMWARE_REVISION_CHAR_UUID: Final = sig_uuid(0x2A26)
HARDWARE_REVISION_CHAR_UUID: Final = sig_uuid(0x2A27)

BATTERY_SERVICE_UUID: Final = sig_uuid(0x180F)
BATTERY_LEVEL_CHAR_UUID: Final = sig_uuid(0x2A19)

CCCD_UUID: Final = sig_uuid(0x2902)

#: The ATT MTU the host asks for and the pen accepts (a 244-byte ATT payload).
PREFERRED_MTU: Final = 247

#: The name the pen advertises (a serial-number suffix may follow).
ADVERTISED_NAME_PREFIX: Final = "ScalpPen"
