"""MCUmgr SMP on the pen (issue 16, first step): the firmware serves the standard
SMP GATT service, and a third-party client, smpclient with its own bumble
transport, reaches the twin over the sim's HCI bridge as it would reach a pen over
a USB dongle: it pairs by passkey (the pen's display), then echo, MCUmgr
parameters and the image state, with the hash of the running build's manifest.
Without an authenticated bond the pen answers nothing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from bumble.att import ATT_Error, ErrorCode
from bumble.hci import Address
from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead
from smpclient.requests.os_management import (
    EchoWrite,
    MCUMgrParametersRead,
    ResetWrite,
    TaskStatisticsRead,
)
from smpclient.transport.bumble import SMPBumbleTransport
from smpclient.transport.bumble.keystore import Tempfile
from smpclient.transport.bumble.pairing import KeyboardOnly, NoInputNoOutput

from scalppen.transports.bumble_bleak import bumble_link
from scalppen_hardware.hci_bridge import start_hci_bridge
from scalppen_protocol.codes import UpdateOutcome
from tests.e2e.vpen_fixtures import wait_until, within
from tests.twin.twin_rig import twin_rig

#: The firmware's heap for an update, KiB (64-bit objects). The SMP and update
#: modules' code is loaded into the heap from .mpy files here (29 KiB on 64-bit,
#: measured by bench/twin/bench_update.py); a production build freezes it into
#: flash (hardware/micropython-board/SCALPPEN_S3/manifest.py), and the pen's heap
#: grows on demand (docs/fidelity.md, "Heap"). At the tests' default 256 KiB the
#: index buffer (2 KiB) sometimes found no room in the fragmented heap.
UPDATE_HEAP_KB = 320


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
                    assert success(params) and params.buf_size == 2048 and params.buf_count == 1
                    states = await within(client.request(ImageStatesRead()))
                    assert success(states), states
                    active = [s for s in states.images if s.active]
                    assert len(active) == 1 and active[0].confirmed
                    slot = "ab"[active[0].slot]
                    manifest = (r.twin.flash_dir / slot / "manifest.json").read_bytes()
                    assert active[0].version == json.loads(manifest)["version"]
                    assert bytes(active[0].hash) == hashlib.sha256(manifest).digest()
                    # not served: a clean error, and the pen goes on
                    tasks = await within(client.request(TaskStatisticsRead()))
                    assert error(tasks) and tasks.rc == 8  # MGMT_ERR_ENOTSUP
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


def test_a_flood_on_the_smp_characteristic_is_dropped_and_the_pen_answers_on_a_new_link(
        tmp_path: Path) -> None:
    # A bonded client writes 600 ATT writes without response (146 kB) as fast as it
    # can: the pen keeps at most one request's worth (2 KiB) a tick and drops the
    # rest; it neither resets nor runs out of heap (nor does the twin: the bridge
    # hands a tick's writes over a dozen at a time), and answers on the next link.
    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None) as r:
            bridge = await start_hci_bridge(r.twin.link)
            try:
                def client_for() -> tuple[SMPBumbleTransport, SMPClient]:
                    t = r.smp_transport(bridge.port, "F0:5C:81:00:00:07")
                    return t, SMPClient(t, r.address, timeout_s=10.0)

                transport, client = client_for()
                await within(client.connect(20.0), 30.0)
                boots = r.twin.boots
                dropped0 = await r.twin.probe("app.dropped")
                try:
                    for _ in range(30):
                        await transport.send(b"\xff" * (244 * 20))
                        await asyncio.sleep(0.01)

                    for _ in range(3000):  # until every write reached the pen and was served
                        assert not r.twin.errors, r.twin.errors[0][-600:]
                        got, queued, dropped = await r.twin.probe(
                            "(app.smp_in, len(app.smp_q), app.dropped)")
                        if not queued and got + (dropped - dropped0) * 244 >= 600 * 244:
                            break
                    else:
                        raise AssertionError("the flood never reached the pen")
                finally:
                    await within(client.disconnect())
                assert r.twin.boots == boots and not r.twin.errors  # no reset, no crash
                assert await r.twin.probe("app.dropped") - dropped0 > 0
                transport, client = client_for()
                await within(client.connect(20.0), 30.0)
                try:
                    echo = await within(client.request(EchoWrite(d="after the flood")))
                    assert success(echo) and echo.r == "after the flood"
                finally:
                    await within(client.disconnect())
            finally:
                await bridge.close()

    run(scenario())


def _signed_bundle(tmp: Path, firmware: Path | None = None,
                   name: str = "bundle") -> tuple[Path, bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from scalppen.flash.build import build_bundle
    from scalppen.flash.image import pack_image
    from scalppen.release import public_raw

    root = Path(__file__).resolve().parents[2]
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    out = tmp / name / "firmware"
    build_bundle(firmware or root / "firmware", out,
                 root / "hardware" / "boards" / "pen-s3-revb.json", release_key=public_raw(key))
    return out, pack_image(out, key)


async def _smp_client(r, bridge, host: str) -> SMPClient:  # type: ignore[no-untyped-def]
    client = SMPClient(r.smp_transport(bridge.port, host), r.address, timeout_s=10.0)
    await within(client.connect(20.0), 30.0)
    return client


def test_smpclient_uploads_a_signed_image_into_the_inactive_slot_and_resumes_a_cut(
        tmp_path: Path) -> None:
    bundle, image = _signed_bundle(tmp_path)

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, bundle_dir=bundle, heap_kb=UPDATE_HEAP_KB) as r:
            bridge = await start_hci_bridge(r.twin.link)
            try:
                # the link is cut after the first request (the index not yet in,
                # nor its signature checked), half way, and near the end; each
                # new link goes on from where the pen stands
                cut = 0
                for stop_after in (1, len(image) // 2, len(image) - 3000):
                    client = await _smp_client(r, bridge, "F0:5C:81:00:00:04")
                    try:
                        offsets = []
                        async for off in client.upload(image):
                            offsets.append(off)
                            if off >= stop_after:
                                break
                    finally:
                        await within(client.disconnect())
                    assert offsets[0] > cut - 2100  # it went on (one request at most again)
                    cut = offsets[-1]
                    assert 0 < cut < len(image)
                client = await _smp_client(r, bridge, "F0:5C:81:00:00:04")
                try:
                    resumed = [off async for off in client.upload(image)]
                    assert resumed[0] > cut - 2100 and resumed[-1] == len(image)  # went on
                    states = await within(client.request(ImageStatesRead()))
                    assert success(states)
                    new = [s for s in states.images if s.slot == 1]
                    assert len(new) == 1 and not new[0].active and not new[0].confirmed
                    manifest = (bundle / "manifest.json").read_bytes()
                    assert bytes(new[0].hash) == hashlib.sha256(manifest).digest()
                finally:
                    await within(client.disconnect())
                assert (r.twin.flash_dir / "b" / "manifest.json").read_bytes() == manifest
            finally:
                await bridge.close()

    run(scenario(), 240)


def test_an_upload_is_refused_while_a_session_is_armed_and_after_it_goes_on(
        tmp_path: Path) -> None:
    # SMP on the host's own link (smpclient adopts the connection the toolkit made,
    # as `scalppen update` will): a permit armed on it, the upload is refused.
    from smpclient.requests.image_management import ImageUploadWrite

    bundle, image = _signed_bundle(tmp_path)

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, bundle_dir=bundle, heap_kb=UPDATE_HEAP_KB) as r:
            await r.pair()
            pen = await r.pen()
            try:
                link = bumble_link(pen.transport.bleak_client)  # type: ignore[attr-defined]
                assert link is not None
                transport = SMPBumbleTransport()
                await within(transport.use_connection(link[0], peer=link[1]))
                client = SMPClient(transport, r.address, timeout_s=10.0)
                first = ImageUploadWrite(off=0, data=image[:200], len=len(image),
                                         sha=hashlib.sha256(image).digest())
                await within(pen.arm((await r.permit(pen)).as_dict()))
                refused = await within(client.request(first))
                assert refused.rc == 10 and refused.off is None  # MGMT_ERR_EBUSY
                await within(pen.stop())  # the permit dropped: no session is pending
                took = await within(client.request(ImageUploadWrite(
                    off=0, data=image[:200], len=len(image),
                    sha=hashlib.sha256(image).digest())))
                assert success(took) and took.off == 200
                await within(transport.disconnect())
            finally:
                await within(pen.close())

    run(scenario())


def test_smpclients_bleak_transport_on_the_toolkits_bleak_client_uploads_and_sees_a_drop(
        tmp_path: Path) -> None:
    # The path `scalppen update` takes on the operating system's stack (BlueZ):
    # smpclient's bleak transport adopts the toolkit's BleakClient (here on the
    # toolkit's bumble backend, the same bleak API). A whole upload into the
    # spare slot; then the link drops under a request, which fails at once as a
    # disconnection, not after a timeout.
    from smpclient.transport import SMPTransportDisconnected

    from scalppen.workflows.update import smp_client

    bundle, image = _signed_bundle(tmp_path)

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, bundle_dir=bundle, heap_kb=UPDATE_HEAP_KB) as r:
            await r.pair()
            pen = await r.pen()
            try:
                client = await within(smp_client(pen, via_bleak=True), 20.0)
                assert type(client._transport).__name__ == "AdoptedBLETransport"
                assert client._transport.mtu == 244  # MTU 247 on the virtual link
                await within(_upload(client, image), 60.0)
                states = await within(client.request(ImageStatesRead()))
                spare = [s for s in states.images if not s.active]
                assert len(spare) == 1 and bytes(spare[0].hash) == _manifest_hash(bundle)
                loop = asyncio.get_running_loop()
                asking = asyncio.ensure_future(client.request(EchoWrite(d="x"), timeout_s=30.0))
                await pen.transport.bleak_client.disconnect()  # type: ignore[attr-defined]
                t0 = loop.time()
                try:
                    await within(asking, 10.0)
                except SMPTransportDisconnected:
                    pass
                else:
                    raise AssertionError("the request outlived its link")
                assert loop.time() - t0 < 5.0
            finally:
                await within(pen.close())

    run(scenario())


def test_smpmgr_the_mcumgr_command_line_reads_the_state_and_uploads(tmp_path: Path) -> None:
    # A third-party tool as its users run it: smpmgr 0.19.1 (installed beside the
    # toolkit), its --ble transport on a machine whose Bluetooth is a bumble
    # central on the twin's HCI bridge (tests/twin/smpmgr_host.py), bonded first.
    import sys

    from bleak import BleakClient

    from scalppen.transports.bumble_bleak import open_central

    bundle, image = _signed_bundle(tmp_path)
    (tmp_path / "next.spimg").write_bytes(image)
    address, keystore = "F0:5C:81:00:00:08", tmp_path / "smpmgr-bonds.json"

    async def smpmgr(port: int, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.twin.smpmgr_host", f"tcp-client:127.0.0.1:{port}",
            str(keystore), address, "--", "--ble", r.address, "--timeout", "10", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "COLUMNS": "200"})
        out, _ = await within(proc.communicate(), 120.0)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text
        return text

    async def scenario() -> None:
        nonlocal r
        async with twin_rig(tmp_path, speed=None, bundle_dir=bundle, heap_kb=UPDATE_HEAP_KB) as rig:
            r = rig
            bridge = await start_hci_bridge(rig.twin.link)
            try:
                central = await open_central(f"tcp-client:127.0.0.1:{bridge.port}",
                                             address=address, keystore_path=keystore)
                try:  # the pairing, made once as a user does it in the OS's settings
                    client = BleakClient(rig.address, backend=central.client_backend)
                    await within(client.connect(), 20.0)
                    await within(client.pair(passkey_provider=rig.passkey), 30.0)
                    for _ in range(500):  # the pen stores both halves of the bond
                        if await rig.twin.probe(_BOND_HALVES) == 2:
                            break
                    else:
                        raise AssertionError("the pen never stored the bond")
                    await within(client.disconnect())
                finally:
                    await central.close()
                states = await smpmgr(bridge.port, "image", "state-read")
                assert "0.1.0" in states and _manifest_hash(bundle).hex() in states.lower()
                await smpmgr(bridge.port, "image", "upload", str(tmp_path / "next.spimg"),
                             "--format", "any")
                states = await smpmgr(bridge.port, "image", "state-read")
                assert states.lower().count(_manifest_hash(bundle).hex()) == 2  # both slots
                assert await rig.twin.probe("app.smp.env.up.done")  # the whole image landed
            finally:
                await bridge.close()

    r: Any = None
    run(scenario(), 300)


async def _drop(client: SMPClient) -> None:
    # After the pen reset, the link is gone under smpclient: its disconnect would
    # wait on a GATT unsubscribe that never answers.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), 2.0)


async def _upload(client: SMPClient, image: bytes) -> None:
    offsets = [off async for off in client.upload(image)]
    assert offsets[-1] == len(image)


def _manifest_hash(bundle: Path) -> bytes:
    return hashlib.sha256((bundle / "manifest.json").read_bytes()).digest()


def _tree(tmp: Path, name: str, version: str = "", broken: bool = False) -> Path:
    """A copy of the firmware tree: another version, or an app that never starts."""
    import shutil

    tree = tmp / name
    shutil.copytree(Path(__file__).resolve().parents[2] / "firmware", tree)
    if version:
        (tree / "pen" / "version.py").write_text(
            re.sub(r'VERSION = "[^"]*"', f'VERSION = "{version}"',
                   (tree / "pen" / "version.py").read_text()))
    if broken:
        app = tree / "pen" / "app.py"
        app.write_text("raise RuntimeError('this build never starts')\n" + app.read_text())
    return tree


#: What the pen's INFO says of the last update (pen/handler.py), and its UPDATE
#: records as [code, a, b] (pen/store.py's records, read in the twin).
_INFO_UPDATE = "[app.handler.info()['update'], app.handler.info()['update_version']]"
_UPDATE_RECORDS = ("[[r['code'], r['a'], r['b']] for r in (__import__('pen.store').store"
                   ".unpack_record(x) for x in app.store.read(1, 160)[2]) if r['kind'] == 20]")


#: The secrets the pen keeps of its bonds (NimBLE's two halves per host).
_BOND_HALVES = "len([e for e in app.ble.bonds.entries if e[0] in (1, 2)])"


def _plain(v: object) -> object:
    # the probe's answer with its tuples as lists
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def test_a_tested_image_boots_once_confirms_itself_and_stays(tmp_path: Path) -> None:
    from smpclient.requests.image_management import ImageStatesWrite

    running, _ = _signed_bundle(tmp_path)
    bundle, image = _signed_bundle(tmp_path, _tree(tmp_path, "next", "0.1.1"), "next-bundle")

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, bundle_dir=running, heap_kb=UPDATE_HEAP_KB) as r:
            await r.twin.run_for(2000)  # slot a started well: it is the good one
            assert (r.twin.flash_dir / "good").read_text() == "a"
            bridge = await start_hci_bridge(r.twin.link)
            try:
                client = await _smp_client(r, bridge, "F0:5C:81:00:00:05")
                await within(_upload(client, image), 60.0)
                tested = await within(client.request(ImageStatesWrite(
                    hash=_manifest_hash(bundle), confirm=False)))
                assert success(tested), tested
                boots = r.twin.boots
                await within(client.request(ResetWrite()))
                await wait_until(lambda: r.twin.boots > boots, 20.0, "the reset")
                await _drop(client)
                await r.twin.run_for(2000)  # the new slot starts and marks itself good
                client = await _smp_client(r, bridge, "F0:5C:81:00:00:05")
                try:
                    states = await within(client.request(ImageStatesRead()))
                    assert success(states)
                    now = [s for s in states.images if s.active]
                    assert [s.slot for s in now] == [1] and now[0].confirmed
                    assert now[0].version == "0.1.1"
                finally:
                    await within(client.disconnect())
                assert (r.twin.flash_dir / "good").read_text() == "b"
                # INFO and the log say so, once (a restart does not log it again)
                assert _plain(await r.twin.probe(_INFO_UPDATE)) == [UpdateOutcome.KEPT, "0.1.1"]
                assert _plain(await r.twin.probe(_UPDATE_RECORDS)) == [
                    [UpdateOutcome.KEPT, 0x000101, 0x000101]]
                await r.twin.reboot()
                await r.twin.run_for(2000)
                assert _plain(await r.twin.probe(_INFO_UPDATE)) == [UpdateOutcome.KEPT, "0.1.1"]
                assert len(_plain(await r.twin.probe(_UPDATE_RECORDS))) == 1
            finally:
                await bridge.close()

    run(scenario(), 240)


def test_a_tested_image_that_does_not_start_is_rolled_back(tmp_path: Path) -> None:
    from smpclient.requests.image_management import ImageStatesWrite

    good, _ = _signed_bundle(tmp_path)
    broken, image = _signed_bundle(tmp_path, _tree(tmp_path, "broken-tree", "0.1.1", True),
                                   "broken")

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, bundle_dir=good, heap_kb=UPDATE_HEAP_KB) as r:
            await r.twin.run_for(2000)
            bridge = await start_hci_bridge(r.twin.link)
            try:
                client = await _smp_client(r, bridge, "F0:5C:81:00:00:06")
                await within(_upload(client, image), 60.0)
                assert success(await within(client.request(ImageStatesWrite(
                    hash=_manifest_hash(broken), confirm=False))))
                await within(client.request(ResetWrite()))
                await _drop(client)
                for _ in range(4):  # it never marks itself good; each reset counts a start
                    await wait_until(lambda: "this build never starts" in r.twin.console_text()
                                     or (r.twin.flash_dir / "active").read_text() == "a",
                                     20.0, "a start of the slot on trial")
                    if (r.twin.flash_dir / "active").read_text() == "a":
                        break
                    await r.twin.reboot()
                    await r.twin.run_for(500)
                assert (r.twin.flash_dir / "active").read_text() == "a"
                assert "rolling back to slot a" in r.twin.console_text()
                await r.twin.run_for(2000)
                client = await _smp_client(r, bridge, "F0:5C:81:00:00:06")
                try:
                    states = await within(client.request(ImageStatesRead()))
                    running = [s for s in states.images if s.active]
                    assert [s.slot for s in running] == [0] and running[0].confirmed
                finally:
                    await within(client.disconnect())
                # the build it went back to reports the outcome and logs it once
                assert _plain(await r.twin.probe(_INFO_UPDATE)) == [UpdateOutcome.ROLLED_BACK, "0.1.1"]
                assert _plain(await r.twin.probe(_UPDATE_RECORDS)) == [
                    [UpdateOutcome.ROLLED_BACK, 0x000101, 0x000100]]
            finally:
                await bridge.close()

    run(scenario(), 240)


def test_a_foreign_or_tampered_image_is_refused_inside_micropython(tmp_path: Path) -> None:
    # The refusals of pen/update.py, as the pen itself raises and answers them.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from scalppen.flash.image import pack_image

    bundle, image = _signed_bundle(tmp_path)
    foreign = pack_image(bundle, Ed25519PrivateKey.from_private_bytes(bytes(range(5, 37))))
    tampered = bytearray(image)
    tampered[-2000] ^= 0x10
    _older, downgrade = _signed_bundle(tmp_path, _tree(tmp_path, "older-tree", "0.0.9"), "older")

    async def attempt(client: SMPClient, data: bytes) -> str:
        try:
            async for _ in client.upload(bytes(data)):
                pass
        except Exception as exc:
            return str(exc)
        return "accepted"

    async def scenario() -> None:
        async with twin_rig(tmp_path, speed=None, bundle_dir=bundle,
                            heap_kb=UPDATE_HEAP_KB) as r:
            bridge = await start_hci_bridge(r.twin.link)
            try:
                client = await _smp_client(r, bridge, "F0:5C:81:00:00:07")
                try:
                    assert "rc=11" in await within(attempt(client, foreign), 60.0)  # EACCESSDENIED
                    assert "rc=9" in await within(attempt(client, tampered), 60.0)  # ECORRUPT
                    assert "rc=6" in await within(attempt(client, downgrade), 60.0)  # EBADSTATE
                    assert not (r.twin.flash_dir / "b" / "manifest.json").exists()
                    assert await r.twin.probe("app.smp_errors") == 0  # refusals, not failures
                finally:
                    await within(client.disconnect())
            finally:
                await bridge.close()

    run(scenario(), 180)
