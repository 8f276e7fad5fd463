"""The bridge's layout is written twice (CPython and MicroPython side): they agree."""

from __future__ import annotations

import re
import subprocess

from scalppen_hardware.twin import wire
from scalppen_hardware.twin.process import MPY_DIR, micropython_exe


def test_message_kinds_and_ops_are_the_same_on_both_sides() -> None:
    text = (MPY_DIR / "_twin.py").read_text()
    mpy = {m.group(1): int(m.group(2))
           for m in re.finditer(r"^((?:K|OP)_[A-Z0-9_]+) = (\d+)$", text, re.M)}
    cpy = {k: getattr(wire, k) for k in dir(wire) if re.fullmatch(r"(K|OP)_[A-Z0-9_]+", k)}
    assert mpy == cpy
    # the snapshot header the MicroPython side unpacks is the one CPython packs
    assert f'_HDR = "{wire.SNAP.format}"' in text


def test_a_reply_round_trips_through_the_micropython_parser() -> None:
    reply = wire.encode_reply(7, 8, -9, b"\x01\x00", [(1000, 5)], b"\x01", [],
                              {"result": [1, "a"]}, [(2, 0x36, 1)], [b"\x01\x02", None])
    body = reply[4:]
    assert int.from_bytes(reply[:4], "little") == len(body)
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(MPY_DIR)!r})\n"
        "import _twin\n"
        f"b = bytes.fromhex({body.hex()!r})\n"
        "r = _twin._apply(b, len(b))\n"
        "print(r, _twin.ticks_ms, _twin.ticks_us, _twin.epoch_us, list(_twin.levels),"
        " _twin.adc_uv, _twin.adc_code, list(_twin.present), _twin.i2c_acks,"
        " [None if x is None else bytes(x) for x in _twin.peeks])\n"
    )
    done = subprocess.run([micropython_exe(), "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (
        "[1, 'a'] 7 8 -9 [1, 0] [1000] [5] [1] {566: True} [b'\\x01\\x02', None]")
