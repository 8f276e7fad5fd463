"""A host and the full virtual pen on one virtual BLE link, for end-to-end tests.

:func:`rig` powers up a :class:`~scalppen_hardware.virtual_pen.VirtualPen` (the real
firmware ``firmware/pen/app.py`` on virtual hardware and a bumble radio), opens the
host's :class:`~scalppen.workflows.radio.Radio` (a bumble central on the same link,
bonds in a JSON key store) and a fresh SQLite store, and takes them all down again,
restoring the interpreter's ``pen`` modules so later tests see the ones they imported.

Everything that waits is bounded: :func:`run` bounds a whole scenario, :func:`within`
one await, :func:`wait_until` a condition polled on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bumble import hci
from bumble.link import LocalLink

from scalppen import store as S
from scalppen.client import Pen
from scalppen.policy import CONTRAINDICATIONS, PenLimits, PermitFields, issue_permit
from scalppen.policy.permits import sign_permit
from scalppen.transports.ble import BleTransport
from scalppen.workflows.pairing import Paired, pair_pen
from scalppen.workflows.radio import Radio
from scalppen.workflows.session import SessionPlan, decide
from scalppen_hardware import ble_radio, upy
from scalppen_hardware.virtual_pen import VirtualPen
from scalppen_protocol.codes import PenState, RecordKind

T = TypeVar("T")

#: What the pen's display shows while pairing.
PASSKEY_ON_DISPLAY = re.compile(r"PAIR (\d{6})")
#: Virtual seconds per wall second: fast, yet slow enough that the cell does not
#: drain during the radio's wall-clock work (pairing, scanning).
SPEED = 100.0
#: The pen's state names, for messages.
STATE = {int(s): s.name for s in PenState}


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run one scenario on a fresh event loop; a hang fails after ``timeout`` s."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def within(aw: Awaitable[T], timeout: float = 10.0) -> T:
    """Await ``aw`` for at most ``timeout`` wall seconds."""
    return await asyncio.wait_for(aw, timeout)


def refusal_codes(records: Iterable[Any], kind: int, req: int | None = None) -> list[int]:
    """Codes of every refusal of ``kind`` in ``records`` (for request type ``req``),
    the repeats the pen counted (REFUSALS_REPEATED) included, sorted."""
    out: list[int] = []
    for x in records:
        if x.kind == kind and (req is None or x.flags == req):
            out.append(int(x.code))
        elif x.kind == RecordKind.REFUSALS_REPEATED and x.b == kind and (
                req is None or x.flags == req):
            out.extend([int(x.code)] * x.a)
    return sorted(out)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` (every 2 ms of wall time) until true.

    Raises:
        AssertionError: still false after ``timeout`` wall seconds.
    """
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def policy_permit(db: S.Store, pen: Pen, patient_id: int, moment: datetime,
                        depth_um: int = 500, duration_s: int = 600) -> PermitFields:
    """A permit the host's policy signs for the connected pen (as ``run_session``
    does), given the pen's own last session."""
    assert pen.info is not None and pen.info.limits is not None
    status = await within(pen.status())
    last = None
    if status.last_session_end:
        last = (datetime.fromtimestamp(status.last_session_end, UTC),
                status.last_session_depth_um)
    decision = decide(db, pen.info.serial,
                      SessionPlan(patient_id, depth_um, duration_s, attested=True),
                      PenLimits.from_info(asdict(pen.info.limits)), moment, last)
    assert decision.allowed, decision.refusals
    key = S.get_permit_key(db, pen.info.serial)
    assert key is not None
    return issue_permit(decision, key, moment)


def permit_key(db: S.Store, serial: str) -> bytes:
    """The pen's permit key, as the host stored it at pairing."""
    key = S.get_permit_key(db, serial)
    assert key is not None, "pair the pen first"
    return key


def key_signed_permit(db: S.Store, serial: str, unix_now: int, depth_um: int,
                      duration_s: int, nonce: bytes) -> dict[str, Any]:
    """A permit signed with the pen's key directly (no host policy), valid now."""
    return sign_permit(permit_key(db, serial), depth_um, duration_s, unix_now - 5, unix_now + 300, nonce).as_dict()


