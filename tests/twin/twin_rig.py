"""The host and the twin (the firmware bundle in a MicroPython process) on one link.

:func:`twin_rig` builds the bundle as ``scalppen build`` does, lays it on a blank
flash, boots it in the unix port, and opens the host's radio and an empty store.
What the tests learn about the pen they learn as a host does (over Bluetooth),
from its body (the CPython models) or, where a test must look inside, with
:meth:`TwinPen.probe` at a tick boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalppen import store as S
from scalppen.client import Pen
from scalppen.policy import CONTRAINDICATIONS, PermitFields
from scalppen.results import PenStatus
from scalppen.transports.ble import BleTransport
from scalppen.twin import make_twin
from scalppen.workflows.pairing import Paired, pair_pen
from scalppen.workflows.radio import Radio
from scalppen_hardware import ble_radio, upy
from scalppen_hardware.twin.pen import TwinPen
from scalppen_hardware.twin.process import DEFAULT_HEAP_KB
from scalppen_protocol.codes import PenState
from tests.e2e.vpen_fixtures import (
    key_signed_permit,
    permit_key,
    policy_permit,
    wait_until,
    within,
)

EPOCH = 1_780_000_000
#: What the pen's display shows while pairing.
PASSKEY_ON_DISPLAY = re.compile(r"PAIR (\d{6})")


@dataclass
class TwinRig:
    tmp: Path
    twin: TwinPen
    radio: Radio
    db: S.Store
    address: str
    patient_id: int | None = None
    serial: str = ""
    #: Every text the pen's display showed, in order (across resets).
    displays: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.twin.clock.calendar(), UTC)

    async def passkey(self) -> str:
        await wait_until(lambda: self.twin.passkey is not None, 10.0,
                         "a passkey on the pen's display")
        shown = self.twin.passkey
        assert shown is not None
        return f"{shown:06d}"

    def smp_transport(self, hci_port: int, host: str) -> Any:
        """smpclient's own bumble transport to the pen through the twin's HCI bridge on
        ``hci_port``, as a USB dongle would reach it: a central at ``host`` with its
        own bond file, pairing by the passkey the pen shows."""
        from bumble.hci import Address
        from smpclient.transport.bumble import SMPBumbleTransport
        from smpclient.transport.bumble.keystore import Custom
        from smpclient.transport.bumble.pairing import KeyboardOnly

        async def passkey() -> int:
            return int(await self.passkey())

        return SMPBumbleTransport(
            hci=f"tcp-client:127.0.0.1:{hci_port}", host_address=Address(host),
            keystore=Custom(self.tmp / f"smp-bonds-{host.replace(':', '')}.json"),
            pair_on_connect=KeyboardOnly(passkey))

    async def pair(self) -> Paired:
        if self.patient_id is None:
            self.patient_id = S.add_profile(self.db, "Twin patient", birth_year=1985).id
            S.record_screening(self.db, self.patient_id,
                               dict.fromkeys(CONTRAINDICATIONS, False), now=self.now())
        paired = await within(pair_pen(self.radio, self.db, self.address, self.passkey,
                                       self.now, self.patient_id), 30.0)
        self.serial = paired.info.serial
        return paired

    async def start_session(self, pen: Pen, depth_um: int = 500,
                            duration_s: int = 600) -> PermitFields:
        """A permit the host's policy signs, ARM, depth, START; wait until needling."""
        permit = await self.permit(pen, depth_um, duration_s)
        await within(pen.arm(permit.as_dict()))
        await within(pen.set_depth(depth_um))
        await within(pen.start())
        hw = self.twin.hw
        await wait_until(lambda: hw.stroke_rate > 90 and abs(hw.depth_um - depth_um) <= 50,
                         20.0, f"needling at {depth_um} um")
        assert (await within(pen.status())).state == PenState.RUNNING
        return permit

    async def pen(self) -> Pen:
        pen = Pen(self.radio.transport(self.address, attempts=2, retry_delay=0.1), timeout=10.0)
        await within(pen.__aenter__(), 20.0)
        return pen

    def transport(self, **kwargs: Any) -> BleTransport:
        """A fresh transport to the pen (one connect attempt unless told)."""
        kwargs.setdefault("attempts", 1)
        kwargs.setdefault("retry_delay", 0.05)
        return self.radio.transport(self.address, **kwargs)

    def passkeys_seen(self) -> list[str]:
        """Every passkey the display has shown, in order, once each."""
        seen: list[str] = []
        for text in self.displays:
            m = PASSKEY_ON_DISPLAY.search(text)
            if m and (not seen or seen[-1] != m.group(1)):
                seen.append(m.group(1))
        return seen

    async def ready_body(self, pen: Pen) -> None:
        """A full cell, a new cartridge, the pen on the skin; wait until the pen says
        (over ``pen``) that it sees them and is ready."""
        hw = self.twin.hw
        hw.set_battery(90)
        if hw.cartridge is not None:
            hw.remove_cartridge()
            await self.until_status(pen, lambda s: not s.cartridge, "the cartridge out")
        hw.insert_cartridge("new")
        hw.set_contact(True)
        await self.until_status(
            pen, lambda s: s.cartridge and s.contact
            and s.state in (PenState.IDLE, PenState.FINISHED), "the pen to be ready")

    async def until_status(self, pen: Pen, ok: Callable[[PenStatus], object], what: str,
                           timeout: float = 20.0) -> PenStatus:
        """Ask the pen for its status until ``ok(status)``; returns that status."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    status = await within(pen.status())
                    if ok(status):
                        return status
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None

    async def permit(self, pen: Pen, depth_um: int = 500, duration_s: int = 600) -> PermitFields:
        """A permit the host's policy signs for this pen (as ``run_session`` does)."""
        assert self.patient_id is not None, "pair first"
        return await policy_permit(self.db, pen, self.patient_id, self.now(), depth_um,
                                   duration_s)

    def key(self) -> bytes:
        """The pen's permit key, as the host stored it at pairing."""
        return permit_key(self.db, self.serial)

    def signed_permit(self, depth_um: int, duration_s: int, nonce: bytes) -> dict[str, Any]:
        """A permit signed with the pen's key directly (no host policy), valid now."""
        return key_signed_permit(self.db, self.serial, self.twin.unix_time(), depth_um,
                                 duration_s, nonce)


@contextlib.asynccontextmanager
async def twin_rig(tmp: Path, *, speed: float | None = 50.0,
                   heap_kb: int = DEFAULT_HEAP_KB,
                   bundle_dir: Path | None = None, clinic: bool = False,
                   ) -> AsyncIterator[TwinRig]:
    link = ble_radio.new_link()
    twin = make_twin(tmp / "pen-flash", link, speed=speed, epoch=EPOCH, heap_kb=heap_kb,
                     bundle_dir=bundle_dir, clinic=clinic)
    twin.hw.insert_cartridge("new")
    twin.hw.set_contact(True)
    displays: list[str] = []
    twin.on_display(displays.append)
    try:
        await within(twin.start(), 30.0)
        db = S.open_store(tmp / "host.db")
        try:
            async with Radio(link, keystore=tmp / "host-bonds.json") as radio:
                yield TwinRig(tmp, twin, radio, db, twin.radio.address.to_string(False),
                              displays=displays)
        finally:
            db.close()
    finally:
        with contextlib.suppress(Exception):
            await within(twin.stop(), 10.0)
        ble_radio.attach(None)
        upy.uninstall()
