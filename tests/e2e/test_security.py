"""Attacks and abuse over the real virtual BLE link, against the pen's full firmware.

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

import contextlib
import itertools
import json
import random
import sys
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
from scalppen_protocol.codes import MAX_FRAME, ErrorCode, MsgType, PenState, RecordKind
from tests.e2e.vpen_fixtures import Rig, radio_silence, rig, run, wait_until, within

pytestmark = pytest.mark.timeout(60)

INSUFFICIENT_AUTHENTICATION = 0x05
INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
FIRST, LAST = 0x80, 0x40
HOUR = 3600

# ---- helpers ----------------------------------------------------------------------------------


def _permit(key: bytes, depth_um: int, duration_s: int, issued_at: int, expires_at: int,
            nonce: bytes) -> dict[str, Any]:
    """A permit signed with ``key`` exactly as given (no host policy in the way)."""
    return sign_permit(key, depth_um, duration_s, issued_at, expires_at, nonce).as_dict()


def _key(r: Rig) -> bytes:
    key = S.get_permit_key(r.db, r.serial)
    assert key is not None
    return key


def _pen_now(r: Rig) -> int:
    """The pen's own clock (what it checks permits against)."""
    return int(r.app.pen.clock())


def _snapshot(r: Rig) -> dict[str, Any]:
    """What a request could change on the pen: state, permit, settings, flash, link."""
    app, pen = r.app, r.app.pen
    return {
        "state": int(pen.state), "fault": int(pen.fault),
        "permit": dict(pen.permit) if pen.permit else None,
        "session_open": pen.session_open, "depth_um": pen.depth.setting_um,
        "speed": pen.motor.level, "key": pen.key(),
        "counters": json.dumps(app.store.c, sort_keys=True),
        "log_last": app.store.last_seq(), "hello": app.handler.hello,
        "link_up": app.ble.link_up, "boots": r.vpen.boots, "errors": list(r.vpen.errors),
    }


async def _refused(pen: Pen, permit: dict[str, Any]) -> ErrorCode | int:
    with pytest.raises(PenRefused) as refused:
        await within(pen.arm(permit))
    return refused.value.code


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


@dataclass
class Radio:
    """What reached the pen's radio and what the pen sent back."""

    received: list[bytes]
    answers: list[Frame]


def _watch(r: Rig, pen: Pen) -> Radio:
    """Count the pen's received ATT writes and decode every frame it sends the host."""
    seen = Radio([], [])
    ble = r.app.ble
    take = ble._on_rx

    def on_rx(conn: int, data: bytes) -> None:
        seen.received.append(bytes(data))
        take(conn, data)

    ble._on_rx = on_rx
    transport: Any = pen.transport
    deliver = transport._deliver

    def delivered(frame: bytes) -> None:
        seen.answers.append(decode_frame(frame))
        deliver(frame)

    transport._deliver = delivered
    return seen


async def _ticks(r: Rig, n: int) -> None:
    """Wait until the pen ran ``n`` more control ticks."""
    target = r.app.ticks + n
    await wait_until(lambda: r.app.ticks >= target, 5.0, f"{n} control ticks")


async def _pen_took(r: Rig, seen: Radio, n: int) -> None:
    """Wait until the pen's radio took ``n`` writes and the firmware served its queue."""
    await wait_until(lambda: len(seen.received) >= n and not r.app.rx, 5.0,
                     f"the pen to take {n} writes")
    await _ticks(r, 2)


async def _still_answers(r: Rig, pen: Pen, before: dict[str, Any]) -> None:
    """The pen is up, its reassembler idle, its state as before, and it answers."""
    assert not r.app.reasm.busy()
    status = await within(pen.status())
    assert status.state == before["state"]
    assert _snapshot(r) == before


# ---- (a) permits outside their validity window -------------------------------------------


