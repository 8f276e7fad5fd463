"""The virtual pen's Bluetooth radio: a bumble controller on an in-process link.

A :class:`VirtualRadio` is the pen's radio chip: a link to sit on and a random
static address. Each boot of the pen's firmware gets a fresh controller and host
stack (created by the virtual ``bluetooth`` module when the firmware calls
``BLE().active(True)``), as a real reset of the ESP32 would.

Which radio ``bluetooth.BLE()`` uses is set with :func:`attach`. The registry
lives here, not in the ``bluetooth`` module, so that it is one object even when
that module is imported both as ``bluetooth`` (by the firmware) and as
``scalppen_hardware.upy.bluetooth``.

:class:`LinkController` is bumble's virtual controller with one quirk fixed:
cancelling a pending LE connection (the peer is absent) clears the pending
request and reports the failure, so a timed-out connect does not hang.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.link import LocalLink

_log = logging.getLogger(__name__)

#: Advertising intervals are wall-clock on the virtual link; longer ones are capped.
DEFAULT_ADV_INTERVAL_CAP_MS = 40.0


class LinkController(Controller):
    """bumble's virtual controller, with LE Create Connection Cancel that works."""

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        self.pending_le_connection = None
        if pending is not None:
            # Vol 4, Part E, 7.8.13: after the Command Complete, an LE Connection
            # Complete event with status "Unknown Connection Identifier".
            asyncio.get_running_loop().call_soon(self._report_cancelled, pending.peer_address)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def _report_cancelled(self, peer_address: hci.Address) -> None:
        self.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=peer_address.address_type,
                peer_address=peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
        )

    def detach(self) -> None:
        """Leave the link (the radio is switched off)."""
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        self.pending_le_connection = None
        if self.link is not None and self in self.link.controllers:
            self.link.remove_controller(self)


class VirtualRadio:
    """The pen's radio: a link, a random static address, a name for logs.

    Args:
        link: the in-process link shared with the centrals.
        address: random static address, ``"C0:5C:A1:00:00:01"`` (top two bits set).
        name: a label for logs.
        adv_interval_cap_ms: advertising intervals the firmware asks for are
            capped to this (the virtual link's advertising runs on the wall clock).
    """

    def __init__(
        self,
        link: LocalLink,
        address: str,
        *,
        name: str = "pen",
        adv_interval_cap_ms: float = DEFAULT_ADV_INTERVAL_CAP_MS,
    ) -> None:
        self.link = link
        self.address = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
        if (self.address.address_bytes[5] & 0xC0) != 0xC0:
            raise ValueError(f"{address} is not a random static address (top bits 11)")
        self.name = name
        self.adv_interval_cap_ms = adv_interval_cap_ms
        #: The ``bluetooth.BLE`` singleton of the current boot (None before the first).
        self.ble: Any = None
        #: Exceptions raised by the firmware's IRQ handler (MicroPython prints them).
        self.irq_errors: list[BaseException] = []

    def new_controller(self) -> LinkController:
        """A fresh controller on the link, for a new boot of the pen."""
        return LinkController(f"{self.name}-ctrl", link=self.link)

    async def power_off(self, timeout: float = 5.0) -> None:
        """Switch the radio off (the pen reboots or dies): links drop, bonds stay.

        The next ``bluetooth.BLE()`` on this radio is a new instance, as after a
        reset of the pen.
        """
        ble = self.ble
        self.ble = None
        if ble is not None:
            await ble._shutdown(timeout)

    def __repr__(self) -> str:
        return f"VirtualRadio({self.name}, {self.address.to_string(False)})"


_current: contextvars.ContextVar[VirtualRadio | None] = contextvars.ContextVar(
    "scalppen_radio", default=None
)
_default: VirtualRadio | None = None


def attach(radio: VirtualRadio | None) -> None:
    """Make ``bluetooth.BLE()`` use ``radio`` (in this context and as the default).

    Tasks created afterwards inherit the context, so several virtual pens in one
    process each see their own radio when each is started after its own attach.
    """
    global _default
    _default = radio
    _current.set(radio)


def current() -> VirtualRadio:
    """The radio ``bluetooth.BLE()`` should use.

    Raises:
        OSError: no radio attached (as ``BLE()`` fails on a board without one).
    """
    radio = _current.get() or _default
    if radio is None:
        raise OSError(19, "no virtual radio attached (scalppen_hardware.ble_radio.attach)")
    return radio


def new_link() -> LocalLink:
    """A new in-process link (the "air" the virtual pen and centrals share)."""
    return LocalLink()
