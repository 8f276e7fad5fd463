"""The client against a scripted pen over an in-memory link (firmware codec on the far side)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pen import wire

from scalppen.client import (
    BadReply,
    LinkLost,
    Pen,
    PenError,
    PenRefused,
    PenTimeout,
    Problem,
    ProtocolMismatch,
)
from scalppen.results import (
    CartridgeEvent,
    FaultEvent,
    LogGap,
    NoticeEvent,
    SyncProgress,
    TelemetryEvent,
)
from scalppen.transports import base as tbase
from scalppen.transports.loopback import LoopbackTransport, loopback_pair
from scalppen_protocol.codes import (
    MAX_PAGE_RECORDS,
    PROTOCOL_VERSION,
    Capability,
    ErrorCode,
    MsgType,
    Notice,
    PenState,
    RecordKind,
)
from tests.client.scripted_pen import ScriptedPen, run, serve_loopback

pytestmark = pytest.mark.timeout(30)

PERMIT: dict[str, Any] = {
    "max_depth_um": 500, "max_duration_s": 900, "issued_at": 1795000000,
    "expires_at": 1795000300, "nonce": bytes(8), "patient": bytes(8), "tag": bytes(32),
}


@asynccontextmanager
async def session(
    pen: ScriptedPen | None = None, *, hello: bool = True, **kwargs: Any
) -> AsyncIterator[tuple[Pen, ScriptedPen, LoopbackTransport]]:
    """A connected client, its scripted pen and the pen's end of the link."""
    scripted = pen or ScriptedPen()
    host_end, pen_end = loopback_pair()
    server = asyncio.create_task(serve_loopback(scripted, pen_end))
    await asyncio.sleep(0)
    kwargs.setdefault("timeout", 1.0)
    kwargs.setdefault("retry_delay", 0.01)
    client = Pen(host_end, **kwargs)
    await client.open()
    if hello:
        await client.hello()
    try:
        yield client, scripted, pen_end
    finally:
        await client.close()
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


def in_session(test: Callable[..., Awaitable[None]], **kwargs: Any) -> None:
    async def body() -> None:
        async with session(**kwargs) as (client, scripted, pen_end):
            await test(client, scripted, pen_end)

    run(body())


# -- hello, typed results --------------------------------------------------------------


def test_hello_returns_typed_info() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        info = client.info
        assert info is not None and info.model == "SP-1" and info.serial == "SP1-000042"
        assert info.limits.ceiling_um == 2000 and info.limits.speed_levels == 5
        assert info.has(Capability.LOG) and info.compatible and not info.key_set
        hello = next(r for r in scripted.received if r[0] == wire.T_HELLO)
        assert hello[2] == {"proto_version": PROTOCOL_VERSION, "caps": int(client.caps)}

    in_session(check)


def test_status_wear_and_log_are_typed() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.status["lockout_until"] = 1_795_100_000
        status = await client.status()
        assert status.state is PenState.IDLE and status.contact and not status.charging
        assert status.locked_out() and not status.locked_out(now=1_795_100_001)
        wear = await client.wear()
        assert wear.cart_id_hex == "2d00000a1b2c3d4e" and wear.used_fraction == pytest.approx(0.702)
        scripted.log_last = 3
        page = await client.read_log(1, 10)
        assert [r.seq for r in page.records] == [1, 2, 3]
        assert page.records[0].kind is RecordKind.TIME_SET

    in_session(check)


def test_commands_are_acknowledged() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        await client.set_time(1_795_000_000, bytes(range(32)))
        await client.set_key(bytes(range(32)))
        await client.arm(PERMIT)
        await client.set_depth(750)
        await client.set_speed(3)
        await client.start()
        await client.stop()
        types = [r[0] for r in scripted.received[1:]]
        assert types == [wire.T_SET_TIME, wire.T_SET_KEY, wire.T_ARM, wire.T_SET_DEPTH,
                         wire.T_SET_SPEED, wire.T_START, wire.T_STOP]
        assert scripted.received[3][2]["nonce"] == bytes(8)

    in_session(check)


def test_bad_arguments_raise_value_error_without_sending() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        before = len(scripted.received)
        with pytest.raises(ValueError):
            await client.set_key(b"short")
        with pytest.raises(ValueError):
            await client.arm({"max_depth_um": 500})
        with pytest.raises(ValueError):
            await client.read_log(1, MAX_PAGE_RECORDS + 1)
        await asyncio.sleep(0.01)
        assert len(scripted.received) == before

    in_session(check)


