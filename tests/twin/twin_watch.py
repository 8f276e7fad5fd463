"""Watching the twin from outside, tick by tick, for the end-to-end suites.

The firmware runs in its own MicroPython process; what a test learns about it, it
learns as the pen's surroundings would:

- :class:`TickTrace`: the body after every control tick (``TwinPen.on_tick``):
  motor duty, cam rate, needle depth, the virtual clock, and which sleep of this
  boot the tick ended with (``Bridge.syncs``).
- :class:`RadioTap`: the pen's radio stack, which is CPython (the bluetooth model
  over bumble): every ATT write it hands the firmware (an ``_IRQ_GATTS_WRITE``
  queued for the next tick boundary), the link events it reports, and every
  notification the firmware sends, each with the tick it belongs to.
- :class:`StepTracer`: where a fact exists only inside the firmware (the length of
  its request queue when a tick begins, the state before and after a tick), a
  small wrapper around ``app.step`` installed with a probe records it in a
  preallocated buffer on the pen's heap (nothing allocated per tick), read back
  16 ticks (128 bytes) a probe.
- :func:`probe`: a probe, asked again when the pen's heap had no room for it;
  :func:`until`: poll a small probe until it holds.
- :func:`e2e_rig`: the twin rig for the end-to-end suites.

Tick numbering: an IRQ queued while ``Bridge.syncs == s`` reaches the firmware in
the reply to sleep ``s + 1`` (IRQs go out only with sleeps), so the first tick that
can act on it is the one ending with sleep ``s + 2``. A notification the firmware
sends in a tick is applied with that tick's messages, before its sleep is counted:
it belongs to the tick ending with sleep ``syncs + 1``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalppen_hardware.twin.pen import TwinPen
from scalppen_hardware.twin.process import DEFAULT_HEAP_KB
from scalppen_hardware.virtual_pen import FIRMWARE_DIR
from tests.e2e.vpen_fixtures import within
from tests.twin.twin_rig import TwinRig, twin_rig

IRQ_CENTRAL_CONNECT = 1
IRQ_CENTRAL_DISCONNECT = 2
IRQ_GATTS_WRITE = 3
FIRST = 0x80  # first fragment of a frame (PROTOCOL.md)


def firmware_const(name: str, module: str = "pen/app.py") -> int:
    """A ``const()`` of the firmware, read from its source (MicroPython keeps
    underscore constants out of the module's globals, so a probe cannot read them)."""
    tree = ast.parse((FIRMWARE_DIR / module).read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
            value = node.value
            if isinstance(value, ast.Call):
                value = value.args[0]
            return int(ast.literal_eval(value))
    raise KeyError(f"{name} not in {module}")


async def probe(twin: TwinPen, expr: str, *, exec_: bool = False, tries: int = 50) -> Any:
    """``twin.probe``, asked again a few ticks later when the pen's heap had no room
    to compile it or to encode its answer.

    Even the smallest probe is compiled on the pen's heap, which takes blocks of
    1 to 1.3 KiB in one piece (measured: the compiler's stacks); at 192 KiB the
    pen's heap is sometimes too fragmented for that. The probe is the test's
    instrument, not the firmware: a failed one says nothing about the pen, and the
    firmware's own allocations go on as they would.
    """
    for _ in range(tries - 1):
        try:
            return await twin.probe(expr, exec_=exec_)
        except RuntimeError as exc:
            if "MemoryError" not in str(exc):
                raise
        await twin.run_for(20)
    return await twin.probe(expr, exec_=exec_)


async def until(twin: TwinPen, expr: str, timeout: float = 10.0, what: str = "") -> Any:
    """Probe ``expr`` at tick boundaries until it is truthy; returns its value."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await probe(twin, expr)
                if value:
                    return value
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what or expr}") from None


@contextlib.asynccontextmanager
async def e2e_rig(tmp: Path, *, speed: float | None = None,
                  heap_kb: int = DEFAULT_HEAP_KB) -> AsyncIterator[TwinRig]:
    """:func:`~tests.twin.twin_rig.twin_rig` for the end-to-end suites (unpaced)."""
    async with twin_rig(tmp, speed=speed, heap_kb=heap_kb) as r:
        yield r


def frame_head(payload: bytes) -> tuple[int, int] | None:
    """(type, seq) of the frame a fragment begins, or None for a later fragment."""
    if len(payload) < 6 or not payload[0] & FIRST:
        return None
    return payload[3], payload[4] | payload[5] << 8


# ---- the body, tick by tick ------------------------------------------------------------------


@dataclass
class Tick:
    """The pen's body right after one control tick (one sleep of the firmware)."""

    sync: int  # the sleep this tick ended with, counted in this boot (Bridge.syncs)
    ms: int  # the pen's ticks_ms when that sleep ended (the next tick begins then)
    world_us: int  # virtual time since the body was powered (never resets)
    duty: float  # motor PWM duty as the motor driver sees it
    rate: float  # strokes/s of the cam
    depth_um: float  # where the needles really are


class TickTrace:
    """Every control tick of the twin, from outside, while ``on``."""

    def __init__(self, twin: TwinPen, on: bool = True) -> None:
        self.twin = twin
        self.on = on
        self.ticks: list[Tick] = []
        twin.on_tick(self._tick)

    def _tick(self, hw: Any) -> None:
        if not self.on:
            return
        bridge = self.twin.bridge
        self.ticks.append(Tick(bridge.syncs if bridge is not None else -1,
                               hw.clock.ticks_ms(), hw.clock.world_us, float(hw.motor.duty),
                               float(hw.stroke_rate), float(hw.depth_um)))

    def __len__(self) -> int:
        return len(self.ticks)

    def at_sync(self, sync: int) -> int:
        """The index of the tick that ended with sleep ``sync``."""
        for i, t in enumerate(self.ticks):
            if t.sync == sync:
                return i
        raise AssertionError(f"no tick ended with sleep {sync} in {len(self.ticks)} ticks")


# ---- the pen's radio stack -------------------------------------------------------------------


@dataclass
class Sent:
    """One notification the firmware sent."""

    sync: int  # the tick that sent it (ended with this sleep)
    payload: bytes


class RadioTap:
    """What the pen's radio stack gives the firmware and what the firmware sends.

    Wraps, for the current boot, ``Bridge.queue_ble`` (the stack queues an IRQ for
    the next tick boundary) and the bluetooth model's ``gatts_notify``; call
    :meth:`attach` again after a reset.
    """

    def __init__(self, twin: TwinPen) -> None:
        self.twin = twin
        self.writes: list[tuple[int, bytes]] = []  # (Bridge.syncs when queued, value)
        self.events: list[tuple[int, int]] = []  # (Bridge.syncs when queued, IRQ number)
        self.sent: list[Sent] = []
        self._bridge: Any = None
        self.attach()

    def attach(self) -> None:
        bridge = self.twin.bridge
        assert bridge is not None and bridge.ble is not None, "the firmware has no radio yet"
        if bridge is self._bridge:
            return
        self._bridge = bridge
        ble = bridge.ble
        queue = bridge.queue_ble

        def queued(event: int, data: Any, ask_id: int) -> None:
            queue(event, data, ask_id)
            if event == IRQ_GATTS_WRITE:
                # the value the firmware's gatts_read() will return for this IRQ
                self.writes.append((bridge.syncs, ble.gatts_read(data[1])))
            else:
                self.events.append((bridge.syncs, event))

        notify = ble.gatts_notify

        def notified(conn: int, handle: int, data: bytes | None = None) -> None:
            notify(conn, handle, data)
            self.sent.append(Sent(bridge.syncs + 1, bytes(data or b"")))

        bridge.queue_ble = queued  # type: ignore[method-assign]
        ble.gatts_notify = notified

    @property
    def received(self) -> list[bytes]:
        """The ATT writes handed to the firmware, in order."""
        return [v for _, v in self.writes]

    def event_sync(self, event: int, since: int = 0) -> int:
        """``Bridge.syncs`` when the stack queued the first ``event`` after index ``since``."""
        for sync, ev in self.events[since:]:
            if ev == event:
                return sync
        raise AssertionError(f"the stack never reported IRQ {event}")

    def answers(self, lo: int = 0, hi: int = 0xFFFF) -> list[tuple[int, int, int]]:
        """(tick, type, seq) of every frame the firmware began sending with a seq in
        ``lo..hi`` (the answers to those requests; events are numbered apart)."""
        out = []
        for s in self.sent:
            head = frame_head(s.payload)
            if head is not None and head[0] < 0xC0 and lo <= head[1] <= hi:
                out.append((s.sync, head[0], head[1]))
        return out


# ---- inside the firmware: a trace of app.step ------------------------------------------------

_REC = struct.Struct("<IBBBB")  # ticks_ms at the start, state before, after, queue, link up
_CHUNK = 64  # records in one of the tracer's buffers (512 bytes)
_READ = 16  # records one read-out probe returns

# Small buffers, not one large one: the pen's heap is fragmented (at 192 KiB the
# largest free block is about 2 KiB while needling).
_INSTALL = """\
import time
bufs = [bytearray(512) for _ in range({chunks})]
n = [0]
step0 = app.step
def traced(now):
    a = app
    i = n[0]
    t = time.ticks_ms()
    s0 = a.pen.state
    q = len(a.rx)
    out = step0(now)
    if i < {count}:
        b = bufs[i >> 6]
        o = (i & 63) * 8
        b[o] = t & 255
        b[o + 1] = (t >> 8) & 255
        b[o + 2] = (t >> 16) & 255
        b[o + 3] = (t >> 24) & 255
        b[o + 4] = s0
        b[o + 5] = a.pen.state
        b[o + 6] = q if q < 255 else 255
        b[o + 7] = 1 if a.ble.link_up else 0
        n[0] = i + 1
    return out
if not hasattr(app, "t_trace"):  # once, should a retried probe run twice
    app.step = traced
    app.t_trace = (bufs, n)
result = 1
"""


@dataclass
class Step:
    """One control tick as the firmware saw it (from :class:`StepTracer`)."""

    ms: int  # ticks_ms when the tick began (low 30 bits, the ESP32's period)
    state: int  # the pen's state when the tick began
    after: int  # ... and when it ended
    queued: int  # ATT writes waiting in the firmware's queue when the tick began
    link_up: bool  # the pen's radio had an authenticated link when the tick ended


class StepTracer:
    """A record of each ``app.step`` from its installation (or the last
    :meth:`restart`) on, up to ``count`` ticks."""

    def __init__(self, twin: TwinPen, count: int = 1024) -> None:
        self.twin = twin
        self.chunks = -(-count // _CHUNK)
        self.count = self.chunks * _CHUNK

    async def install(self) -> None:
        await within(probe(self.twin, _INSTALL.format(chunks=self.chunks, count=self.count),
                           exec_=True), 20.0)

    async def restart(self) -> None:
        """Record from the next tick on, over the same buffers."""
        await within(probe(self.twin, "app.t_trace[1][0] = 0\nresult = 1", exec_=True), 20.0)

    async def read(self) -> list[Step]:
        """The records so far, 16 a probe (an answer of 128 bytes: at 192 KiB the
        pen's heap may not have 1 KiB in one piece)."""
        n = int(await probe(self.twin, "app.t_trace[1][0]"))
        raw = b""
        for i in range(0, n, _READ):
            chunk, at = divmod(i, _CHUNK)
            k = min(_READ, n - i)
            raw += await probe(
                self.twin, f"bytes(memoryview(app.t_trace[0][{chunk}])[{8 * at}:{8 * (at + k)}])")
        return [Step(*_REC.unpack_from(raw, 8 * i)) for i in range(n)]


def join(trace: TickTrace, steps: list[Step]) -> list[tuple[Tick, Step]]:
    """Pair each traced step with the tick (body, from outside) it ended with: a step
    begins when the sleep before it ended, so it pairs with the tick after that one."""
    mask = (1 << 30) - 1
    by_ms: dict[int, int] = {}
    for i, t in enumerate(trace.ticks[:-1]):
        by_ms.setdefault(t.ms & mask, i + 1)
    out = []
    for s in steps:
        at = by_ms.get(s.ms & mask)
        if at is not None:
            out.append((trace.ticks[at], s))
    return out
