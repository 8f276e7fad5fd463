"""The firmware's version is written once, in ``firmware/pen/version.py``.

What the build copies into the manifest, what the pen answers in INFO and what its
Device Information service shows are that one line: a firmware tree with another
version in that file reports the other version everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from bleak import BleakClient

from scalppen.flash.build import build_bundle, read_version
from scalppen_hardware import virtual_pen
from scalppen_protocol import gatt
from scalppen_protocol.codec import decode_frame, encode_frame
from scalppen_protocol.codes import PROTOCOL_VERSION, MsgType
from tests.e2e.vpen_fixtures import rig, run, within
from tests.flash.conftest import BOARD, FIRMWARE, ROOT

OTHER = "7.8.9-rc1"

pytestmark = pytest.mark.timeout(60)


def _firmware_with_version(dest: Path, version: str) -> Path:
    """A copy of the real firmware tree whose pen/version.py says ``version``."""
    shutil.copytree(FIRMWARE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    path = dest / "pen" / "version.py"
    text = path.read_text()
    new, n = re.subn(r'^VERSION = "[^"]*"$', f'VERSION = "{version}"', text, flags=re.M)
    assert n == 1, text
    path.write_text(new)
    return dest


def test_no_second_version_literal_in_firmware_or_host() -> None:
    version = read_version(FIRMWARE)
    literal = re.compile(r"""["']""" + re.escape(version) + r"""["']""")
    found = []
    for top in (ROOT / "firmware", ROOT / "host"):
        for path in sorted(top.rglob("*.py")):
            if path == FIRMWARE / "pen" / "version.py" or "__pycache__" in path.parts:
                continue
            if literal.search(path.read_text()):
                found.append(path.relative_to(ROOT).as_posix())
    assert found == [], f"the version {version!r} is written again in {found}"


def test_the_version_file_is_what_the_pen_reports_and_the_build_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fw = _firmware_with_version(tmp_path / "firmware", OTHER)

    # The build: the manifest carries the file's version.
    manifest = build_bundle(fw, tmp_path / "bundle", BOARD)
    assert manifest.version == OTHER
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["version"] == OTHER

    # The pen, booted from that tree: INFO and Device Information, over the air.
    monkeypatch.setattr(virtual_pen, "FIRMWARE_DIR", fw)
    monkeypatch.syspath_prepend(str(fw))

    async def scenario() -> None:
        async with rig(tmp_path) as r:
            booted = Path(sys.modules["pen.app"].__file__ or "")
            assert booted.is_relative_to(fw), f"the pen booted {booted}, not the copy"
            paired = await r.pair()
            assert paired.info.fw_version == OTHER  # INFO, answered to the host's HELLO
            pen = await r.pen()
            try:
                assert pen.info is not None and pen.info.fw_version == OTHER
            finally:
                await within(pen.close())
            assert r.radio.central is not None
            client = BleakClient(r.address, backend=r.radio.central.client_backend,
                                 timeout=10.0)
            await within(client.connect(), 15.0)
            try:
                # The Device Information service answers anyone.
                dis = await within(client.read_gatt_char(gatt.FIRMWARE_REVISION_CHAR_UUID))
                assert dis.decode() == OTHER
            finally:
                await within(client.disconnect())
            # And the handler itself, as the bench UART would ask.
            hello = encode_frame(MsgType.HELLO, 3, {"proto_version": PROTOCOL_VERSION, "caps": 0})
            (answer,) = r.app.handler.handle(hello, False)
            info = decode_frame(answer)
            assert info.msg_type == MsgType.INFO and info.fields["fw_version"] == OTHER

    run(scenario(), 60)
