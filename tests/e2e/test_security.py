"""Attacks and abuse over the real virtual BLE link, against the pen's full firmware.

The pen is the twin: the firmware bundle ``scalppen build`` makes, in a real
MicroPython process (``tests/twin/twin_rig.py``), over the NimBLE-faithful
bluetooth model. The tests watch it as its surroundings would (the host's requests
and answers, the radio stack that hands it ATT writes, the body's trace tick by
tick: ``tests/twin/twin_watch.py``) and, where a fact exists only inside the
firmware, read it with a small probe at a tick boundary.

Permits the pen must refuse although some are correctly signed (expired, dated in
the future, a window that ends before it begins, beyond the firmware's hard
limits, signed with another pen's key); a central bonded by Just Works (encrypted,
not authenticated) that tries to ARM; malformed traffic (frames above MAX_FRAME,
ATT writes above the attribute size, fragments out of order, a flood of garbage
fragments); and a flood of requests during a running session, during which the
control loop must keep every tick, serve only its per-tick share and stop the
motor at the very next tick when the skin is lost or the cam stalls.

Already covered in ``test_virtual_link.py`` (not repeated here): an unpaired
central is refused, a wrong passkey leaves no bond, a forged tag and a replayed
permit are refused.

Times are the pen's virtual time; waits are bounded on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError

from scalppen import store as S
from scalppen.client import Pen, PenRefused
from scalppen.policy import PenLimits
from scalppen.policy.permits import issue_permit, sign_permit
from scalppen.transports.ble_framing import BleFramer
from scalppen.transports.bumble_bleak import open_central
from scalppen.workflows.session import SessionPlan, decide
from scalppen_protocol import gatt
from scalppen_protocol.codec import Frame, decode_frame, encode_frame
from scalppen_protocol.codes import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    ErrorCode,
    MsgType,
    PenState,
    RecordKind,
)
from tests.e2e.vpen_fixtures import radio_silence, refusal_codes, run, wait_until, within
from tests.twin.twin_rig import TwinRig
from tests.twin.twin_watch import (
    IRQ_CENTRAL_DISCONNECT,
    RadioTap,
    Step,
    StepTracer,
    TickTrace,
    e2e_rig,
    firmware_const,
    join,
    probe,
    until,
)

pytestmark = pytest.mark.timeout(120)

INSUFFICIENT_AUTHENTICATION = 0x05
INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
FIRST, LAST = 0x80, 0x40
HOUR = 3600
#: The firmware's request queue and its per-tick shares (pen/app.py).
RX_LIMIT = firmware_const("_RX_LIMIT")
RX_PER_TICK = firmware_const("_RX_PER_TICK")
RX_PER_TICK_RUNNING = firmware_const("_RX_PER_TICK_RUNNING")
#: The pen's time unpaced (about 100 times the wall clock's, as fast as the twin
#: runs). A paced twin's idle clock turns a wall-clock stall of the MicroPython
#: process (a long reply to parse, a busy machine) into the stall times the speed
#: of virtual time (at 50, 50 ms is 2.5 s: past the 1 s watchdog); unpaced, into
#: the stall itself.
SPEED = None
#: Heaps for the tests that burst writes at the pen. The twin's bridge hands the
#: firmware every ATT write that reached the pen's radio since the last tick in one
#: reply, which its stand-in parses on the pen's heap (NimBLE on the ESP32 hands
#: them over one at a time, from C, and allocates nothing there). The virtual link
#: carries bursts far beyond what BLE connection events would (64 writes in one
#: tick; a 4 KiB frame's 18 fragments in two), and at the default 192 KiB, where
#: the largest free block is about 2 KiB, parsing such a reply raises MemoryError in
#: the stand-in and ends the firmware's loop (measured: 1.5 to 4 KiB refused). Not
#: the firmware's heap use: the pen's own heap also grows on demand (fidelity.md).
BURST_HEAP_KB = 320  # fragments of frames up to MAX_FRAME + 300 bytes
FLOOD_HEAP_KB = 768  # hundreds of writes: bursts of 64, or 192 (a 48 KiB reply) at once

# ---- helpers ----------------------------------------------------------------------------------


def _permit(key: bytes, depth_um: int, duration_s: int, issued_at: int, expires_at: int,
            nonce: bytes) -> dict[str, Any]:
    """A permit signed with ``key`` exactly as given (no host policy in the way)."""
    return sign_permit(key, depth_um, duration_s, issued_at, expires_at, nonce).as_dict()


async def _pen_now(pen: Pen) -> int:
    """The pen's own clock (what it checks permits against), as it reports it."""
    return int((await within(pen.status())).clock)


