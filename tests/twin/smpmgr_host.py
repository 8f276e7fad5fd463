"""Run smpmgr, the MCUmgr command line (intercreate/smpmgr), on a machine whose
Bluetooth is a bumble central on an HCI transport, e.g. the twin's HCI bridge:

    python -m tests.twin.smpmgr_host HCI KEYSTORE ADDRESS -- smpmgr's arguments

smpmgr reaches a device with smpclient's bleak transport (``--ble``), which uses
bleak's platform backend (BlueZ on Linux). Here bleak's platform backend is the
toolkit's bleak backend over bumble (``scalppen.transports.bumble_bleak``), on a
central opened inside each ``asyncio.run`` smpmgr makes, with the bonds in
KEYSTORE under the central's ADDRESS: as BlueZ holds a pairing made earlier.
smpmgr's own code runs unchanged.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any


def main(argv: list[str]) -> None:
    hci, keystore, address, sep, *args = argv
    assert sep == "--", "usage: HCI KEYSTORE ADDRESS -- smpmgr arguments"
    import bleak

    from scalppen.transports.bumble_bleak import open_central

    real_run = asyncio.run

    def run(coro: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
        async def on_the_central() -> Any:
            central = await open_central(hci, address=address, keystore_path=keystore)
            bleak.get_platform_client_backend_type = (  # type: ignore[attr-defined]
                lambda: (central.client_backend, "bumble"))
            bleak.get_platform_scanner_backend_type = (  # type: ignore[attr-defined]
                lambda: (central.scanner_backend, "bumble"))
            try:
                return await coro
            finally:
                await central.close()

        return real_run(on_the_central(), **kwargs)

    asyncio.run = run  # type: ignore[assignment]
    from smpmgr.main import app

    sys.argv = ["smpmgr", *args]
    app()


if __name__ == "__main__":
    main(sys.argv[1:])
