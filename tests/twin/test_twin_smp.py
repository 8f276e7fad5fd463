"""MCUmgr SMP on the pen (issue 16, first step): the firmware serves the standard
SMP GATT service, and a third-party client, smpclient with its own bumble
transport, reaches the twin over the sim's HCI bridge as it would reach a pen over
a USB dongle: it pairs by passkey (the pen's display), then echo, MCUmgr
parameters and the image state, with the hash of the running build's manifest.
Without an authenticated bond the pen answers nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from bumble.att import ATT_Error, ErrorCode
from bumble.hci import Address
from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead
from smpclient.requests.os_management import EchoWrite, MCUMgrParametersRead, ResetWrite
from smpclient.transport.bumble import SMPBumbleTransport
from smpclient.transport.bumble.keystore import Tempfile
from smpclient.transport.bumble.pairing import KeyboardOnly, NoInputNoOutput

from scalppen_hardware.hci_bridge import start_hci_bridge
from tests.e2e.vpen_fixtures import within
from tests.twin.twin_rig import twin_rig


def run(coro: object, timeout: float = 120.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_smpclient_pairs_and_reads_echo_parameters_and_image_state(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            bridge = await start_hci_bridge(r.twin.link)
            try:
                async def passkey() -> int:
                    return int(await r.passkey())

                transport = SMPBumbleTransport(
                    hci=f"tcp-client:127.0.0.1:{bridge.port}",
                    host_address=Address("F0:5C:81:00:00:02"),
                    keystore=Tempfile(), pair_on_connect=KeyboardOnly(passkey))
                client = SMPClient(transport, r.address, timeout_s=10.0)
                await within(client.connect(20.0), 30.0)
                try:
                    echo = await within(client.request(EchoWrite(d="scalp pen")))
                    assert success(echo) and echo.r == "scalp pen"
                    params = await within(client.request(MCUMgrParametersRead()))
                    assert success(params) and params.buf_size == 512 and params.buf_count == 1
                    states = await within(client.request(ImageStatesRead()))
                    assert success(states), states
                    active = [s for s in states.images if s.active]
                    assert len(active) == 1 and active[0].confirmed
                    slot = "ab"[active[0].slot]
                    manifest = (r.twin.flash_dir / slot / "manifest.json").read_bytes()
                    assert active[0].version == json.loads(manifest)["version"]
                    assert bytes(active[0].hash) == hashlib.sha256(manifest).digest()
                    # not served yet: a clean error, and the pen goes on
                    reset = await within(client.request(ResetWrite()))
                    assert error(reset)
                    again = await within(client.request(EchoWrite(d="still here")))
                    assert success(again) and again.r == "still here"
                finally:
                    await within(client.disconnect())
            finally:
                await bridge.close()

    run(scenario())


def test_a_central_without_an_authenticated_bond_gets_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            await r.pair()  # the pen has its owner: a stranger cannot pair now
            bridge = await start_hci_bridge(r.twin.link)
            try:
                transport = SMPBumbleTransport(
                    hci=f"tcp-client:127.0.0.1:{bridge.port}",
                    host_address=Address("F0:5C:81:00:00:03"),
                    keystore=Tempfile(), pair_on_connect=NoInputNoOutput())
                client = SMPClient(transport, r.address, timeout_s=3.0)
                try:
                    await within(client.connect(10.0), 30.0)
                    got = await within(client.request(EchoWrite(d="let me in")), 10.0)
                except Exception as exc:
                    got = exc
                finally:
                    await within(client.disconnect())
                # the stack refuses the unauthenticated link at the SMP characteristic
                assert isinstance(got, ATT_Error), f"the pen answered a stranger: {got!r}"
                assert got.error_code == ErrorCode.INSUFFICIENT_AUTHENTICATION
                assert await r.twin.probe("app.smp is None and not app.smp_q")  # nothing served
            finally:
                await bridge.close()

    run(scenario())