async def _log(pen: Pen, kind: int) -> list[Any]:
    """The pen's log records of ``kind``, oldest first, read over the link."""
    synced = await within(pen.sync_log(1), 20.0)
    return [x for x in synced.records if x.kind == kind]


#: What a request could change inside the pen: state, permit, settings, flash, link
#: (in small probes: each is compiled on the pen's own, fragmented heap).
_SNAPSHOT = (
    "(app.pen.state, app.pen.fault, "
    "sorted(app.pen.permit.items()) if app.pen.permit else None)",
    "(app.pen.session_open, app.pen.depth.setting_um, app.pen.motor.level, app.pen.key())",
    "__import__('json').dumps(app.store.c)",
    "(app.store.last_seq(), app.handler.hello, app.ble.link_up)",
)


async def _snapshot(r: TwinRig) -> dict[str, Any]:
    return {"pen": [await probe(r.twin, part) for part in _SNAPSHOT], "boots": r.twin.boots,
            "errors": list(r.twin.errors)}


async def _refused(pen: Pen, permit: dict[str, Any]) -> ErrorCode | int:
    with pytest.raises(PenRefused) as refused:
        await within(pen.arm(permit))
    return refused.value.code


async def _idle_unarmed(pen: Pen) -> None:
    status = await within(pen.status())
    assert status.state == PenState.IDLE and status.permit_depth_um == 0


def _client(pen: Pen) -> BleakClient:
    client = pen.transport.bleak_client  # type: ignore[attr-defined]
    assert client is not None
    return client


async def _write(pen: Pen, payload: bytes, response: bool = True) -> None:
    """One raw ATT write to the pen's request characteristic, as the host's radio."""
    await within(_client(pen).write_gatt_char(gatt.REQUEST_CHAR_UUID, payload,
                                              response=response))


def _fragments(frame: bytes, chunk: int, counter: int) -> list[bytes]:
    """``frame`` cut into fragments of ``chunk`` frame bytes (PROTOCOL.md)."""
    parts = [frame[i:i + chunk] for i in range(0, len(frame), chunk)]
    return [bytes(((FIRST if i == 0 else 0) | (LAST if i == len(parts) - 1 else 0) | counter,
                   i)) + p for i, p in enumerate(parts)]


def _answers(pen: Pen) -> list[Frame]:
    """Every frame the host's transport receives from the pen, decoded."""
    seen: list[Frame] = []
    transport: Any = pen.transport
    deliver = transport._deliver

    def delivered(frame: bytes) -> None:
        seen.append(decode_frame(frame))
        deliver(frame)

    transport._deliver = delivered
    return seen


async def _pen_took(r: TwinRig, tap: RadioTap, n: int) -> None:
    """Wait until the pen's radio handed the firmware ``n`` writes and the firmware
    served its queue, then two more ticks."""
    await wait_until(lambda: len(tap.writes) >= n, 10.0, f"the pen's radio to take {n} writes")
    await until(r.twin, "not app.rx", 20.0, "the firmware to serve its queue")
    await within(r.twin.run_for(20))


async def _still_answers(r: TwinRig, pen: Pen, before: dict[str, Any]) -> None:
    """The pen is up, its reassembler idle, its state as before, and it answers."""
    assert await probe(r.twin, "app.reasm.busy()") is False
    status = await within(pen.status())
    assert status.state == before["pen"][0][0]
    assert await _snapshot(r) == before


def _queued_probe(r: TwinRig, expr: str, exec_: bool = False) -> asyncio.Task[Any]:
    """A probe asked now; while the twin is paused it runs at the boundary it is held
    at, after the IRQs that came meanwhile were delivered and before the next tick."""
    return asyncio.ensure_future(r.twin.probe(expr, 20.0, exec_=exec_))


# ---- (a) permits outside their validity window -------------------------------------------