@dataclass
class Tick:
    """What the pen and its body looked like right after one control tick."""

    ms: int  # the firmware's monotonic ms (resets at each boot)
    link_up: bool
    state: int
    duty: float  # motor PWM duty, 0..1, as the motor driver sees it
    rate: float  # strokes/s of the cam
    depth_um: float  # where the needles really are


@dataclass
class Rig:
    """The pen, the host's radio and store, on one link."""

    tmp: Path
    link: LocalLink
    vpen: VirtualPen
    radio: Radio
    db: S.Store
    address: str
    displays: list[str] = field(default_factory=list)
    trace: list[Tick] = field(default_factory=list)
    patient_id: int | None = None
    serial: str = ""

    # -- clocks -----------------------------------------------------------------------
    def now(self) -> datetime:
        """The host's clock: the virtual world's true date (the pen's RTC starts
        from its cold value after a power cut; the laptop's clock does not)."""
        return datetime.fromtimestamp(self.vpen.clock.calendar(), UTC)

    @property
    def virtual_ms(self) -> float:
        """The pen's virtual time since the body was powered, in ms (never resets)."""
        return self.vpen.clock.world_us / 1000

    # -- the firmware -----------------------------------------------------------------
    @property
    def app(self) -> Any:
        return self.vpen.app

    @property
    def state(self) -> int:
        return int(self.vpen.app.pen.state)

    def state_name(self) -> str:
        return STATE.get(self.state, str(self.state))

    def pen_log(self, kind: int | None = None) -> list[dict[str, int]]:
        """The pen's log records (of ``kind``), oldest first, read from its flash."""
        from pen.store import unpack_record  # the firmware module of the running boot

        recs: list[dict[str, int]] = []
        while True:
            _first, _last, page = self.app.store.read(recs[-1]["seq"] + 1 if recs else 1, 160)
            if not page:
                return [x for x in recs if kind is None or x["kind"] == kind]
            recs += [unpack_record(p) for p in page]

    def record_ticks(self) -> None:
        """Record a :class:`Tick` after every control tick of the current boot."""
        app = self.vpen.app
        step = app.step

        def traced(now_ms: int) -> Any:
            out = step(now_ms)
            hw = self.vpen.hw
            self.trace.append(Tick(now_ms, bool(app.ble.link_up), int(app.pen.state),
                                   float(hw.motor.duty), float(hw.stroke_rate),
                                   float(hw.depth_um)))
            return out

        app.step = traced

    # -- pairing ----------------------------------------------------------------------
    def shown_passkey(self) -> str | None:
        m = PASSKEY_ON_DISPLAY.search(self.vpen.display)
        return m.group(1) if m else None

    def passkey_provider(self, offset: int = 0) -> Callable[[], Awaitable[str]]:
        """What the user types: the passkey on the pen's display (+ ``offset``)."""

        async def provide() -> str:
            await wait_until(lambda: self.shown_passkey() is not None, 5.0,
                             "a passkey on the pen's display")
            shown = self.shown_passkey()
            assert shown is not None
            return f"{(int(shown) + offset) % 1_000_000:06d}"

        return provide

    def passkeys_seen(self) -> list[str]:
        """Every passkey the display has shown, in order, once each."""
        seen: list[str] = []
        for text in self.displays:
            m = PASSKEY_ON_DISPLAY.search(text)
            if m and (not seen or seen[-1] != m.group(1)):
                seen.append(m.group(1))
        return seen

    async def pair(self) -> Paired:
        """Pair through the host's workflow: bond, clock, permit key, stored pen."""
        if self.patient_id is None:
            self.patient_id = S.add_profile(self.db, "E2E patient", birth_year=1985).id
            S.record_screening(self.db, self.patient_id,
                               dict.fromkeys(CONTRAINDICATIONS, False), now=self.now())
        paired = await within(pair_pen(self.radio, self.db, self.address,
                                       self.passkey_provider(), self.now, self.patient_id),
                              15.0)
        self.serial = paired.info.serial
        return paired

    def transport(self, **kwargs: Any) -> BleTransport:
        """A fresh transport to the pen (one connect attempt, short back-off)."""
        kwargs.setdefault("attempts", 1)
        kwargs.setdefault("retry_delay", 0.05)
        return self.radio.transport(self.address, **kwargs)

    async def pen(self, **kwargs: Any) -> Pen:
        """A connected client that has said HELLO (close it with ``await pen.close()``)."""
        pen = Pen(self.transport(**kwargs), timeout=5.0)
        await within(pen.__aenter__(), 15.0)
        return pen

    # -- sessions -----------------------------------------------------------------------
    async def ready_body(self) -> None:
        """A full cell, a new cartridge, the pen on the skin; wait until the pen sees them."""
        hw = self.vpen.hw
        hw.set_battery(90)
        if hw.cartridge is not None:
            hw.remove_cartridge()
            await wait_until(lambda: self.app.pen.cart is None, 5.0, "the cartridge out")
        hw.insert_cartridge("new")
        hw.set_contact(True)
        await wait_until(lambda: self.app.pen.cart is not None and self.app.inp.contact,
                         5.0, "the pen to see its cartridge and the skin")
        await wait_until(lambda: self.state in (PenState.IDLE, PenState.FINISHED), 5.0,
                         "the pen to be ready")

    async def permit(self, pen: Pen, depth_um: int = 500, duration_s: int = 600) -> PermitFields:
        """A permit the host's policy signs for this pen (as ``run_session`` does)."""
        assert self.patient_id is not None, "pair first"
        return await policy_permit(self.db, pen, self.patient_id, self.now(), depth_um,
                                   duration_s)

    def signed_permit(self, depth_um: int, duration_s: int, nonce: bytes) -> dict[str, Any]:
        """A permit signed with the pen's key directly (no host policy), valid now."""
        return key_signed_permit(self.db, self.serial, self.vpen.unix_time(), depth_um,
                                 duration_s, nonce)

    async def start_session(self, pen: Pen, depth_um: int = 500) -> PermitFields:
        """ARM a fresh permit, set the depth, START; wait until needling at that depth."""
        await self.ready_body()
        permit = await self.permit(pen, depth_um)
        await within(pen.arm(permit.as_dict()))
        await within(pen.set_depth(depth_um))
        await within(pen.start())
        hw = self.vpen.hw
        await wait_until(
            lambda: self.state == PenState.RUNNING and hw.stroke_rate > 90
            and abs(hw.depth_um - depth_um) <= 50,
            5.0, f"needling at {depth_um} um",
        )
        return permit


