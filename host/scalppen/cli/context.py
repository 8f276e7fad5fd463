"""Options shared by every command (database, how to reach the pen) and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    #: the database: an SQLite file, or a ``postgresql://`` URL (never a path)
    db: str
    ble: str
    pen: str | None
    serial: str | None = None  # the bench UART (read-only plus STOP) instead of BLE
    _sim: Any = field(default=None, repr=False, compare=False)
    _sim_looked: bool = field(default=False, repr=False, compare=False)

    def bumble_transport(self) -> str | None:
        """The bumble transport name, or None for the OS stack."""
        return self.ble.split(":", 1)[1] if self.ble.startswith("bumble:") else None

    def sim(self) -> Any:
        """The ``scalppen sim`` this command talks to (its control link), or None when
        the pen is not a sim running on this computer."""
        if not self._sim_looked:
            self._sim_looked = True
            if self.bumble_transport() is not None and not self.serial:
                from scalppen.simlink import find_sim

                self._sim = find_sim(self.ble)
        return self._sim

    def now(self) -> datetime:
        """The time the policy judges by (aware, UTC): this computer's clock, or, when
        the pen is a ``scalppen sim``, the sim's virtual clock, which its pen reads too
        (one clock for the policy and the pen, whatever the sim's speed)."""
        sim = self.sim()
        return sim.now() if sim is not None else datetime.now(UTC)


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