def test_expired_future_dated_and_inverted_permits_are_refused_and_logged(tmp_path: Path) -> None:
    """The firmware checks a permit's window against its own clock: expired, issued
    more than MAX_SKEW_S (300 s) ahead of it, or ending before it begins: refused,
    logged, nothing armed; a permit valid now still arms afterwards. (The firmware
    sets no limit on the length of a window; the host issues at most 3600 s.)"""

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED) as r:
            await r.pair()
            pen = await r.pen()
            try:
                key, now = r.key(), await _pen_now(pen)
                cases = [
                    (_permit(key, 500, 600, now - 2 * HOUR, now - HOUR, b"expired1"),
                     ErrorCode.PERMIT_EXPIRED),
                    (_permit(key, 500, 600, now + HOUR, now + 2 * HOUR, b"future01"),
                     ErrorCode.PERMIT_NOT_YET_VALID),
                    (_permit(key, 500, 600, now + 100, now + 50, b"inverted"),
                     ErrorCode.PERMIT_EXPIRED),
                ]
                for permit, code in cases:
                    assert await _refused(pen, permit) == code
                    await _idle_unarmed(pen)
                # The first refusal of each kind is written with its permit's issue
                # time; a repeat within a minute is counted, written when it ends.
                await r.twin.run_for(61_000)
                refusals = await _log(pen, RecordKind.PERMIT_REFUSED)
                assert [x.code for x in refusals] == [code for _, code in cases[:2]]
                assert [x.a for x in refusals] == [p["issued_at"] for p, _ in cases[:2]]
                repeats = await _log(pen, RecordKind.REFUSALS_REPEATED)
                assert [(x.code, x.a, x.b, x.flags) for x in repeats] == [
                    (ErrorCode.PERMIT_EXPIRED, 1, RecordKind.PERMIT_REFUSED, MsgType.ARM)]
                now = await _pen_now(pen)
                await within(pen.arm(_permit(key, 500, 600, now - 5, now + HOUR, b"validnow")))
                assert (await within(pen.status())).state == PenState.ARMED
            finally:
                await within(pen.close())

    run(scenario(), 90)


# ---- (b) permits beyond the firmware's hard limits -----------------------------------------


def test_permit_beyond_the_firmware_hard_limits_is_refused_though_correctly_signed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED) as r:
            await r.pair()
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.limits is not None
                lim = pen.info.limits
                key, now = r.key(), await _pen_now(pen)
                over = [
                    (lim.ceiling_um + lim.grid_um, 600),  # above the product ceiling
                    (lim.abs_depth_um + lim.grid_um, 600),  # above the mechanical maximum
                    (lim.min_depth_um - lim.grid_um, 600),  # below the shallowest setting
                    (500, lim.session_cap_s + 1),  # longer than the 15-minute cap
                    (500, 0),  # no time at all
                ]
                assert lim.session_cap_s == 900 and lim.ceiling_um == 1500
                for i, (depth, seconds) in enumerate(over):
                    permit = _permit(key, depth, seconds, now - 5, now + HOUR,
                                     b"limit-%02d" % i)
                    assert await _refused(pen, permit) == ErrorCode.PERMIT_OVER_LIMIT, permit
                    await _idle_unarmed(pen)
                await within(r.twin.run_for(61_000), 30.0)  # the repeats' count is written
                synced = await within(pen.sync_log(1), 20.0)
                codes = refusal_codes(synced.records, RecordKind.PERMIT_REFUSED)
                assert codes == [ErrorCode.PERMIT_OVER_LIMIT] * len(over)
                # At the limits exactly, the same key and clock arm.
                await within(pen.arm(_permit(key, lim.ceiling_um, lim.session_cap_s, now - 5,
                                             now + HOUR, b"at-limit")))
                status = await within(pen.status())
                assert status.state == PenState.ARMED
                assert status.permit_depth_um == lim.ceiling_um
                assert status.permit_s == lim.session_cap_s
            finally:
                await within(pen.close())

    run(scenario(), 90)


# ---- (e) a permit for another pen -----------------------------------------------------------


def test_permit_signed_with_another_pens_key_is_refused(tmp_path: Path) -> None:
    """The host holds a key per pen; a permit it signs for pen B is worthless on pen A,
    and does not spend pen A's nonce."""

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED) as r:
            await r.pair()
            other = "SP3-0THER1"
            S.upsert_pen(r.db, other)
            S.set_permit_key(r.db, other, bytes(range(100, 132)))
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.limits is not None
                assert r.patient_id is not None
                moment = r.now()
                decision = decide(r.db, other, SessionPlan(r.patient_id, 500, 600, attested=True),
                                  PenLimits.from_info(vars(pen.info.limits)), moment, None)
                assert decision.allowed, decision.refusals
                for_b = issue_permit(decision, bytes(range(100, 132)), moment,
                                     nonce=b"pen-b-01").as_dict()
                assert await _refused(pen, for_b) == ErrorCode.PERMIT_BAD_TAG
                await _idle_unarmed(pen)
                # The same fields signed with this pen's key: accepted (nonce unspent).
                mine = _permit(r.key(), for_b["max_depth_um"], for_b["max_duration_s"],
                               for_b["issued_at"], for_b["expires_at"], for_b["nonce"])
                await within(pen.arm(mine))
                assert (await within(pen.status())).state == PenState.ARMED
                codes = [x.code for x in await _log(pen, RecordKind.PERMIT_REFUSED)]
                assert codes == [ErrorCode.PERMIT_BAD_TAG]
            finally:
                await within(pen.close())

    run(scenario(), 90)


