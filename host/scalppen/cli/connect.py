"""Finding the pen a command means, and connecting to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from scalppen import paths
from scalppen import store as S
from scalppen.cli import storage
from scalppen.cli.common import UsageError
from scalppen.cli.context import Options
from scalppen.cli.penlock import pen_lock
from scalppen.client import Pen
from scalppen.workflows.radio import Radio


@dataclass(frozen=True)
class Target:
    serial: str
    address: str


def resolve_pen(db: S.Store, wanted: str | None) -> Target:
    """The known pen named by ``--pen`` (serial or address), or the only paired pen."""
    if wanted:
        pen = storage.resolve_pen(db, wanted)
        if not pen.ble_address:
            raise UsageError(f"pen {pen.serial} has no Bluetooth address",
                             "pair it with `scalppen pair`")
        return Target(pen.serial, pen.ble_address)
    paired = [p for p in S.list_pens(db) if p.ble_address]
    if not paired:
        raise UsageError("no paired pen", "run `scalppen pair` first")
    if len(paired) > 1:
        names = ", ".join(p.serial for p in paired)
        raise UsageError(f"several pens are known ({names})", "choose one with --pen SERIAL")
    return Target(paired[0].serial, str(paired[0].ble_address))


def radio_for(opts: Options) -> Radio:
    transport = opts.bumble_transport()
    return Radio(transport or "os", keystore=paths.keystore() if transport else None)


def target_for(db: S.Store, opts: Options) -> Target | None:
    """The pen a command talks to; None over the bench serial port (HELLO names it)."""
    if opts.serial and not opts.pen:
        return None
    return resolve_pen(db, opts.pen)


@asynccontextmanager
async def connected_pen(opts: Options, target: Target | None) -> AsyncIterator[Pen]:
    """Connect to the pen (the paired BLE link, or the bench serial port) and say HELLO."""
    if opts.serial:
        from scalppen.transports.serial import SerialTransport

        with pen_lock(opts.serial):
            async with Pen(SerialTransport(opts.serial)) as pen:
                yield pen
        return
    if target is None:
        raise UsageError("no pen to connect to", "pair one with `scalppen pair`")
    with pen_lock(target.serial or target.address):
        async with radio_for(opts) as radio, Pen(radio.transport(target.address)) as pen:
            yield pen


def pen_serial(target: Target | None, pen: Pen) -> str:
    """The serial number of the connected pen."""
    if target is not None:
        return target.serial
    assert pen.info is not None
    return pen.info.serial