def test_expired_future_dated_and_inverted_permits_are_refused_and_logged(tmp_path: Path) -> None:
    """The firmware checks a permit's window against its own clock: expired, issued
    more than MAX_SKEW_S (300 s) ahead of it, or ending before it begins: refused,
    logged, nothing armed; a permit valid now still arms afterwards. (The firmware
    sets no limit on the length of a window; the host issues at most 3600 s.)"""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                key, now = _key(r), _pen_now(r)
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
                    assert r.state == PenState.IDLE and r.app.pen.permit is None
                refusals = r.pen_log(RecordKind.PERMIT_REFUSED)
                assert [x["code"] for x in refusals] == [code for _, code in cases]
                assert [x["a"] for x in refusals] == [p["issued_at"] for p, _ in cases]
                now = _pen_now(r)
                await within(pen.arm(_permit(key, 500, 600, now - 5, now + HOUR, b"validnow")))
                assert r.state == PenState.ARMED
            finally:
                await within(pen.close())

    run(scenario())


# ---- (b) permits beyond the firmware's hard limits -----------------------------------------


def test_permit_beyond_the_firmware_hard_limits_is_refused_though_correctly_signed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.limits is not None
                lim = pen.info.limits
                key, now = _key(r), _pen_now(r)
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
                    assert r.state == PenState.IDLE and r.app.pen.permit is None
                codes = [x["code"] for x in r.pen_log(RecordKind.PERMIT_REFUSED)]
                assert codes == [ErrorCode.PERMIT_OVER_LIMIT] * len(over)
                # At the limits exactly, the same key and clock arm.
                await within(pen.arm(_permit(key, lim.ceiling_um, lim.session_cap_s, now - 5,
                                             now + HOUR, b"at-limit")))
                assert r.state == PenState.ARMED
                assert r.app.pen.permit["depth"] == lim.ceiling_um
            finally:
                await within(pen.close())

    run(scenario())


# ---- (e) a permit for another pen -----------------------------------------------------------


def test_permit_signed_with_another_pens_key_is_refused(tmp_path: Path) -> None:
    """The host holds a key per pen; a permit it signs for pen B is worthless on pen A,
    and does not spend pen A's nonce."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
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
                assert r.state == PenState.IDLE
                # The same fields signed with this pen's key: accepted (nonce unspent).
                mine = _permit(_key(r), for_b["max_depth_um"], for_b["max_duration_s"],
                               for_b["issued_at"], for_b["expires_at"], for_b["nonce"])
                await within(pen.arm(mine))
                assert r.state == PenState.ARMED
                codes = [x["code"] for x in r.pen_log(RecordKind.PERMIT_REFUSED)]
                assert codes == [ErrorCode.PERMIT_BAD_TAG]
            finally:
                await within(pen.close())

    run(scenario())


# ---- (f) bonded by Just Works: encrypted, not authenticated ---------------------------------


def test_just_works_bonded_central_cannot_arm_even_with_a_valid_permit(tmp_path: Path) -> None:
    """A second laptop bonds without a passkey (Just Works, no MITM): the link is
    encrypted but not authenticated. Its ARM, carrying a valid permit for this
    pen, is refused at the ATT layer (with response) or dropped (without); the pen
    never sees it, and the permit's nonce is still unspent for the paired host."""
    from bumble.pairing import PairingConfig, PairingDelegate

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            now = _pen_now(r)
            permit = _permit(_key(r), 500, 600, now - 5, now + HOUR, b"justwork")
            await within(pen.close())
            await wait_until(lambda: r.app.ble.conn is None, 5.0, "the host to disconnect")

            intruder = await within(open_central(r.link, address="F0:5C:A1:00:00:0B",
                                                 keystore_path=str(tmp_path / "intruder.json")))
            try:
                client = BleakClient(r.address, backend=intruder.client_backend, timeout=10.0)
                await within(client.connect(), 15.0)
                intruder.device.pairing_config_factory = lambda _conn: PairingConfig(
                    sc=True, mitm=False, bonding=True,
                    delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT))
                await within(client._backend._conn.pair())  # type: ignore[attr-defined]
                await wait_until(lambda: r.app.ble.encrypted, 5.0, "an encrypted link")
                assert not r.app.ble.authenticated and r.shown_passkey() is None
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
                await _ticks(r, 50)
                assert r.app.rx == [] and r.state == PenState.IDLE and r.app.pen.permit is None
                assert not r.app.ble.link_up and not r.app.handler.hello
                await within(client.disconnect())
            finally:
                await within(intruder.close())
            await wait_until(lambda: r.app.ble.conn is None, 5.0, "the intruder to be gone")

            pen = await r.pen()
            try:
                await within(pen.arm(permit))  # the nonce was never spent
                assert r.state == PenState.ARMED
            finally:
                await within(pen.close())

    run(scenario())