# -- correlation ------------------------------------------------------------------------


def test_out_of_order_responses_reach_their_requests() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        scripted.log_last = 5
        scripted.hold = {wire.T_GET_STATUS, wire.T_GET_WEAR, wire.T_LOG_READ, wire.T_SET_DEPTH}
        status_task = asyncio.create_task(client.status())
        wear_task = asyncio.create_task(client.wear())
        log_task = asyncio.create_task(client.read_log(2, 3))
        depth_task = asyncio.create_task(client.set_depth(500))
        while len(scripted.held) < 4:
            await asyncio.sleep(0.005)
        for frame in reversed(scripted.held):  # the last request is answered first
            await pen_end.send_frame(frame)
        status, wear, page, ack = await asyncio.gather(status_task, wear_task, log_task,
                                                       depth_task)
        assert status.battery_pct == 81
        assert wear.needles == 12
        assert [r.seq for r in page.records] == [2, 3, 4]
        assert ack is None
        assert not client.problems

    in_session(check)


def test_sequence_numbers_wrap_at_16_bits() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        client._seq = 0xFFFD
        for _n in range(4):
            await client.status()
        seqs = [r[1] for r in scripted.received[-4:]]
        assert seqs == [0xFFFE, 0xFFFF, 0, 1]

    in_session(check)


def test_reply_on_another_seq_is_reported_and_ignored() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        await pen_end.send_frame(wire.encode(wire.T_STATUS, 4242, dict(scripted.status)))
        await asyncio.sleep(0.01)
        assert [p.kind for p in client.problems] == ["late_reply"]
        assert (await client.status()).battery_pct == 81

    in_session(check)


# -- timeouts and retries -------------------------------------------------------------------


def test_idempotent_read_is_retried_after_silence() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.silent[wire.T_GET_STATUS] = 1
        status = await client.status()
        assert status.battery_pct == 81
        sent = [r for r in scripted.received if r[0] == wire.T_GET_STATUS]
        assert len(sent) == 2 and sent[0][1] != sent[1][1]

    in_session(check, timeout=0.2)


def test_timeout_after_bounded_retries() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.silent[wire.T_GET_WEAR] = -1
        started = time.monotonic()
        with pytest.raises(PenTimeout):
            await client.wear()
        assert scripted.counts[wire.T_GET_WEAR] == 3  # 1 + 2 retries
        assert time.monotonic() - started < 1.5

    in_session(check, timeout=0.15)


@pytest.mark.parametrize("command", ["start", "arm", "set_depth", "stop"])
def test_commands_are_never_retried(command: str) -> None:
    msg_type = {"start": wire.T_START, "arm": wire.T_ARM, "set_depth": wire.T_SET_DEPTH,
                "stop": wire.T_STOP}[command]
    args: dict[str, tuple[Any, ...]] = {"arm": (PERMIT,), "set_depth": (500,)}

    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.silent[msg_type] = -1
        with pytest.raises(PenTimeout, match="may have acted"):
            await getattr(client, command)(*args.get(command, ()))
        await asyncio.sleep(0.05)
        assert scripted.counts[msg_type] == 1

    in_session(check, timeout=0.15)


def test_busy_is_retried_for_reads_only() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        busy = {"n": 1}

        def status_script(seq: int, fields: dict[str, Any]) -> Any:
            if busy["n"]:
                busy["n"] -= 1
                return [(wire.T_NACK, seq, {"req_type": wire.T_GET_STATUS,
                                            "error": wire.E_BUSY, "detail": 0})]
            return None

        scripted.scripts[wire.T_GET_STATUS] = status_script
        assert (await client.status()).battery_pct == 81
        assert scripted.counts[wire.T_GET_STATUS] == 2
        scripted.nacks[wire.T_START] = (wire.E_BUSY, 0)
        with pytest.raises(PenRefused) as refused:
            await client.start()
        assert refused.value.code is ErrorCode.BUSY
        assert scripted.counts[wire.T_START] == 1

    in_session(check)


def test_late_answer_to_a_retried_request_is_reported_not_used_twice() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        scripted.hold = {wire.T_GET_STATUS}
        task = asyncio.create_task(client.status())
        while len(scripted.held) < 2:  # first attempt timed out, second sent
            await asyncio.sleep(0.01)
        first, second = scripted.held
        await pen_end.send_frame(second)
        assert (await task).battery_pct == 81
        await pen_end.send_frame(first)
        await asyncio.sleep(0.01)
        assert [p.kind for p in client.problems] == ["late_reply"]

    in_session(check, timeout=0.1)


