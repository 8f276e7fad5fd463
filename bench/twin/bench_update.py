"""Firmware update over SMP (issue 16): today's bundle, signed, uploaded into the
twin by smpclient over the virtual link at MTU 247; beside it, the raw rate at
which the pen takes ATT writes on the same link, measured with a flood of writes
without response on the same connection (the pen takes at most pen/app.py
_SMP_IN_BYTES a 10 ms tick and drops the rest); the protocol's overhead and what
it gives at a real radio's rate; Ed25519 verification in MicroPython's unix port
(the twin's interpreter); the heap the update modules take.

The twin is paced to wall time (speed 1), so the pen's time is the host's: a
request that the laptop does not send before the pen's next tick costs a tick.
The virtual link has no radio timing; the radio-rate line is computed from the
bytes on the wire.

Run: ``.venv/bin/python bench/twin/bench_update.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for sub in ("host", "protocol", "hardware", "."):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from smpclient import SMPClient  # noqa: E402
from smpclient.requests.image_management import ImageUploadWrite  # noqa: E402
from smpclient.transport.bumble import SMPBumbleTransport  # noqa: E402
from tests.twin.twin_rig import twin_rig  # noqa: E402

from scalppen.flash.build import build_bundle  # noqa: E402
from scalppen.flash.image import pack_image  # noqa: E402
from scalppen.release import public_raw  # noqa: E402
from scalppen_hardware.hci_bridge import start_hci_bridge  # noqa: E402

MTU = 247
ATT_HEADER = 3
#: Nordic's figure for SMP uploads over a real BLE link (window 3), kB/s.
RADIO_KBPS = 18.0
#: MicroPython on a 240 MHz ESP32-S3 against its unix port on this machine, for
#: big-number code: an assumption until measured on a pen (see the note printed).
#: The check is big-number arithmetic, which the pen's 32-bit MicroPython keeps in
#: 16-bit digits where the unix port on x86-64 keeps 32-bit ones (py/mpz.h
#: MPZ_DIG_SIZE): four times the digit products per multiplication, on top of the
#: clock. The figure is an order of magnitude, not a promise.
ASSUMED_S3_SLOWDOWN = 100


def say(label: str, value: str) -> None:
    print(f"  {label:<56} {value}", flush=True)


def micropython_verify_ms(bundle: Path, key: Ed25519PrivateKey) -> float:
    msg = hashlib.sha256(b"bench").digest()
    sig = key.sign(msg)
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(bundle)!r})\n"
        "from pen import ed25519\n"
        f"pub = bytes.fromhex({public_raw(key).hex()!r})\n"
        f"msg = bytes.fromhex({msg.hex()!r})\n"
        f"sig = bytes.fromhex({sig.hex()!r})\n"
        "best = None\n"
        "for _ in range(5):\n"
        "    t = time.ticks_us()\n"
        "    assert ed25519.verify(pub, msg, sig)\n"
        "    d = time.ticks_diff(time.ticks_us(), t)\n"
        "    best = d if best is None or d < best else best\n"
        "print(best)\n"
    )
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "micropython"), "-X", "heapsize=256k",
                          "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1000


def heap_of_update_modules(bundle: Path) -> int:
    script = (
        "import gc, sys\n"
        f"sys.path.insert(0, {str(bundle)!r})\n"
        "gc.collect(); a = gc.mem_alloc()\n"
        "from pen import smp, cbor, images, update, ed25519\n"
        "gc.collect(); print(gc.mem_alloc() - a)\n"
    )
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "micropython"), "-X", "heapsize=256k",
                          "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def wire_bytes(image: bytes, offsets: list[int]) -> tuple[int, int]:
    """(request bytes incl. ATT headers, answer bytes incl. ATT headers) of the upload."""
    sha = hashlib.sha256(image).digest()
    req = resp = 0
    start = 0
    for i, off in enumerate(offsets):
        data = image[start:off]
        if i == 0:
            r = ImageUploadWrite(off=0, data=data, len=len(image), sha=sha)
        else:
            r = ImageUploadWrite(off=start, data=data)
        n = len(r.BYTES)
        req += n + math.ceil(n / (MTU - ATT_HEADER)) * ATT_HEADER
        resp += 8 + 1 + 4 + 5 + ATT_HEADER  # header, {"off": u32}
        start = off
    return req, resp


_BURST = 16  # writes
_BURST_GAP_S = 0.005


async def raw_intake(r: object, transport: SMPBumbleTransport, writes: int = 2000) -> tuple[float, int]:
    """The pen's raw SMP intake on this link, bytes/s of its time: ``writes`` ATT
    writes without response of MTU - 3 bytes, about four times as fast as the pen
    takes them. They
    are not a request (a length past buf_size: the pen ignores the rest of the link)
    and the pen drops what does not fit in a tick; what it took is its smp_out."""
    twin = r.twin  # type: ignore[attr-defined]
    size = MTU - ATT_HEADER
    in0, out0, dropped0 = await twin.probe("(app.smp_in, app.smp_out, app.dropped)")
    v0 = twin.clock.world_us
    for _ in range(writes // _BURST):
        # bursts faster than the pen takes them (a virtual link has no radio to
        # pace it, and the twin's bridge carries a tick's writes in one message)
        await transport.send(b"\xff" * (size * _BURST))
        await asyncio.sleep(_BURST_GAP_S)
    while True:  # until every write reached the pen (taken or dropped) and was served
        got, out, dropped, queued = await twin.probe(
            "(app.smp_in, app.smp_out, app.dropped, len(app.smp_q))")
        if got - in0 + (dropped - dropped0) * size >= size * writes and not queued:
            break
    return (out - out0) / ((twin.clock.world_us - v0) / 1e6), writes


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="scalppen-update-") as d:
        tmp = Path(d)
        key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        bundle = tmp / "bundle" / "firmware"
        build_bundle(ROOT / "firmware", bundle, ROOT / "hardware" / "boards" / "pen-s3-revb.json",
                     release_key=public_raw(key))
        image = pack_image(bundle, key)
        print(f"today's bundle as a signed image: {len(image):,} bytes, "
              f"{sum(1 for _ in bundle.rglob('*.mpy'))} modules; MTU {MTU}")
        async with twin_rig(tmp, speed=1.0, bundle_dir=bundle, heap_kb=320) as r:
            bridge = await start_hci_bridge(r.twin.link)
            try:
                transport = r.smp_transport(bridge.port, "F0:5C:81:00:00:10")
                client = SMPClient(transport, r.address, timeout_s=10.0)
                await client.connect(20.0)
                t0 = time.monotonic()
                v0 = r.twin.clock.world_us
                offsets = [off async for off in client.upload(image)]
                upload_s = time.monotonic() - t0
                upload_virtual_s = (r.twin.clock.world_us - v0) / 1e6
                assert offsets[-1] == len(image)
                raw_bps, flood = await raw_intake(r, transport)
                await client.disconnect()
            finally:
                await bridge.close()
        req, resp = wire_bytes(image, offsets)
        chunk = [b - a for a, b in zip([0, *offsets], offsets, strict=False)]
        params = (ROOT / "firmware" / "pen" / "smp.py").read_text()
        buf_size = int(re.search(r"BUF_SIZE = const\((\d+)\)", params).group(1))  # type: ignore[union-attr]
        say(f"requests (window: 1 request at a time, buf_size {buf_size})",
            f"{len(offsets)}, data per request {min(chunk)}-{max(chunk)} B")
        say("upload, the pen's time (paced: the host's too)", f"{upload_virtual_s:.2f} s, "
            f"{len(image) / upload_virtual_s / 1024:.1f} kB/s")
        say(f"raw: a flood of {flood} writes of {MTU - ATT_HEADER} B without response, "
            "what the pen took", f"{raw_bps / 1024:.0f} kB/s")
        share = len(image) / raw_bps / upload_virtual_s
        say("upload rate as a share of raw (goal >= 70 %)",
            f"{share * 100:.0f} % ({'met' if share >= 0.7 else 'NOT met'}: one request a tick "
            "at best, each waits for its answer)")
        say("upload over the virtual link, wall (this machine)", f"{upload_s:.2f} s, "
            f"{len(image) / upload_s / 1024:.1f} kB/s")
        eff = len(image) / (req + resp)
        say("image bytes / bytes on the wire (SMP, CBOR, ATT headers, answers)",
            f"{eff * 100:.1f} %")
        say(f"at {RADIO_KBPS:.0f} kB/s on a real radio (Nordic, window 3)",
            f"{RADIO_KBPS * eff:.1f} kB/s of image, {len(image) / 1024 / (RADIO_KBPS * eff):.1f} s"
            " for this image (window 1 adds a connection interval per request)")
        ms = micropython_verify_ms(bundle, key)
        say("Ed25519 verify in MicroPython's unix port (best of 5)", f"{ms:.1f} ms")
        say(f"  ESP32-S3 estimate (assumed {ASSUMED_S3_SLOWDOWN}x slower, not measured)",
            f"{ms * ASSUMED_S3_SLOWDOWN / 1000:.1f} s; the check feeds the watchdog every "
            "32 bits; production: a native module (libsodium)")
        say("heap of the SMP and update modules (.mpy, 64-bit)",
            f"{heap_of_update_modules(bundle) / 1024:.1f} KiB (frozen in a production build: 0)")
        print("  note: the 100x is an assumption for the order of magnitude only; a pen on "
              "the bench gives the real figure.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
