"""Reaching pens over BLE: the OS's Bluetooth (bleak) or a bumble stack."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from scalppen.private_files import check_private
from scalppen.transports.availability import check_os_stack, classify
from scalppen.transports.base import ExtraMissing, PasskeyProvider
from scalppen.transports.ble import BleTransport, FoundPen, scan

#: Bumble central's own address: kept stable so the pen's bonds stay valid.
CENTRAL_ADDRESS = "F0:5C:A1:00:00:0A"


class Radio:
    """The host's BLE radio.

    Args:
        where: ``"os"`` for the operating system's stack, a bumble transport name
            (``usb:0``, ``tcp-client:127.0.0.1:PORT``), or a bumble ``LocalLink``.
        keystore: file for bumble's bonds (the OS stack keeps its own).
        address: the bumble central's random static address (bonds are bound to it).
    """

    def __init__(self, where: Any = "os", keystore: Path | None = None,
                 address: str = CENTRAL_ADDRESS) -> None:
        self.where = where
        self.keystore = keystore
        self.address = address
        self.central: Any = None

    async def __aenter__(self) -> Self:
        if self.where == "os":
            check_os_stack()
            return self
        if self.keystore is not None:
            check_private(Path(self.keystore), "Bluetooth bond keys")
        try:
            from scalppen.transports.bumble_bleak import open_central
        except ImportError as exc:
            raise ExtraMissing("BLE through bumble", "bumble", "sim") from exc
        try:
            self.central = await open_central(
                self.where, address=self.address,
                keystore_path=str(self.keystore) if self.keystore else None,
            )
        except Exception as exc:
            raise self._explained(exc) from exc
        return self

    def _explained(self, exc: BaseException) -> BaseException:
        """``exc``, or the missing part of this computer's radio behind it."""
        where = self.where if isinstance(self.where, str) else "link"
        return classify(where, exc) or exc

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.central is not None:
            await self.central.close()
            self.central = None
        self._tighten()

    def _tighten(self) -> None:
        """The bond file bumble wrote for this radio is the owner's alone (bumble writes
        it with the process's umask; the command line sets 077, a library caller may not)."""
        if self.keystore is not None:
            with contextlib.suppress(OSError):
                os.chmod(self.keystore, 0o600)

    def transport(self, address: str, **kwargs: Any) -> BleTransport:
        """A fresh transport to the pen at ``address`` (not connected yet)."""
        backend = self.central.client_backend if self.central is not None else None
        return BleTransport(address, backend=backend, **kwargs)

    async def scan(self, timeout: float = 5.0) -> list[FoundPen]:
        """Pens advertising the pen service, strongest first."""
        backend = self.central.scanner_backend if self.central is not None else None
        try:
            return await scan(timeout, backend=backend)
        except Exception as exc:
            raise self._explained(exc) from exc

    async def pair(self, address: str, passkey: PasskeyProvider, **kwargs: Any) -> BleTransport:
        """Connect and pair (LE Secure Connections, passkey entry); returns the transport."""
        transport = self.transport(address, **kwargs)
        try:
            await transport.pair(passkey)
        finally:
            self._tighten()
        return transport