# ---- (f) bonded by Just Works: encrypted, not authenticated ---------------------------------


def test_just_works_bonded_central_cannot_arm_even_with_a_valid_permit(tmp_path: Path) -> None:
    """A second laptop bonds without a passkey (Just Works, no MITM): the link is
    encrypted but not authenticated. Its ARM, carrying a valid permit for this
    pen, is refused at the ATT layer (with response) or dropped (without); the pen
    never sees it, and the permit's nonce is still unspent for the paired host."""
    from bumble.pairing import PairingConfig, PairingDelegate

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED) as r:
            await r.pair()
            pen = await r.pen()
            now = await _pen_now(pen)
            permit = _permit(r.key(), 500, 600, now - 5, now + HOUR, b"justwork")
            await within(pen.close())
            await until(r.twin, "app.ble.conn is None", 10.0, "the host to disconnect")
            tap = RadioTap(r.twin)

            intruder = await within(open_central(r.twin.link, address="F0:5C:A1:00:00:0B",
                                                 keystore_path=str(tmp_path / "intruder.json")))
            try:
                client = BleakClient(r.address, backend=intruder.client_backend, timeout=10.0)
                await within(client.connect(), 15.0)
                intruder.device.pairing_config_factory = lambda _conn: PairingConfig(
                    sc=True, mitm=False, bonding=True,
                    delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT))
                await within(client._backend._conn.pair(), 20.0)  # type: ignore[attr-defined]
                await until(r.twin, "app.ble.encrypted", 10.0, "an encrypted link")
                assert await probe(r.twin, "app.ble.authenticated") is False
                assert r.twin.passkey is None
                arm = encode_frame(MsgType.ARM, 1, permit)
                frags = BleFramer(client.mtu_size).split(arm)
                with pytest.raises(BleakGATTProtocolError) as err:
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frags[0],
                                                        response=True))
                assert err.value.code == INSUFFICIENT_AUTHENTICATION
                for frag in frags:
                    await within(client.write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                        response=False))
                with pytest.raises(BleakGATTProtocolError):
                    await within(client.start_notify(gatt.EVENT_CHAR_UUID, lambda c, d: None))
                await within(r.twin.run_for(500))  # 50 control ticks
                # The pen's radio stack handed the firmware none of those writes.
                assert tap.writes == []
                inside = ("(len(app.rx), app.pen.state, app.pen.permit is None, "
                          "app.ble.link_up, app.handler.hello)")
                assert await probe(r.twin, inside) == (0, PenState.IDLE, True, False, False)
                await within(client.disconnect())
            finally:
                await within(intruder.close())
            await until(r.twin, "app.ble.conn is None", 10.0, "the intruder to be gone")

            pen = await r.pen()
            try:
                await within(pen.arm(permit))  # the nonce was never spent
                assert (await within(pen.status())).state == PenState.ARMED
            finally:
                await within(pen.close())

    run(scenario(), 90)


# ---- (c) malformed traffic ------------------------------------------------------------------