# -- refusals ----------------------------------------------------------------------------


def test_nack_becomes_pen_refused_with_code_and_detail() -> None:
    lift = 1_795_259_200

    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.nacks[wire.T_START] = (wire.E_INTERVAL_LOCKOUT, lift)
        with pytest.raises(PenRefused) as refused:
            await client.start()
        err = refused.value
        assert err.code is ErrorCode.INTERVAL_LOCKOUT and err.detail == lift
        assert err.request is MsgType.START and err.lockout_until == lift
        assert "too soon" in str(err)
        assert time.strftime("%Y-%m-%d", time.localtime(lift)) in str(err)
        assert isinstance(err, PenError)

    in_session(check)


def test_nack_with_unknown_code_keeps_the_number() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.nacks[wire.T_SET_DEPTH] = (0x1FF, 7)
        with pytest.raises(PenRefused) as refused:
            await client.set_depth(500)
        assert refused.value.code == 0x1FF and "0x1ff" in str(refused.value)

    in_session(check)


def test_ack_for_another_request_type_is_not_accepted() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.scripts[wire.T_START] = lambda seq, f: [
            (wire.T_ACK, seq, {"req_type": wire.T_STOP})]
        with pytest.raises(PenTimeout):
            await client.start()
        assert client.problems[-1].kind == "mismatched_reply"

    in_session(check, timeout=0.1)


# -- protocol versions and unknown messages --------------------------------------------------


def test_protocol_mismatch_from_info() -> None:
    async def body() -> None:
        scripted = ScriptedPen()
        scripted.proto_version = PROTOCOL_VERSION + 1
        async with session(scripted, hello=False) as (client, _, _end):
            with pytest.raises(ProtocolMismatch) as mismatch:
                await client.hello()
            assert mismatch.value.pen_version == PROTOCOL_VERSION + 1
            assert client.info is not None and client.info.proto_version == PROTOCOL_VERSION + 1

    run(body())


def test_protocol_mismatch_from_nack() -> None:
    async def body() -> None:
        scripted = ScriptedPen()
        scripted.nacks[wire.T_HELLO] = (wire.E_BAD_VERSION, 2)
        async with session(scripted, hello=False) as (client, _, _end):
            with pytest.raises(ProtocolMismatch):
                await client.hello()

    run(body())


def test_reply_with_unknown_message_type_is_reported_not_fatal() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        def strange(seq: int, fields: dict[str, Any]) -> Any:
            return []

        scripted.scripts[wire.T_GET_WEAR] = strange
        task = asyncio.create_task(client.wear())
        while not scripted.counts[wire.T_GET_WEAR]:
            await asyncio.sleep(0.005)
        seq = scripted.received[-1][1]
        # type 0x8F is not in this host's catalogue
        await pen_end.send_frame(bytes((PROTOCOL_VERSION, 0x8F, seq & 0xFF, seq >> 8, 1, 0, 0xAA)))
        with pytest.raises(BadReply):
            await task
        assert client.problems[-1].kind == "unknown_type"
        assert client.problems[-1].code is ErrorCode.NOT_SUPPORTED
        # an unknown event type is reported too, and the client keeps working
        await pen_end.send_frame(bytes((PROTOCOL_VERSION, 0xCF, 1, 0, 0, 0)))
        await asyncio.sleep(0.01)
        assert client.problems[-1].kind == "unknown_type"
        assert (await client.status()).battery_pct == 81

    in_session(check)


def test_garbage_frames_do_not_stop_the_receive_loop() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        for junk in (b"", b"\x01", b"\x02\x81\x00\x00\x00\x00", b"\x01\x82\x05\x00\x40\x00xx"):
            await pen_end.send_frame(junk)
        await asyncio.sleep(0.01)
        assert len(client.problems) == 4
        assert all(p.kind == "decode" for p in client.problems)
        assert (await client.status()).battery_pct == 81

    in_session(check)


def test_link_errors_from_the_transport_are_reported() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        from scalppen_protocol.errors import ProtocolError

        seen: list[Problem] = []
        client.on_problem(seen.append)
        transport = client.transport
        assert isinstance(transport, LoopbackTransport)
        transport.report(ProtocolError(ErrorCode.BAD_CRC, "test"))
        assert seen and seen[0].kind == "link" and seen[0].code is ErrorCode.BAD_CRC
        assert transport.link_errors == 1

    in_session(check)


