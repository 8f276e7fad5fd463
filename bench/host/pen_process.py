"""The pen side of the two-process log-sync benchmark: a virtual pen in its own process.

Started by ``bench_sync.py --two-process``. Boots the full firmware on a virtual
pen, fills its log with N records through the firmware's store, exposes its radio
through the HCI TCP bridge and prints ``port <n>`` and ``address <a>``. Then it
answers lines on stdin: ``passkey`` (prints the passkey the pen shows once it shows
one), ``blast <k>`` (notifies k full-size payloads to the subscribed host as fast as
it can; prints ``sent``), ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for sub in ("host", "protocol", "hardware"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sync import EPOCH, fill_log, wait_until  # noqa: E402

from scalppen_hardware import ble_radio  # noqa: E402
from scalppen_hardware.hci_bridge import start_hci_bridge  # noqa: E402
from scalppen_hardware.virtual_pen import VirtualPen  # noqa: E402
from scalppen_protocol.codes import PenState  # noqa: E402


async def serve(records: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pen-") as tmp:
        link = ble_radio.new_link()
        vpen = VirtualPen(Path(tmp) / "flash", link, speed=None, epoch=EPOCH)
        await vpen.start()
        await wait_until(lambda: vpen.app.pen.state == PenState.IDLE, 10.0, "homing")
        vpen.pause()
        last = fill_log(vpen, records)
        vpen.resume()
        bridge = await start_hci_bridge(link)
        print(f"port {bridge.port}", flush=True)
        print(f"address {vpen.radio.address.to_string(False)}", flush=True)
        print(f"records {vpen.app.store.first_seq()} {last}", flush=True)
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
                if not line or line == "quit":
                    break
                if line == "passkey":
                    await wait_until(lambda: vpen.passkey is not None, 20.0, "the passkey")
                    print(f"passkey {vpen.passkey:06d}", flush=True)
                elif line.startswith("blast "):
                    ble = vpen.app.ble
                    await wait_until(lambda: vpen.app.ble.link_up, 10.0, "a subscribed host")
                    payload = bytes(range(256))[:ble.payload_size]
                    for i in range(int(line.split()[1])):
                        if not ble.send(payload):
                            raise RuntimeError("the pen refused to notify")
                        if i % 50 == 49:
                            await asyncio.sleep(0)
                    print("sent", flush=True)
        finally:
            await bridge.close()
            await vpen.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    asyncio.run(serve(ap.parse_args().records))