def test_frames_above_max_frame_and_oversized_writes_are_dropped_and_change_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED, heap_kb=BURST_HEAP_KB) as r:
            await r.pair()
            pen = await r.pen()
            try:
                tap = RadioTap(r.twin)
                answers = _answers(pen)
                before = await _snapshot(r)
                errors = await probe(r.twin, "app.link_errors")
                mtu = await probe(r.twin, "app.ble.mtu")
                assert mtu == _client(pen).mtu_size
                chunk = mtu - 5

                # A frame of MAX_FRAME + 300 bytes, its header announcing that length,
                # sent in fragments: the reassembler gives up past MAX_FRAME.
                big = bytes((PROTOCOL_VERSION, MsgType.SET_TIME, 0x11, 0x90)) + (MAX_FRAME + 294).to_bytes(2, "little")
                big += bytes(MAX_FRAME + 294)
                frags = _fragments(big, chunk, counter=9)
                assert len(frags) == -(-(MAX_FRAME + 300) // chunk)
                for frag in frags:
                    await _write(pen, frag)
                await _pen_took(r, tap, len(frags))
                assert await probe(r.twin, "app.link_errors") > errors
                await _still_answers(r, pen, before)

                # A small frame whose header announces 65535 payload bytes: NACK with
                # its seq (the pen knows it), TRUNCATED, nothing done.
                liar = bytes((PROTOCOL_VERSION, MsgType.SET_TIME, 0x22, 0x90, 0xFF, 0xFF)) + bytes(4)
                await _write(pen, bytes((FIRST | LAST | 3, 0)) + liar)
                await wait_until(lambda: any(f.seq == 0x9022 for f in answers), 10.0, "the NACK")
                nack = next(f for f in answers if f.seq == 0x9022)
                assert nack.msg_type == MsgType.NACK
                assert (nack.fields["req_type"], nack.fields["error"]) == (
                    MsgType.SET_TIME, ErrorCode.TRUNCATED)
                await _still_answers(r, pen, before)

                # One ATT write above the largest attribute (512 bytes): refused by the
                # pen's GATT server with response, dropped without; the firmware never
                # sees either.
                taken = len(tap.writes)
                oversized = bytes((FIRST | LAST | 4, 0)) + bytes(598)
                with pytest.raises(BleakGATTProtocolError) as err:
                    await _write(pen, oversized)
                assert err.value.code == INVALID_ATTRIBUTE_VALUE_LENGTH
                await _write(pen, oversized, response=False)
                await _pen_took(r, tap, taken)
                assert len(tap.writes) == taken
                await _still_answers(r, pen, before)
            finally:
                await within(pen.close())

    run(scenario(), 90)


def test_out_of_order_fragments_of_a_valid_arm_never_arm_the_pen(tmp_path: Path) -> None:
    """A valid ARM, cut into small fragments, delivered with a gap, without its first
    fragment, mixed with another message's fragment, or ended early: each time the
    pen drops the message (nothing armed, nonce unspent) and answers the next
    request; the same ARM in order then arms."""

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED) as r:
            await r.pair()
            pen = await r.pen()
            try:
                tap = RadioTap(r.twin)
                answers = _answers(pen)
                now = await _pen_now(pen)
                permit = _permit(r.key(), 500, 600, now - 5, now + HOUR, b"ordering")
                arm = encode_frame(MsgType.ARM, 0x5151, permit)
                f = _fragments(arm, 18, counter=12)  # 58 bytes: 4 fragments
                other = _fragments(arm, 18, counter=13)
                assert len(f) == 4
                mangled = {
                    "gap": [f[0], f[2], f[1], f[3]],
                    "no first": f[1:],
                    "another message's fragment": [f[0], other[1], f[2], f[3]],
                    "ended early": [f[0], f[1], f[3]],
                }
                before = await _snapshot(r)
                for how, frags in mangled.items():
                    errors = await probe(r.twin, "app.link_errors")
                    for frag in frags:
                        await _write(pen, frag)
                    await _pen_took(r, tap, len(tap.writes))
                    assert await probe(r.twin, "app.link_errors") > errors, how
                    assert not any(a.seq == 0x5151 for a in answers), how
                    await _still_answers(r, pen, before)
                for frag in f:
                    await _write(pen, frag)
                await wait_until(lambda: any(a.seq == 0x5151 for a in answers), 10.0,
                                 "the answer to the ARM")
                answer = next(a for a in answers if a.seq == 0x5151)
                assert answer.msg_type == MsgType.ACK
                assert (await within(pen.status())).state == PenState.ARMED
            finally:
                await within(pen.close())

    run(scenario(), 90)


_FED = """\
fed = [0]
feed0 = app.reasm.feed
def feed(data):
    fed[0] += 1
    return feed0(data)
if not hasattr(app, "t_fed"):  # once, should a retried probe run twice
    app.reasm.feed = feed
    app.t_fed = fed
result = 1
"""

#: The firmware's queue (its length, what it dropped, a digest of its writes).
_QUEUE = """\
import hashlib
h = hashlib.sha256()
for x in app.rx:
    h.update(bytes((len(x),)))
    h.update(x)
result = (len(app.rx), app.dropped, h.digest())
"""


def _digest(writes: list[bytes]) -> bytes:
    h = hashlib.sha256()
    for x in writes:
        h.update(bytes((len(x),)) + x)
    return h.digest()


