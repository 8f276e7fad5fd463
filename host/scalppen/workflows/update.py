"""Firmware updates over Bluetooth with MCUmgr's SMP, through ``smpclient`` (the
pen's side: ``firmware/pen/smp.py``, ``pen/update.py``; docs/updates.md).

The toolkit's own link to the pen (paired, authenticated) carries SMP as well:
``smpclient``'s bumble transport adopts the connection the toolkit made (a bumble
link), its bleak transport the ``BleakClient`` (the operating system's stack), so
no second pairing is needed. An upload cut by a dropped link goes on from the
offset the pen reports when it is started again with the same image.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from construct import ConstructError

from scalppen.client import Pen
from scalppen_protocol.image import HEADER_SIZE, FileEntry, ImageHeader

#: What each MGMT_ERR code means for an update, and what to do.
RC_TEXT = {
    2: "the pen ran out of memory: try again",
    3: "the pen refused a malformed request or image",
    5: "the pen holds no such image",
    6: "the pen refused the image: older than its firmware, or its running build is "
       "still on trial (let it confirm itself first)",
    7: "the image is larger than the pen takes",
    8: "the pen does not serve that request",
    9: "the image is damaged: a file differs from its signed index; build it again",
    10: "a session is armed or running on the pen: end it first",
    11: "the image is signed with a key this pen does not trust (or the pen has no "
        "release key: flash it over USB with a signed build first)",
}


class UpdateError(Exception):
    """An update step that failed (one line)."""


class UpdateRefused(UpdateError):
    """The pen refused an update step (its answer's MGMT_ERR code, in words)."""


@dataclass(frozen=True)
class Image:
    """A signed image (``scalppen build --sign``), read and checked for form."""

    data: bytes
    version: str
    sha256: bytes  # of the whole image (the first chunk announces it)
    manifest_sha256: bytes  # what the pen's image state names the slot by

    @property
    def size(self) -> int:
        return len(self.data)


def read_image(path: Path) -> Image:
    """Read ``path``; one-line errors for a file that is not a signed image."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UpdateError(f"cannot read {path}: {exc.strerror}") from None
    try:
        head = ImageHeader.parse(data[:HEADER_SIZE])
    except ConstructError:
        raise UpdateError(f"{path} is not a signed scalppen image (make one with "
                          "`scalppen build --sign KEY`)") from None
    if head.total_len != len(data):
        raise UpdateError(f"{path} is cut short: {len(data)} of {head.total_len} bytes")
    index = data[HEADER_SIZE:HEADER_SIZE + head.index_len]
    entries: list[Any] = []
    off = 0
    try:
        for _ in range(head.count):
            entry = FileEntry.parse(index[off:])
            entries.append(entry)
            off += len(FileEntry.build(entry))
    except ConstructError:
        raise UpdateError(f"{path}: its index is damaged") from None
    if not entries or entries[-1].path != "manifest.json":
        raise UpdateError(f"{path}: no manifest at the end of its index")
    return Image(data, f"{head.major}.{head.minor}.{head.patch}",
                 hashlib.sha256(data).digest(), bytes(entries[-1].sha256))


async def smp_client(pen: Pen, *, via_bleak: bool = False) -> Any:
    """An ``SMPClient`` on the toolkit's own link to ``pen``: smpclient's bumble
    transport adopts a bumble link; on another bleak backend (the operating
    system's BlueZ), or with ``via_bleak``, smpclient's bleak transport adopts the
    ``BleakClient`` (``scalppen.transports.smp_bleak``)."""
    from smpclient import SMPClient
    from smpclient.transport.bumble import SMPBumbleTransport

    from scalppen.transports.bumble_bleak import bumble_link
    from scalppen.transports.smp_bleak import AdoptedBLETransport

    bleak_client = getattr(pen.transport, "bleak_client", None)
    if bleak_client is None:
        raise UpdateError("updates go over Bluetooth: this link has none (use --ble)")
    link = None if via_bleak else bumble_link(bleak_client)
    if link is None:
        client = SMPClient(AdoptedBLETransport(bleak_client), str(bleak_client.address))
        await client.connect()  # the SMP characteristic, then the MCUmgr parameters
        return client
    conn, peer = link
    transport = SMPBumbleTransport()
    await transport.use_connection(conn, peer=peer)
    client = SMPClient(transport, str(conn.peer_address))
    await client._initialize()  # MCUmgr parameters: the chunk size the pen takes
    return client


def _rc(response: Any) -> int:
    return int(getattr(response, "rc", 0) or 0)


def _words(rc: int) -> str:
    return RC_TEXT.get(rc, f"the pen answered error {rc}")


def _refused(what: str, response: Any) -> UpdateError:
    return UpdateRefused(f"{what}: {_words(_rc(response))}")


async def upload(client: Any, image: Image, progress: Callable[[int], None]) -> None:
    """Upload ``image``, reporting each offset; from where the pen stands."""
    from smpclient.exceptions import SMPUploadError

    try:
        async for off in client.upload(image.data):
            progress(off)
    except SMPUploadError as exc:
        # smpclient raises with the error response, or (when the pen's {"rc": N}
        # parses as a response without an offset) with its text
        got = exc.args[0] if exc.args else None
        if isinstance(got, str):
            found = re.search(r"\brc=(\d+)", got)
            if found:
                raise UpdateRefused("upload refused: " + _words(int(found.group(1)))) from None
            raise UpdateError("upload failed: " + got) from None
        raise _refused("upload refused", got) from None


async def image_states(client: Any) -> list[Any]:
    from smpclient.generics import success
    from smpclient.requests.image_management import ImageStatesRead

    got = await client.request(ImageStatesRead())
    if not success(got):
        raise _refused("image state", got)
    return list(got.images)


async def test_and_reset(client: Any, image: Image) -> None:
    """Boot the uploaded image once, on trial (it rolls back unless it starts well)."""
    from smpclient.generics import success
    from smpclient.requests.image_management import ImageStatesWrite
    from smpclient.requests.os_management import ResetWrite

    got = await client.request(ImageStatesWrite(hash=image.manifest_sha256, confirm=False))
    if not success(got) or _rc(got):
        raise _refused("test refused", got)
    got = await client.request(ResetWrite())
    if _rc(got):
        raise _refused("reset refused", got)


async def confirm(client: Any) -> None:
    """Keep the running build (the pen also confirms a build that starts well)."""
    from smpclient.generics import success
    from smpclient.requests.image_management import ImageStatesWrite

    got = await client.request(ImageStatesWrite(confirm=True))
    if not success(got) or _rc(got):
        raise _refused("confirm refused", got)