# ---- (c) malformed traffic ------------------------------------------------------------------


def test_frames_above_max_frame_and_oversized_writes_are_dropped_and_change_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                seen = _watch(r, pen)
                before = _snapshot(r)
                errors = r.app.link_errors
                chunk = r.app.ble.mtu - 5

                # A frame of MAX_FRAME + 300 bytes, its header announcing that length,
                # sent in fragments: the reassembler gives up past MAX_FRAME.
                big = bytes((1, MsgType.SET_TIME, 0x11, 0x90)) + (MAX_FRAME + 294).to_bytes(2, "little")
                big += bytes(MAX_FRAME + 294)
                frags = _fragments(big, chunk, counter=9)
                assert len(frags) == -(-(MAX_FRAME + 300) // chunk)
                for frag in frags:
                    await _write(pen, frag)
                await _pen_took(r, seen, len(frags))
                assert r.app.link_errors > errors
                await _still_answers(r, pen, before)

                # A small frame whose header announces 65535 payload bytes: NACK with
                # its seq (the pen knows it), TRUNCATED, nothing done.
                liar = bytes((1, MsgType.SET_TIME, 0x22, 0x90, 0xFF, 0xFF)) + bytes(4)
                await _write(pen, bytes((FIRST | LAST | 3, 0)) + liar)
                await wait_until(lambda: any(f.seq == 0x9022 for f in seen.answers), 5.0,
                                 "the NACK")
                nack = next(f for f in seen.answers if f.seq == 0x9022)
                assert nack.msg_type == MsgType.NACK
                assert (nack.fields["req_type"], nack.fields["error"]) == (
                    MsgType.SET_TIME, ErrorCode.TRUNCATED)
                await _still_answers(r, pen, before)

                # One ATT write above the largest attribute (512 bytes): refused by the
                # pen's GATT server with response, dropped without; the firmware never
                # sees either.
                taken = len(seen.received)
                oversized = bytes((FIRST | LAST | 4, 0)) + bytes(598)
                with pytest.raises(BleakGATTProtocolError) as err:
                    await _write(pen, oversized)
                assert err.value.code == INVALID_ATTRIBUTE_VALUE_LENGTH
                await _write(pen, oversized, response=False)
                await _pen_took(r, seen, taken)
                assert len(seen.received) == taken
                await _still_answers(r, pen, before)
            finally:
                await within(pen.close())

    run(scenario())


def test_out_of_order_fragments_of_a_valid_arm_never_arm_the_pen(tmp_path: Path) -> None:
    """A valid ARM, cut into small fragments, delivered with a gap, without its first
    fragment, mixed with another message's fragment, or ended early: each time the
    pen drops the message (nothing armed, nonce unspent) and answers the next
    request; the same ARM in order then arms."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                seen = _watch(r, pen)
                now = _pen_now(r)
                permit = _permit(_key(r), 500, 600, now - 5, now + HOUR, b"ordering")
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
                before = _snapshot(r)
                for how, frags in mangled.items():
                    errors = r.app.link_errors
                    for frag in frags:
                        await _write(pen, frag)
                    await _pen_took(r, seen, len(seen.received))
                    assert r.app.link_errors > errors, how
                    assert not any(a.seq == 0x5151 for a in seen.answers), how
                    await _still_answers(r, pen, before)
                for frag in f:
                    await _write(pen, frag)
                await wait_until(lambda: any(a.seq == 0x5151 for a in seen.answers), 5.0,
                                 "the answer to the ARM")
                answer = next(a for a in seen.answers if a.seq == 0x5151)
                assert answer.msg_type == MsgType.ACK and r.state == PenState.ARMED
            finally:
                await within(pen.close())

    run(scenario())


def test_garbage_fragment_flood_is_dropped_and_the_pen_answers_the_next_request(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            try:
                seen = _watch(r, pen)
                before = _snapshot(r)
                errors, dropped = r.app.link_errors, r.app.dropped
                fed = [0]
                feed = r.app.reasm.feed

                def counted(data: bytes) -> bytes | None:
                    fed[0] += 1
                    return feed(data)

                r.app.reasm.feed = counted
                rng = random.Random(20260528)
                size = r.app.ble.mtu - 3
                garbage = [rng.randbytes(rng.randint(1, size)) for _ in range(400)]
                for junk in garbage:  # as fast as the radio takes them, no answers awaited
                    await _write(pen, junk, response=False)
                await _pen_took(r, seen, len(garbage))
                assert len(seen.received) == len(garbage)
                # Every write was either looked at or dropped (and counted) from a full
                # queue; most were refused by the reassembler.
                assert fed[0] + r.app.dropped - dropped == len(garbage)
                assert r.app.link_errors - errors > fed[0] // 2

                # The same while the pen's time stands still: the queue keeps the
                # newest _RX_LIMIT writes and counts the rest as dropped.
                limit = int(sys.modules[type(r.app).__module__]._RX_LIMIT)
                r.vpen.pause()
                dropped, more = r.app.dropped, garbage[:3 * limit]
                for junk in more:
                    await _write(pen, junk, response=False)
                await wait_until(lambda: len(seen.received) == len(garbage) + len(more), 5.0,
                                 "the pen's radio to take the second burst")
                assert len(r.app.rx) == limit and r.app.dropped - dropped == len(more) - limit
                assert r.app.rx == more[-limit:]
                r.vpen.resume()
                await _pen_took(r, seen, len(garbage) + len(more))
                # Whatever happened to decode into a frame was refused: NACK only.
                assert {a.msg_type for a in seen.answers} <= {MsgType.NACK}
                await _still_answers(r, pen, before)
            finally:
                await within(pen.close())

    run(scenario())


# ---- (d) a flood of requests during a session ------------------------------------------------


@dataclass
class TickStat:
    """One control tick during a flood."""

    ms: int
    state: int  # when the tick began
    after: int  # when it ended
    duty: float
    queued: int  # ATT writes waiting when the tick began
    handled: int  # requests the handler served in this tick
    limit: int  # the firmware's per-tick budget in that state


@dataclass
class Flood:
    """Instruments on the pen for a flood."""

    ticks: list[TickStat]
    handled: list[int]
    peak: list[int]
    world_ms: float = 0.0


def _budget(app: Any, state: int) -> int:
    """The firmware's per-tick share of requests in ``state`` (read from pen/app.py)."""
    mod = sys.modules[type(app).__module__]
    if state == PenState.RUNNING:
        return int(getattr(mod, "_RX_PER_TICK_RUNNING", mod._RX_PER_TICK))
    return int(mod._RX_PER_TICK)


def _instrument(r: Rig) -> Flood:
    app, hw = r.app, r.vpen.hw
    flood = Flood([], [0], [0])
    handle = app.handler.handle

    def counted(frame: bytes, auth: bool) -> list[bytes]:
        flood.handled[0] += 1
        return handle(frame, auth)

    take = app.ble._on_rx

    def queued(conn: int, data: bytes) -> None:
        take(conn, data)
        flood.peak[0] = max(flood.peak[0], len(app.rx))

    step = app.step

    def traced(now_ms: int) -> Any:
        state, waiting, done = int(app.pen.state), len(app.rx), flood.handled[0]
        out = step(now_ms)
        flood.ticks.append(TickStat(now_ms, state, int(app.pen.state), float(hw.motor.duty),
                                    waiting, flood.handled[0] - done, _budget(app, state)))
        return out

    app.handler.handle, app.ble._on_rx, app.step = counted, queued, traced
    return flood


async def _flood(r: Rig, pen: Pen, bursts: int, per_burst: int,
                 between: Callable[[int], None] | None = None) -> int:
    """Write GET_STATUS and LOG_READ requests without waiting for any answer, in
    bursts of ``per_burst`` (more than the pen's queue holds); between bursts the pen
    runs a few ticks and ``between(burst)`` may act. Returns the requests written."""
    framer = BleFramer(_client(pen).mtu_size)
    written = 0
    for burst in range(bursts):
        for _ in range(per_burst):
            seq = 0x8000 + written
            frame = (encode_frame(MsgType.GET_STATUS, seq, {}) if written % 2 else
                     encode_frame(MsgType.LOG_READ, seq, {"from_seq": 1, "max_records": 160}))
            for frag in framer.split(frame):
                await _client(pen).write_gatt_char(gatt.REQUEST_CHAR_UUID, frag, response=False)
            written += 1
        if between is not None:
            between(burst)
        await _ticks(r, 3)
    return written


async def _running(r: Rig) -> tuple[Pen, Flood, int, int]:
    """A session needling at 500 um, instruments on; returns the pen's counters too."""
    await r.pair()
    pen = await r.pen()
    await r.start_session(pen, 500)
    flood = _instrument(r)
    flood.world_ms = r.virtual_ms
    return pen, flood, r.app.dropped, len(flood.ticks)


def _check_ticks(r: Rig, flood: Flood, since: int) -> list[TickStat]:
    """No tick skipped, none over its request budget; the queue stayed bounded."""
    tick_ms = int(r.vpen.board.limits["tick_ms"])
    window = flood.ticks[since:]
    steps = {b.ms - a.ms for a, b in itertools.pairwise(window)}
    assert steps == {tick_ms}, f"control ticks not evenly spaced: {steps}"
    assert len(flood.ticks) == round((r.virtual_ms - flood.world_ms) / tick_ms)
    over = [t for t in window if t.handled > t.limit]
    assert not over, f"ticks over their request budget: {over[:3]}"
    rx_limit = int(sys.modules[type(r.app).__module__]._RX_LIMIT)
    assert flood.peak[0] <= rx_limit and max(t.queued for t in window) <= rx_limit
    return window


def test_request_flood_while_running_is_served_within_the_tick_budget_and_no_tick_is_missed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            pen, flood, dropped, since = await _running(r)
            try:
                written = await within(_flood(r, pen, bursts=5, per_burst=100))
                await wait_until(lambda: not r.app.rx, 5.0, "the pen to work off its queue")
                window = _check_ticks(r, flood, since)
                lost = r.app.dropped - dropped
                assert lost > 0, "the flood never filled the pen's queue"
                assert flood.handled[0] + lost == written  # every write served or counted
                assert all(t.state == PenState.RUNNING and t.duty > 0 for t in window)
                assert max(t.handled for t in window) == _budget(r.app, PenState.RUNNING)
                assert len(window) >= written // 10  # the flood spanned many ticks
                status = await within(pen.status())  # still answering, still needling
                assert status.state == PenState.RUNNING and r.vpen.boots == 1
                assert r.vpen.errors == [] and not r.app.pen.broken
            finally:
                await within(pen.close())

    run(scenario(), timeout=30.0)


@pytest.mark.parametrize("hazard", ["skin_contact_lost", "motor_stall"])
def test_safety_stop_during_a_request_flood_cuts_the_motor_at_the_very_next_tick(
    tmp_path: Path, hazard: str
) -> None:
    """Rule 10 (skin contact) and rule 9 (stall): mid-flood, with requests waiting
    in the pen's queue, the first control tick after the hazard has duty 0."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            pen, flood, _dropped, since = await _running(r)
            hw = r.vpen.hw
            mark: list[int] = []

            def strike(burst: int) -> None:
                if burst != 2:
                    return
                assert r.app.rx, "the pen's queue is empty: not mid-flood"
                assert hw.motor.duty > 0
                mark.append(len(flood.ticks))
                if hazard == "skin_contact_lost":
                    hw.set_contact(False)
                else:
                    hw.inject("stall")

            try:
                await within(_flood(r, pen, bursts=5, per_burst=100, between=strike))
                await wait_until(lambda: not r.app.rx, 5.0, "the pen to work off its queue")
                window = _check_ticks(r, flood, since)
                at = mark[0]
                last_before, next_tick = flood.ticks[at - 1], flood.ticks[at]
                assert last_before.state == PenState.RUNNING and last_before.duty > 0
                assert next_tick.queued > 0  # requests were waiting: mid-flood
                assert next_tick.duty == 0.0, f"{hazard}: duty {next_tick.duty} at the next tick"
                assert all(t.duty == 0.0 for t in flood.ticks[at:])
                status = await within(pen.status())
                if hazard == "skin_contact_lost":
                    assert next_tick.after == status.state == PenState.PAUSED
                else:
                    assert next_tick.after == PenState.FAULT
                    assert status.fault in (ErrorCode.FAULT_STALL, ErrorCode.FAULT_OVERCURRENT)
                    assert status.state != PenState.RUNNING
                assert len(window) > at - since
            finally:
                await within(pen.close())

    run(scenario(), timeout=30.0)


def test_stop_overtakes_a_full_queue_of_requests_and_stops_the_needles_at_once(
    tmp_path: Path,
) -> None:
    """A STOP written behind a flood that filled the pen's queue is neither pushed
    out nor kept waiting: it goes to the head of the queue, and the first control
    tick after it arrives stops the motor while the flood is still queued."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            pen, flood, _dropped, _since = await _running(r)
            arrived: list[int] = []
            take = r.app.ble._on_rx

            def on_rx(conn: int, data: bytes) -> None:
                take(conn, data)
                if bytes(data)[2:3] == b"\x01" and bytes(data)[3] == MsgType.STOP:
                    arrived.append(len(flood.ticks))

            r.app.ble._on_rx = on_rx
            try:
                r.vpen.pause()
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
                await wait_until(lambda: bool(arrived), 5.0, "the STOP at the pen's radio")
                rx_limit = int(sys.modules[type(r.app).__module__]._RX_LIMIT)
                assert len(r.app.rx) == rx_limit  # the queue is full of the flood
                assert r.state == PenState.RUNNING
                r.vpen.resume()
                await _ticks(r, 3)
                first = flood.ticks[arrived[0]]
                assert first.state == PenState.RUNNING and first.after != PenState.RUNNING
                # served first: the whole flood was still queued behind it
                assert first.duty == 0.0 and first.queued == rx_limit and first.handled == 1
            finally:
                await within(pen.close())

    run(scenario(), timeout=30.0)


# ---- a request must not outlive its link ------------------------------------------------------


def test_start_written_just_before_the_link_drops_never_runs_the_needles(tmp_path: Path) -> None:
    """Rule 21: a START the pen's radio took while its control loop was busy, and
    then the link goes before the pen served it. The pen drops what was queued on
    the old link (and would refuse a START with the link down anyway): the needles
    never move, with nobody connected to see them."""

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.pair()
            pen = await r.pen()
            await r.ready_body()
            permit = await r.permit(pen, 500)
            await within(pen.arm(permit.as_dict()))
            await within(pen.set_depth(500))
            seen = _watch(r, pen)
            r.vpen.pause()  # the control loop is busy: the write waits in the queue
            await _write(pen, _fragments(encode_frame(MsgType.START, 0x7171, {}), 200, 3)[0])
            await wait_until(lambda: bool(seen.received) and bool(r.app.rx), 5.0,
                             "the START in the pen's queue")
            radio_silence(r.vpen, r.radio)
            await wait_until(lambda: not r.app.ble.link_up, 5.0, "the pen to see the link go")
            assert not r.app.rx  # dropped with its link
            r.record_ticks()
            r.vpen.resume()
            await wait_until(lambda: len(r.trace) >= 300, 10.0, "3 s of the pen's time")
            assert all(t.duty == 0.0 and t.rate < 1.0 for t in r.trace)
            assert r.state != PenState.RUNNING
            assert not r.pen_log(RecordKind.SESSION_START)
            with contextlib.suppress(Exception):
                await within(pen.close())

    run(scenario())