def test_garbage_fragment_flood_is_dropped_and_the_pen_answers_the_next_request(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED, heap_kb=FLOOD_HEAP_KB) as r:
            await r.pair()
            pen = await r.pen()
            try:
                tap = RadioTap(r.twin)
                answers = _answers(pen)
                before = await _snapshot(r)
                errors, dropped = await probe(r.twin, "(app.link_errors, app.dropped)")
                # Count what the firmware gives its reassembler (the pen's own counter).
                await probe(r.twin, _FED, exec_=True)
                rng = random.Random(20260528)
                size = int(await probe(r.twin, "app.ble.mtu")) - 3
                garbage = [rng.randbytes(rng.randint(1, size)) for _ in range(400)]
                for junk in garbage:  # as fast as the radio takes them, no answers awaited
                    await _write(pen, junk, response=False)
                await _pen_took(r, tap, len(garbage))
                assert tap.received == garbage
                # Every write was either looked at or dropped (and counted) from a full
                # queue; most were refused by the reassembler.
                fed, errors_now, dropped_now = await probe(
                    r.twin, "(app.t_fed[0], app.link_errors, app.dropped)")
                assert fed + dropped_now - dropped == len(garbage)
                assert errors_now - errors > fed // 2

                # The same while the pen's time stands still: the queue keeps the
                # newest RX_LIMIT writes and counts the rest as dropped.
                dropped = dropped_now
                r.twin.pause()
                more = garbage[:3 * RX_LIMIT]
                for junk in more:
                    await _write(pen, junk, response=False)
                await wait_until(lambda: len(tap.writes) == len(garbage) + len(more), 10.0,
                                 "the pen's radio to take the second burst")
                queue = _queued_probe(r, _QUEUE, exec_=True)
                await asyncio.sleep(0)
                r.twin.resume()
                length, dropped_now, digest = await within(queue, 20.0)
                await asyncio.sleep(0)
                assert length == RX_LIMIT and dropped_now - dropped == len(more) - RX_LIMIT
                assert digest == _digest(more[-RX_LIMIT:])
                await _pen_took(r, tap, len(garbage) + len(more))
                # Whatever happened to decode into a frame was refused: NACK only.
                assert {a.msg_type for a in answers} <= {MsgType.NACK}
                await _still_answers(r, pen, before)
            finally:
                r.twin.resume()
                await within(pen.close())

    run(scenario(), 90)


# ---- (d) a flood of requests during a session ------------------------------------------------


@dataclass
class TickStat:
    """One control tick during a flood: the body (outside), the firmware (traced)."""

    sync: int
    world_us: int
    state: int  # when the tick began
    after: int  # when it ended
    duty: float
    queued: int  # ATT writes waiting when the tick began
    handled: int  # requests the pen answered in this tick
    limit: int  # the firmware's per-tick budget in that state


def _budget(state: int) -> int:
    """The firmware's per-tick share of requests in ``state`` (read from pen/app.py)."""
    return RX_PER_TICK_RUNNING if state == PenState.RUNNING else RX_PER_TICK


@dataclass
class Flood:
    """Instruments on the pen for a flood."""

    trace: TickTrace
    tap: RadioTap
    tracer: StepTracer
    world_us: int  # when the instruments went on
    dropped: int  # the firmware's count of dropped writes then
    written: int = 0

    async def ticks(self) -> list[TickStat]:
        """Every traced tick, joined with what the pen answered in it."""
        answered: dict[int, int] = {}
        for sync, _t, _seq in self.tap.answers(0x8000, 0x8000 + self.written):
            answered[sync] = answered.get(sync, 0) + 1
        steps: list[Step] = await self.tracer.read()
        out = []
        for tick, step in join(self.trace, steps):
            out.append(TickStat(tick.sync, tick.world_us, step.state, step.after, tick.duty,
                                step.queued, answered.get(tick.sync, 0), _budget(step.state)))
        return out

    def served(self) -> int:
        return len({seq for _s, _t, seq in self.tap.answers(0x8000, 0x8000 + self.written)})


async def _flood(r: TwinRig, pen: Pen, flood: Flood, bursts: int, per_burst: int,
                 between: Callable[[int], None] | None = None) -> int:
    """Write GET_STATUS and LOG_READ requests without waiting for any answer, in
    bursts of ``per_burst`` (more than the pen's queue holds); between bursts the pen
    runs a few ticks and ``between(burst)`` may act. Returns the requests written."""
    framer = BleFramer(_client(pen).mtu_size)
    for burst in range(bursts):
        for _ in range(per_burst):
            seq = 0x8000 + flood.written
            frame = (encode_frame(MsgType.GET_STATUS, seq, {}) if flood.written % 2 else
                     encode_frame(MsgType.LOG_READ, seq, {"from_seq": 1, "max_records": 160}))
            for frag in framer.split(frame):
                await _client(pen).write_gatt_char(gatt.REQUEST_CHAR_UUID, frag, response=False)
            flood.written += 1
        if between is not None:
            between(burst)
        await within(r.twin.run_for(30))  # three control ticks
    return flood.written


async def _running(r: TwinRig) -> tuple[Pen, Flood]:
    """A session needling at 500 um, instruments on."""
    await r.pair()
    pen = await r.pen()
    await r.start_session(pen, 500)
    tracer = StepTracer(r.twin, 1024)
    await tracer.install()
    dropped = int(await probe(r.twin, "app.dropped"))
    trace = TickTrace(r.twin)
    return pen, Flood(trace, RadioTap(r.twin), tracer, r.twin.hw.clock.world_us, dropped)