@contextlib.asynccontextmanager
async def rig(tmp: Path, *, speed: float | None = SPEED, name: str = "host") -> AsyncIterator[Rig]:
    """The pen powered up and homed, the host's radio open, an empty store."""
    saved = {k: m for k, m in sys.modules.items() if k == "pen" or k.startswith("pen.")}
    link = ble_radio.new_link()
    vpen = VirtualPen(tmp / "pen-flash", link, speed=speed, epoch=1_780_000_000)
    r: Rig | None = None
    try:
        displays: list[str] = []
        vpen.on_display(displays.append)
        await within(vpen.start())
        await wait_until(lambda: vpen.app.pen.state == PenState.IDLE, 5.0, "homing")
        db = S.open_store(tmp / f"{name}.db")
        try:
            async with Radio(link, keystore=tmp / f"{name}-bonds.json") as radio:
                r = Rig(tmp, link, vpen, radio, db,
                        vpen.radio.address.to_string(False), displays)
                yield r
        finally:
            db.close()
    finally:
        with contextlib.suppress(Exception):
            await within(vpen.stop(), 5.0)
        for key in [k for k in sys.modules if k == "pen" or k.startswith("pen.")]:
            del sys.modules[key]
        sys.modules.update(saved)
        ble_radio.attach(None)
        upy.uninstall()


def radio_silence(vpen: VirtualPen, radio: Radio) -> None:
    """The pen and the host stop hearing each other (out of range, a shielded room).

    The virtual link has no supervision timer, so both controllers report what a
    real one reports when it expires: the connection is gone, reason 0x08
    (connection timeout). No LL_TERMINATE_IND goes over the air.
    """
    reason = hci.HCI_CONNECTION_TIMEOUT_ERROR
    pen_ctrl = vpen.radio.ble._controller
    host_ctrl = radio.central._controller
    for ctrl in (pen_ctrl, host_ctrl):
        for conn in list(ctrl.le_connections.values()):
            ctrl.on_le_disconnected(conn, reason)
