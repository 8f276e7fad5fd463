"""Firmware update over SMP (issue 16): today's bundle, signed, uploaded into the
twin by smpclient over the virtual link at MTU 247; beside it, the raw rate at
which the pen takes ATT writes on the same link (its SMP share of a 10 ms tick:
pen/mgmt.py PER_TICK writes of MTU - 3 bytes); the protocol's overhead and
what it gives at a real radio's rate; Ed25519 verification in MicroPython's unix
port (the twin's interpreter); the heap the update modules take.

The virtual link has no radio timing: the pen's figures are in its own (virtual)
time, 10 ms ticks, which also runs while the twin waits for the host (its idle
clock); wall times are this machine's processing. The radio-rate line
is computed from the bytes on the wire.

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

from bumble.hci import Address  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from smpclient import SMPClient  # noqa: E402
from smpclient.requests.image_management import ImageUploadWrite  # noqa: E402
from smpclient.transport.bumble import SMPBumbleTransport  # noqa: E402
from smpclient.transport.bumble.keystore import Custom  # noqa: E402
from smpclient.transport.bumble.pairing import KeyboardOnly  # noqa: E402
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
        async with twin_rig(tmp, speed=None, bundle_dir=bundle, heap_kb=320) as r:
            bridge = await start_hci_bridge(r.twin.link)
            try:
                async def passkey() -> int:
                    return int(await r.passkey())

                transport = SMPBumbleTransport(
                    hci=f"tcp-client:127.0.0.1:{bridge.port}",
                    host_address=Address("F0:5C:81:00:00:10"),
                    keystore=Custom(tmp / "bonds.json"), pair_on_connect=KeyboardOnly(passkey))
                client = SMPClient(transport, r.address, timeout_s=10.0)
                await client.connect(20.0)
                t0 = time.monotonic()
                v0 = r.twin.clock.world_us
                offsets = [off async for off in client.upload(image)]
                upload_s = time.monotonic() - t0
                upload_virtual_s = (r.twin.clock.world_us - v0) / 1e6
                assert offsets[-1] == len(image)
                await client.disconnect()
            finally:
                await bridge.close()
        req, resp = wire_bytes(image, offsets)
        chunk = [b - a for a, b in zip([0, *offsets], offsets, strict=False)]
        say("requests (window: 1 request at a time, buf_size 512)",
            f"{len(offsets)}, data per request {min(chunk[1:] or chunk)}-{max(chunk)} B")
        mgmt = (ROOT / "firmware" / "pen" / "mgmt.py").read_text()
        per_tick = int(re.search(r"PER_TICK = const\((\d+)\)", mgmt).group(1))  # type: ignore[union-attr]
        raw_bps = per_tick * (MTU - ATT_HEADER) / 0.010
        say("upload, the pen's time (virtual, 10 ms ticks)", f"{upload_virtual_s:.2f} s, "
            f"{len(image) / upload_virtual_s / 1024:.1f} kB/s")
        say(f"raw: ATT writes the pen takes ({per_tick} x {MTU - ATT_HEADER} B a tick)",
            f"{raw_bps / 1024:.0f} kB/s, {len(image) / raw_bps:.2f} s for these bytes")
        share = len(image) / raw_bps / upload_virtual_s
        say("upload rate as a share of raw (goal >= 70 %)",
            f"{share * 100:.0f} % ({'met' if share >= 0.7 else 'NOT met'}: one request at a "
            "time, each waits for its answer and the next tick)")
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