def _check_ticks(r: TwinRig, flood: Flood, window: list[TickStat]) -> None:
    """No tick skipped, none over its request budget; the queue stayed bounded."""
    tick_us = int(r.twin.board.limits["tick_ms"]) * 1000
    ends = [flood.world_us] + [t.world_us for t in flood.trace.ticks]
    steps = {b - a for a, b in itertools.pairwise(ends)}
    assert steps == {tick_us}, f"control ticks not evenly spaced: {steps}"
    assert (len(ends) - 1) * tick_us == r.twin.hw.clock.world_us - flood.world_us
    over = [t for t in window if t.handled > t.limit]
    assert not over, f"ticks over their request budget: {over[:3]}"
    # IRQs reach the firmware only at tick boundaries: its queue is longest when a
    # tick begins.
    assert max(t.queued for t in window) <= RX_LIMIT


def test_request_flood_while_running_is_served_within_the_tick_budget_and_no_tick_is_missed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED, heap_kb=FLOOD_HEAP_KB) as r:
            pen, flood = await _running(r)
            try:
                written = await within(_flood(r, pen, flood, bursts=5, per_burst=100), 30.0)
                await until(r.twin, "not app.rx", 20.0, "the pen to work off its queue")
                window = await flood.ticks()
                _check_ticks(r, flood, window)
                lost = int(await probe(r.twin, "app.dropped")) - flood.dropped
                assert lost > 0, "the flood never filled the pen's queue"
                assert flood.served() + lost == written  # every write served or counted
                assert all(t.state == PenState.RUNNING and t.duty > 0 for t in window)
                assert max(t.handled for t in window) == _budget(PenState.RUNNING)
                assert len(window) >= written // 10  # the flood spanned many ticks
                status = await within(pen.status())  # still answering, still needling
                assert status.state == PenState.RUNNING and r.twin.boots == 1
                assert r.twin.errors == [] and await probe(r.twin, "app.pen.broken") is False
            finally:
                await within(pen.close())

    run(scenario(), 90)


@pytest.mark.parametrize("hazard", ["skin_contact_lost", "motor_stall"])
def test_safety_stop_during_a_request_flood_cuts_the_motor_at_the_very_next_tick(
    tmp_path: Path, hazard: str
) -> None:
    """Rule 10 (skin contact) and rule 9 (stall): mid-flood, with requests waiting
    in the pen's queue, the first control tick after the hazard has duty 0.

    The hazard comes at a virtual instant, 1 ms into a tick's sleep (a timer of the
    body): the tick that ended with that sleep began before it, the next one is the
    first that can see it."""

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED, heap_kb=FLOOD_HEAP_KB) as r:
            pen, flood = await _running(r)
            hw = r.twin.hw
            mark: list[int] = []

            def hit(_timer: object) -> None:
                assert r.twin.bridge is not None
                mark.append(r.twin.bridge.syncs)  # the sleep the hazard came in
                if hazard == "skin_contact_lost":
                    hw.set_contact(False)
                else:
                    hw.inject("stall")

            def strike(burst: int) -> None:
                if burst != 2:
                    return
                assert hw.motor.duty > 0
                hw.timer_start(hit, 1, False, hit)

            try:
                await within(_flood(r, pen, flood, bursts=5, per_burst=100, between=strike),
                             30.0)
                await until(r.twin, "not app.rx", 20.0, "the pen to work off its queue")
                window = await flood.ticks()
                _check_ticks(r, flood, window)
                at = next(i for i, t in enumerate(window) if t.sync == mark[0])
                last_before, next_tick = window[at], window[at + 1]
                assert next_tick.sync == last_before.sync + 1
                assert last_before.state == PenState.RUNNING and last_before.duty > 0
                assert next_tick.queued > 0  # requests were waiting: mid-flood
                assert next_tick.duty == 0.0, f"{hazard}: duty {next_tick.duty} at the next tick"
                assert all(t.duty == 0.0 for t in window[at + 1:])
                status = await within(pen.status())
                if hazard == "skin_contact_lost":
                    assert next_tick.after == status.state == PenState.PAUSED
                else:
                    assert next_tick.after == PenState.FAULT
                    assert status.fault in (ErrorCode.FAULT_STALL, ErrorCode.FAULT_OVERCURRENT)
                    assert status.state != PenState.RUNNING
                assert len(window) > at + 1
            finally:
                await within(pen.close())

    run(scenario(), 90)


