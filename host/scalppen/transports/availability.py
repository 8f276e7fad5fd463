"""Which part is missing when Bluetooth cannot be reached, in one line with what to do.

A command that cannot reach the radio must not blame the pen: "cannot scan: [Errno
2] No such file or directory" meant that this computer runs no BlueZ; a raw
``ConnectionRefusedError`` meant that no ``scalppen sim`` listens on the port.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from scalppen.transports.base import error_chain

#: D-Bus's system bus when DBUS_SYSTEM_BUS_ADDRESS does not say otherwise.
DEFAULT_SYSTEM_BUS = "/run/dbus/system_bus_socket"
_OTHER_BLE = ("or use --ble bumble:usb:0 with a USB Bluetooth dongle, or "
              "--ble bumble:tcp-client:127.0.0.1:PORT to reach `scalppen sim`")


class RadioUnavailable(Exception):
    """This computer's side of Bluetooth is missing or off (not the pen's fault)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def system_bus_path() -> Path | None:
    """The D-Bus system bus socket BlueZ is reached on (None: not a unix socket)."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if not address:
        return Path(DEFAULT_SYSTEM_BUS)
    m = re.search(r"unix:path=([^,;]+)", address)
    return Path(m.group(1)) if m else None


def check_os_stack() -> None:
    """Raise RadioUnavailable when the OS stack cannot work here at all (Linux: no
    D-Bus system bus, so no BlueZ), before anything is tried."""
    if not sys.platform.startswith("linux"):
        return
    bus = system_bus_path()
    if bus is not None and not bus.exists():
        raise no_bluez(f"no D-Bus system bus at {bus}")


def no_bluez(detail: str) -> RadioUnavailable:
    return RadioUnavailable(
        f"this computer's Bluetooth service is not running ({detail}): BlueZ's bluetoothd "
        "is needed for --ble os",
        "install and start BlueZ (e.g. apt install bluez; systemctl start bluetooth), "
        + _OTHER_BLE,
    )


def classify(where: str, exc: BaseException) -> RadioUnavailable | None:
    """The missing part behind ``exc`` raised while opening or using the radio
    ``where`` ("os" or a bumble transport name), or None if it is not about a part."""
    text = " ".join(str(exc).split())
    chain = error_chain(exc)
    if where == "os":
        if any(isinstance(x, FileNotFoundError) for x in chain) or "No such file" in text:
            return no_bluez("the D-Bus system bus or BlueZ was not found")
        if "ServiceUnknown" in text or ("org.bluez" in text and "not provided" in text):
            return no_bluez("bluetoothd is not on the system bus")
        if "No Bluetooth adapters" in text or "NotReady" in text or "powered off" in text:
            return RadioUnavailable(
                "this computer has no Bluetooth adapter switched on",
                "switch Bluetooth on (bluetoothctl power on), plug in an adapter, "
                + _OTHER_BLE)
        return None
    m = re.match(r"tcp-client:([^:]+):(\d+)$", where)
    if m and any(isinstance(x, (ConnectionRefusedError, ConnectionResetError)) for x in chain):
        return RadioUnavailable(
            f"nothing listens at {m.group(1)}:{m.group(2)}",
            "is `scalppen sim` running? it prints the port on its `ble-hci-tcp:` line; "
            "start it, or fix --ble")
    if m and any(isinstance(x, TimeoutError) for x in chain):
        return RadioUnavailable(
            f"{m.group(1)}:{m.group(2)} does not answer as a Bluetooth controller",
            "is it a `scalppen sim`'s ble-hci-tcp port? check --ble")
    if where.startswith("usb:") and ("No such device" in text or "not found" in text.lower()
                                     or any(isinstance(x, OSError) for x in chain)):
        return RadioUnavailable(
            f"no USB Bluetooth dongle at {where}",
            "plug one in (lsusb lists it), or give another index: --ble bumble:usb:1")
    return None