# -- the link dropping ----------------------------------------------------------------------


def test_link_drop_fails_pending_requests_at_once() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        scripted.silent[wire.T_GET_STATUS] = -1
        scripted.silent[wire.T_START] = -1
        tasks = [asyncio.create_task(client.status()), asyncio.create_task(client.start())]
        while scripted.counts[wire.T_START] == 0 or scripted.counts[wire.T_GET_STATUS] == 0:
            await asyncio.sleep(0.005)
        started = time.monotonic()
        pen_end.drop("radio gone")
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert time.monotonic() - started < 0.2
        assert all(isinstance(r, LinkLost) for r in results)
        assert all(isinstance(r, tbase.LinkLost) for r in results)
        assert "radio gone" in str(results[0])
        with pytest.raises(LinkLost):
            await client.status()
        assert not client.connected

    in_session(check, timeout=10.0)


def test_event_stream_raises_link_lost_when_the_link_drops() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        stream = client.events()
        pen_end.drop()
        with pytest.raises(LinkLost):
            await stream.get(timeout=1.0)

    in_session(check)


def test_reopen_after_a_drop() -> None:
    async def body() -> None:
        scripted = ScriptedPen()
        host_end, pen_end = loopback_pair()
        server = asyncio.create_task(serve_loopback(scripted, pen_end))
        await asyncio.sleep(0)
        client = Pen(host_end, timeout=1.0)
        async with client:
            pen_end.drop()
            await asyncio.sleep(0)
            server.cancel()
            server = asyncio.create_task(serve_loopback(scripted, pen_end))
            await asyncio.sleep(0)
            await client.open()
            await client.hello()
            assert (await client.status()).battery_pct == 81
        assert scripted.counts[wire.T_HELLO] == 2
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)

    run(body())


# -- events ---------------------------------------------------------------------------------


def test_events_are_typed_and_reach_streams_and_callbacks() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        got: list[object] = []
        remove = client.on_event(got.append)
        stream = client.events()
        frames = [
            scripted.event(wire.T_EV_TELEMETRY, {
                "elapsed_ms": 30500, "strokes": 3568, "depth_um": 505, "rate_x10": 1171,
                "motor_ma": 240, "temp_c10": -15, "battery_pct": 80, "contact": 1, "state": 2}),
            scripted.event(wire.T_EV_CARTRIDGE, {
                "inserted": 1, "cart_id": bytes.fromhex("2d00000a1b2c3d4e"), "cart_state": 0}),
            scripted.event(wire.T_EV_FAULT, {"code": wire.E_FAULT_STALL, "state": 5,
                                             "lockout": 0}),
            scripted.event(wire.T_EV_NOTICE, {"code": wire.N_SESSION_WARN, "value": 600}),
        ]
        for frame in frames:
            await pen_end.send_frame(frame)
        events = [await stream.get(timeout=1.0) for _ in frames]
        assert got == events
        telemetry, cartridge, fault, notice = events
        assert isinstance(telemetry, TelemetryEvent) and telemetry.temp_c10 == -15
        assert telemetry.state is PenState.RUNNING and telemetry.contact
        assert isinstance(cartridge, CartridgeEvent) and cartridge.inserted
        assert isinstance(fault, FaultEvent) and fault.code is ErrorCode.FAULT_STALL
        assert isinstance(notice, NoticeEvent) and notice.code is Notice.SESSION_WARN
        assert [e.seq for e in events] == [1001, 1002, 1003, 1004]
        remove()
        stream.close()
        await pen_end.send_frame(frames[0])
        await asyncio.sleep(0.01)
        assert len(got) == 4
        with pytest.raises(StopAsyncIteration):
            await stream.get(timeout=1.0)

    in_session(check)


def test_async_for_over_events_ends_on_close() -> None:
    async def body() -> None:
        async with session() as (client, scripted, pen_end):
            stream = client.events()
            await pen_end.send_frame(scripted.event(wire.T_EV_NOTICE, {"code": 5, "value": 0}))

            async def collect() -> list[object]:
                return [event async for event in stream]

            task = asyncio.create_task(collect())
            await asyncio.sleep(0.01)
            await client.close()
            collected = await task
            assert len(collected) == 1 and isinstance(collected[0], NoticeEvent)

    run(body())