def test_stop_overtakes_a_full_queue_of_requests_and_stops_the_needles_at_once(
    tmp_path: Path,
) -> None:
    """A STOP written behind a flood that filled the pen's queue is neither pushed
    out nor kept waiting: it goes to the head of the queue, and the first control
    tick after it arrives stops the motor while the flood is still queued."""

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED, heap_kb=FLOOD_HEAP_KB) as r:
            pen, flood = await _running(r)
            try:
                r.twin.pause()  # the pen's time stands still: its radio fills up
                framer = BleFramer(_client(pen).mtu_size)
                for n in range(100):
                    frame = encode_frame(MsgType.LOG_READ, 0x9000 + n,
                                         {"from_seq": 1, "max_records": 160})
                    for frag in framer.split(frame):
                        await _client(pen).write_gatt_char(gatt.REQUEST_CHAR_UUID, frag,
                                                           response=False)
                stop = framer.split(encode_frame(MsgType.STOP, 0x9999, {}))
                assert len(stop) == 1
                await _client(pen).write_gatt_char(gatt.REQUEST_CHAR_UUID, stop[0],
                                                   response=False)
                await wait_until(lambda: bool(flood.tap.writes)
                                 and flood.tap.writes[-1][1] == stop[0], 10.0,
                                 "the STOP at the pen's radio")
                arrived = flood.tap.writes[-1][0]  # the IRQ goes out with the next sleep
                queue = _queued_probe(r, "(len(app.rx), app.rx[0], app.pen.state)")
                await asyncio.sleep(0)
                r.twin.resume()
                length, head, state = await within(queue, 20.0)
                assert length == RX_LIMIT  # the queue is full of the flood...
                assert head == stop[0]  # ...with the STOP at its head
                assert state == PenState.RUNNING
                await within(r.twin.run_for(30))
                window = await flood.ticks()
                first = next(t for t in window if t.sync == arrived + 2)
                assert first.state == PenState.RUNNING and first.after != PenState.RUNNING
                # served first: the whole flood was still queued behind it
                assert first.duty == 0.0 and first.queued == RX_LIMIT
                assert [(t, s) for sync, t, s in flood.tap.answers(0x9000, 0x9999)
                        if sync == first.sync] == [(MsgType.ACK, 0x9999)]
            finally:
                r.twin.resume()
                await within(pen.close())

    run(scenario(), 90)


# ---- a request must not outlive its link ------------------------------------------------------


def test_start_written_just_before_the_link_drops_never_runs_the_needles(tmp_path: Path) -> None:
    """Rule 21: a START the pen's radio took while its control loop was busy, and
    then the link goes before the pen served it. The pen drops what was queued on
    the old link (and would refuse a START with the link down anyway): the needles
    never move, with nobody connected to see them."""

    async def scenario() -> None:
        async with e2e_rig(tmp_path, speed=SPEED) as r:
            await r.pair()
            pen = await r.pen()
            await r.ready_body(pen)
            permit = await r.permit(pen, 500)
            await within(pen.arm(permit.as_dict()))
            await within(pen.set_depth(500))
            tap = RadioTap(r.twin)
            dropped = int(await probe(r.twin, "app.dropped"))
            r.twin.pause()  # the control loop is busy: the write waits for it
            start = _fragments(encode_frame(MsgType.START, 0x7171, {}), 200, 3)[0]
            await _write(pen, start)
            await wait_until(lambda: tap.received[-1:] == [start], 10.0,
                             "the START at the pen's radio")
            mark = len(tap.events)
            radio_silence(r.twin, r.radio)
            await wait_until(lambda: any(e == IRQ_CENTRAL_DISCONNECT
                                         for _s, e in tap.events[mark:]), 10.0,
                             "the pen's radio to report the link gone")
            # Both reach the firmware at the same tick boundary, in order: the START
            # is queued, then dropped with its link (counted), before any tick serves it.
            assert tap.writes[-1][0] == tap.event_sync(IRQ_CENTRAL_DISCONNECT, mark)
            trace = TickTrace(r.twin)
            r.twin.resume()
            assert await probe(r.twin, "(len(app.rx), app.dropped, app.ble.link_up)") == (
                0, dropped + 1, False)
            await within(r.twin.run_for(3000))
            assert len(trace) >= 300
            assert all(t.duty == 0.0 and t.rate < 1.0 for t in trace.ticks)
            assert await probe(r.twin, "app.pen.state") != PenState.RUNNING
            with contextlib.suppress(Exception):
                await within(pen.close())
            # The host comes back: no session ever started.
            pen = await r.pen()
            try:
                assert (await within(pen.status())).state != PenState.RUNNING
                assert not await _log(pen, RecordKind.SESSION_START)
            finally:
                await within(pen.close())

    run(scenario(), 90)
