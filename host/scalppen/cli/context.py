"""Options shared by every command (database, how to reach the pen) and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from scalppen import paths
from scalppen.cli.common import UsageError

BLE_HELP = (
    "how to reach the pen over BLE: 'os' (this computer's Bluetooth, the default) or "
    "'bumble:<transport>' (e.g. bumble:usb:0, bumble:tcp-client:127.0.0.1:PORT from "
    "`scalppen sim`)"
)


@dataclass
class Options:
    db: Path
    ble: str
    pen: str | None
    serial: str | None = None  # the bench UART (read-only plus STOP) instead of BLE

    def bumble_transport(self) -> str | None:
        """The bumble transport name, or None for the OS stack."""
        return self.ble.split(":", 1)[1] if self.ble.startswith("bumble:") else None


def validate_ble(spec: str) -> str:
    if spec == "os":
        return spec
    if spec.startswith("bumble:") and len(spec) > len("bumble:"):
        return spec
    raise UsageError(
        f"unknown --ble value {spec!r}", "use 'os' or 'bumble:<transport>', e.g. bumble:usb:0"
    )


def options(ctx: typer.Context) -> Options:
    """The shared options of this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Options):
        obj = Options(db=paths.default_db(), ble="os", pen=None)
        ctx.find_root().obj = obj
    return obj