def test_failing_event_listener_does_not_stop_the_client() -> None:
    async def check(client: Pen, scripted: ScriptedPen, pen_end: LoopbackTransport) -> None:
        def broken(event: object) -> None:
            raise RuntimeError("listener bug")

        client.on_event(broken)
        await pen_end.send_frame(scripted.event(wire.T_EV_NOTICE, {"code": 1, "value": 0}))
        await asyncio.sleep(0.01)
        assert client.problems[-1].kind == "listener"
        assert (await client.status()).battery_pct == 81

    in_session(check)


# -- log sync -----------------------------------------------------------------------------


def test_sync_log_pages_until_the_last_record() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.log_last = 400
        progress: list[SyncProgress] = []
        pages: list[int] = []

        async def on_page(records: list[Any], gaps: list[LogGap]) -> None:
            pages.append(len(records))

        result = await client.sync_log(1, progress=progress.append, on_page=on_page)
        assert [r.seq for r in result.records] == list(range(1, 401))
        assert pages == [160, 160, 80]
        assert result.complete and result.next_seq == 401 and not result.gaps
        assert [p.next_seq for p in progress] == [161, 321, 401]
        assert progress[-1].remaining == 0 and progress[-1].fetched == 400

    in_session(check)


def test_sync_log_resumes_and_is_idempotent_at_the_end() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.log_last = 50
        first = await client.sync_log(1, page_size=20)
        scripted.log_last = 75  # the pen logged more since
        second = await client.sync_log(first.next_seq, page_size=20)
        assert [r.seq for r in second.records] == list(range(51, 76))
        third = await client.sync_log(second.next_seq)
        assert third.records == [] and third.complete and third.next_seq == 76

    in_session(check)


def test_sync_log_reports_rotation_gap_and_first_available() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.log_first, scripted.log_last = 120, 200
        result = await client.sync_log(50)
        assert result.first_available == 120
        assert result.gaps == [LogGap(50, 119, "rotated")] and result.lost == 70
        assert result.records[0].seq == 120 and result.next_seq == 201
        assert any(p.kind == "log" for p in client.problems)

    in_session(check)


def test_sync_log_reports_missing_records_inside_pages() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        scripted.log_last = 30
        scripted.missing = {5, 6, 30}
        result = await client.sync_log(1, page_size=10)
        assert LogGap(5, 6, "missing") in result.gaps
        assert result.records[-1].seq == 29
        # seq 30 is "last" but never delivered: the sync stops instead of looping
        assert not result.complete and result.next_seq == 30

    in_session(check)


def test_sync_log_on_an_empty_log() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        result = await client.sync_log(1)
        assert result.records == [] and result.complete and result.last_seq == 0

    in_session(check)


def test_sync_log_interrupted_by_a_drop_keeps_what_was_stored() -> None:
    async def body() -> None:
        scripted = ScriptedPen()
        scripted.log_last = 100
        stored: list[int] = []
        async with session(scripted) as (client, _, pen_end):

            def drop_on_third_page(seq: int, fields: dict[str, Any]) -> Any:
                if fields["from_seq"] > 20:
                    pen_end.drop()
                    return []
                return None

            scripted.scripts[wire.T_LOG_READ] = drop_on_third_page

            def on_page(records: list[Any], gaps: list[LogGap]) -> None:
                stored.extend(r.seq for r in records)

            with pytest.raises(LinkLost):
                await client.sync_log(1, page_size=10, on_page=on_page)
        assert stored == list(range(1, 21))
        # a new connection resumes from the last stored seq + 1
        async with session(scripted) as (client, _, _end):
            del scripted.scripts[wire.T_LOG_READ]
            result = await client.sync_log(stored[-1] + 1)
            assert result.records[0].seq == 21 and result.next_seq == 101

    run(body())


def test_page_size_respects_the_pens_max_frame() -> None:
    async def check(client: Pen, scripted: ScriptedPen, _: LoopbackTransport) -> None:
        assert client.max_page_records() == MAX_PAGE_RECORDS
        assert client.info is not None
        object.__setattr__(client.info, "max_frame", 512)
        assert client.max_page_records() == (512 - 15) // 22

    in_session(check)


def test_closed_client_refuses_requests() -> None:
    async def body() -> None:
        async with session() as (client, _, _end):
            pass
        with pytest.raises(LinkLost):
            await client.status()

    run(body())
