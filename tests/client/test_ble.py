"""BLE: fragmentation at real MTUs, and BleTransport over an in-memory bleak backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pen import link, wire

from scalppen.client import LinkLost, Pen
from scalppen.transports.base import ConnectError, NotPaired, PairingFailed
from scalppen.transports.base import LinkLost as TransportLinkLost
from scalppen.transports.ble import BleTransport, FoundPen, is_auth_error, scan
from scalppen.transports.ble_framing import BleFramer, clamp_mtu
from scalppen_protocol.codes import MAX_FRAME, ErrorCode
from scalppen_protocol.errors import ProtocolError
from tests.client.fake_bleak import ADDRESS, UUIDS, FakePenClient, FakeScanner, World
from tests.client.scripted_pen import make_record, run

pytestmark = pytest.mark.timeout(30)

MTUS = [23, 185, 247, 517]


def big_page_frame(records: int = 160) -> bytes:
    return wire.encode(wire.T_LOG_PAGE, 7, {
        "first_seq": 1, "last_seq": records,
        "records": [make_record(s) for s in range(1, records + 1)]})


# -- the framing, without a radio ----------------------------------------------------------


@pytest.mark.parametrize("mtu", MTUS)
def test_host_fragments_are_reassembled_by_the_firmware(mtu: int) -> None:
    framer = BleFramer(mtu)
    for size in (6, mtu - 5, mtu - 4, 3 * (mtu - 5) + 1, MAX_FRAME):
        frame = bytes(i % 251 for i in range(size))
        parts = framer.split(frame)
        assert all(len(p) <= mtu - 3 for p in parts)
        assert len(parts) == -(-size // (mtu - 5))
        pen = link.Reassembler()
        results = [pen.feed(p) for p in parts]
        assert results[-1] == frame and all(r is None for r in results[:-1])


@pytest.mark.parametrize("mtu", MTUS)
def test_firmware_notifications_are_reassembled_by_the_host(mtu: int) -> None:
    framer = BleFramer(mtu)
    for counter, frame in enumerate([big_page_frame(), big_page_frame(1), b"\x01\x7e\x01\x00"]):
        out = [framer.join(p) for p in link.fragment(frame, mtu, counter)]
        assert out[-1] == frame and all(r is None for r in out[:-1])


def test_message_counter_advances_and_wraps() -> None:
    framer = BleFramer(23)
    controls = [framer.split(b"\x00" * 4)[0][0] & 0x3F for _ in range(70)]
    assert controls[:3] == [0, 1, 2] and controls[64] == 0


def test_damaged_fragments_drop_one_message_then_recover() -> None:
    framer = BleFramer(23)
    frame = big_page_frame(3)
    parts = link.fragment(frame, 23, 5)
    framer.join(parts[0])
    with pytest.raises(ProtocolError) as gap:
        framer.join(parts[2])  # fragment 1 lost
    assert gap.value.code == ErrorCode.OUT_OF_ORDER
    with pytest.raises(ProtocolError):
        framer.join(b"\x00")  # too short
    out = [framer.join(p) for p in link.fragment(frame, 23, 6)]
    assert out[-1] == frame


def test_mtu_is_clamped_to_the_protocol_range() -> None:
    assert clamp_mtu(0) == 23 and clamp_mtu(23) == 23 and clamp_mtu(9000) == 517
    assert BleFramer(1000).chunk == 512


def test_auth_errors_are_recognised() -> None:
    from bleak.exc import BleakError, BleakGATTProtocolError

    assert is_auth_error(BleakGATTProtocolError(0x05))
    assert is_auth_error(BleakGATTProtocolError(0x0F))
    assert not is_auth_error(BleakGATTProtocolError(0x0A))
    assert is_auth_error(BleakError("[org.bluez.Error.NotPermitted] Insufficient Encryption"))
    assert not is_auth_error(BleakError("something else"))


# -- BleTransport over the fake backend ---------------------------------------------------------


def transport(world: World, **kwargs: Any) -> BleTransport:
    kwargs.setdefault("retry_delay", 0.01)
    return BleTransport(ADDRESS, backend=FakePenClient, uuids=UUIDS,
                        client_kwargs={"world": world}, **kwargs)


@pytest.mark.parametrize("mtu", MTUS)
def test_pen_over_ble_at_each_mtu(mtu: int) -> None:
    world = World(mtu=mtu)
    world.pen.log_last = 320

    async def body() -> None:
        ble = transport(world)
        async with Pen(ble, timeout=2.0) as client:
            assert ble.mtu == mtu
            assert client.info is not None and client.info.serial == "SP1-000042"
            result = await client.sync_log(1)
            assert [r.seq for r in result.records] == list(range(1, 321))
            await client.arm({"max_depth_um": 500, "max_duration_s": 900,
                              "issued_at": 1, "expires_at": 2, "nonce": bytes(8),
                              "patient": bytes(8), "tag": bytes(range(32))})
            assert not client.problems
        assert not ble.connected

    run(body())
    assert world.log.index("subscribe") < world.log.index("write"), "HELLO before subscribing"
    assert world.log[-1] == "disconnect"
    assert world.pen.errors == []


def test_connect_retries_with_a_fresh_client_each_time() -> None:
    world = World(fail_connects=2)

    async def body() -> None:
        ble = transport(world, attempts=3)
        await ble.connect()
        assert ble.connected
        await ble.close()

    run(body())
    attempts = [e for e in world.log if e.startswith("connect")]
    assert attempts == ["connect-failed", "connect-failed", "connect"]
    assert len({id(c) for c in world.clients}) == 3


def test_connect_gives_up_with_connect_error() -> None:
    world = World(fail_connects=5)

    async def body() -> None:
        with pytest.raises(ConnectError, match="3 attempts"):
            await transport(world, attempts=3).connect()

    run(body())
    assert len(world.clients) == 3


def test_connect_timeout_is_at_least_ten_seconds() -> None:
    ble = BleTransport(ADDRESS, connect_timeout=1.0, uuids=UUIDS)
    assert ble._connect_timeout >= 10.0


def test_unpaired_pen_raises_not_paired_then_pairing_works() -> None:
    world = World(require_bond=True)

    async def body() -> None:
        ble = transport(world)
        with pytest.raises(NotPaired) as refused:
            await ble.connect()
        assert refused.value.att_error == 0x05
        assert not ble.connected
        with pytest.raises(PairingFailed):
            await ble.pair(lambda: "000000")
        assert not world.bonded

        async def typed() -> str:
            return "123456"

        await ble.pair(typed)
        assert ble.connected and world.bonded
        async with Pen(ble, timeout=1.0) as client:
            assert (await client.status()).battery_pct == 81

    run(body())


def test_damaged_notifications_do_not_kill_the_receive_path() -> None:
    world = World(mtu=23)

    async def body() -> None:
        ble = transport(world)
        async with Pen(ble, timeout=1.0) as client:
            fake = world.clients[-1]
            good = link.fragment(big_page_frame(2), 23, 40)
            fake.notify_raw(good[0])
            fake.notify_raw(good[2])  # a fragment lost on the way
            fake.notify_raw(b"\x80")  # truncated
            fake.notify_raw(good[1])  # continuation without a start
            bad_frame = b"\x01\x82\x01\x00\x05\x00abc"  # complete but undecodable
            fake.notify_frame(bad_frame)
            await asyncio.sleep(0.02)
            kinds = [p.kind for p in client.problems]
            assert kinds.count("link") == 3 and kinds.count("decode") == 1
            assert ble.link_errors == 3
            assert (await client.status()).battery_pct == 81
            assert (await client.wear()).needles == 12

    run(body())


def test_link_drop_mid_request_fails_at_once() -> None:
    world = World()
    world.pen.silent[wire.T_GET_STATUS] = -1

    async def body() -> None:
        ble = transport(world)
        async with Pen(ble, timeout=10.0) as client:
            task = asyncio.create_task(client.status())
            while world.pen.counts[wire.T_GET_STATUS] == 0:
                await asyncio.sleep(0.005)
            started = time.monotonic()
            world.clients[-1].drop()
            with pytest.raises(LinkLost):
                await task
            assert time.monotonic() - started < 0.5
            assert not ble.connected
            # reconnecting makes a new BleakClient and works again
            await client.open()
            await client.hello()
            world.pen.silent.clear()
            assert (await client.status()).battery_pct == 81
            assert len(world.clients) == 2

    run(body())


def test_write_while_dropped_raises_link_lost() -> None:
    world = World()

    async def body() -> None:
        ble = transport(world)
        await ble.connect()
        world.clients[-1].drop()
        with pytest.raises(TransportLinkLost):
            await ble.send_frame(wire.encode(wire.T_GET_STATUS, 1, {}))
        await ble.close()

    run(body())


def test_scan_lists_only_pens_strongest_first() -> None:
    FakeScanner.heard = [
        ("AA:00:00:00:00:01", "SP-1 far", [UUIDS.service], -80),
        ("AA:00:00:00:00:02", "headphones", ["0000180f-0000-1000-8000-00805f9b34fb"], -30),
        ("AA:00:00:00:00:03", "SP-1 near", [UUIDS.service], -40),
        ("AA:00:00:00:00:04", None, [UUIDS.service], -60),
    ]

    async def body() -> list[FoundPen]:
        return await scan(0.01, backend=FakeScanner, uuids=UUIDS)

    found = run(body())
    assert found == [
        FoundPen("SP-1 near", "AA:00:00:00:00:03", -40),
        FoundPen("", "AA:00:00:00:00:04", -60),
        FoundPen("SP-1 far", "AA:00:00:00:00:01", -80),
    ]
