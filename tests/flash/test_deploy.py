"""Deploys to a blank pen: the twin, whose USB serial is a real MicroPython REPL."""

import hashlib
import json

import pytest

from scalppen.flash.deploy import deploy_bundle
from scalppen.flash.devicefs import DeviceFS
from scalppen.flash.errors import (
    FlashFullError,
    LinkError,
    VerificationError,
)
from scalppen.flash.port import open_serial
from scalppen.flash.rawrepl import RawRepl
from tests.flash.conftest import make_bundle
from tests.flash.twinboard import TwinBoard


def _flash_matches(root, bundle, manifest, slot):
    for f in manifest.files:
        dest = root / (f.path if f.location == "root" else f"{slot}/{f.path}")
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == f.sha256, f.path
    assert (root / slot / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()


def test_full_deploy_then_every_file_verified(tmp_path, board):
    bundle, m = make_bundle(tmp_path, "v1")
    seen = []
    r = deploy_bundle(bundle, board.port, progress=lambda d, t, p: seen.append((d, t, p)),
                      reset=False)
    assert r.slot == "a" and not r.up_to_date and r.retries == 0
    assert len(r.plan.uploads) == len(m.slot_files())
    assert seen and seen[-1][0] == seen[-1][1]
    _flash_matches(board.root, bundle, m, "a")
    assert (board.root / "active").read_text() == "a"
    # the pen side agrees: hashes computed in MicroPython
    out, err = board.exec("import hashlib, binascii\n"
                          "print(binascii.hexlify(hashlib.sha256("
                          "open('/a/pen/app.mpy','rb').read()).digest()).decode())")
    assert not err
    assert out.strip() == next(f.sha256 for f in m.files if f.path == "pen/app.mpy")
    assert "APP a 1.0.0 v1" in board.boot()


def test_incremental_deploy_uploads_only_changed_files(tmp_path, board):
    b1, _ = make_bundle(tmp_path, "v1")
    b2, m2 = make_bundle(tmp_path, "v2", tag="v2")
    b3, m3 = make_bundle(tmp_path, "v3", tag="v3")
    deploy_bundle(b1, board.port, reset=False)
    r2 = deploy_bundle(b2, board.port, reset=False)
    assert r2.slot == "b"
    assert [f.path for f in r2.plan.uploads] == ["pen/app.mpy"]
    assert {f.path for f, _ in r2.plan.copies} == {f.path for f in m2.slot_files()} - {
        "pen/app.mpy"}
    _flash_matches(board.root, b2, m2, "b")
    r3 = deploy_bundle(b3, board.port, reset=False)
    assert r3.slot == "a"
    assert [f.path for f in r3.plan.uploads] == ["pen/app.mpy"] and not r3.plan.copies
    _flash_matches(board.root, b3, m3, "a")
    again = deploy_bundle(b3, board.port, reset=False)
    assert again.up_to_date and again.slot == "a"
    assert (board.root / "active").read_text() == "a"


def test_dry_run_changes_nothing(tmp_path, board):
    bundle, m = make_bundle(tmp_path, "v1")
    r = deploy_bundle(bundle, board.port, dry_run=True)
    assert r.dry_run and len(r.plan.uploads) == len(m.slot_files())
    assert not (board.root / "active").exists() and not (board.root / "a").exists()


def test_corrupted_write_is_detected_and_rewritten(tmp_path, board):
    bundle, m = make_bundle(tmp_path, "v1")
    board.faults.corrupt_writes = 1
    board.faults.corrupt_path = "table.mpy"
    r = deploy_bundle(bundle, board.port, reset=False)
    assert board.faults.corrupted == 1 and r.retries == 1
    _flash_matches(board.root, bundle, m, "a")


def test_persistent_corruption_fails_and_keeps_the_old_build(tmp_path, board):
    b1, _ = make_bundle(tmp_path, "v1")
    b2, _ = make_bundle(tmp_path, "v2", tag="v2")
    deploy_bundle(b1, board.port, reset=False)
    board.faults.corrupt_writes = 100
    board.faults.corrupt_path = "app.mpy"
    with pytest.raises(VerificationError, match="does not match the build"):
        deploy_bundle(b2, board.port, reset=False)
    assert (board.root / "active").read_text() == "a"
    assert "APP a 1.0.0 v1" in board.boot()


def test_link_cut_mid_file_leaves_the_old_build_bootable(tmp_path):
    root = tmp_path / "flash"
    b1, _ = make_bundle(tmp_path, "v1")
    b2, m2 = make_bundle(tmp_path, "v2", tag="v2", extra={"pen/big.py": "B = " + repr(
        list(range(4000))) + "\n"})
    board = TwinBoard(root)
    try:
        deploy_bundle(b1, board.port, reset=False)
        assert "APP a" in board.boot()
        board.faults.cut_after_bytes = 3000
        board.faults.cut_path = "big.mpy"
        with pytest.raises(LinkError):
            deploy_bundle(b2, board.port, reset=False, timeout=2)
        assert board.faults.cut
    finally:
        board.stop()
    big = next(f for f in m2.files if f.path == "pen/big.mpy")
    # the half-written file is there (the twin's flash writes through: it keeps the
    # 3000 bytes; littlefs would keep what was synced, here nothing)
    assert (root / "b" / "pen" / "big.mpy").stat().st_size < big.size
    assert (root / "active").read_text() == "a"
    powered_again = TwinBoard(root)  # the battery was out: a new power-up
    try:
        out = powered_again.wait_output(1, ">>> ")
    finally:
        powered_again.stop()
    assert "APP a 1.0.0 v1" in out, out


def test_rollback_after_a_build_that_raises_at_import(tmp_path, board):
    good, _ = make_bundle(tmp_path, "good")
    bad, _ = make_bundle(tmp_path, "bad", tag="bad", broken=True)
    deploy_bundle(good, board.port, reset=False)
    assert "APP a" in board.boot()
    assert (board.root / "good").read_text() == "a"
    r = deploy_bundle(bad, board.port, reset=False)
    assert r.slot == "b" and (board.root / "active").read_text() == "b"
    # Power up: each start of the build on trial is counted by main.py before the
    # import (the app prints the count), fails, and main.py resets the pen
    # (machine.reset); after the third, boot.py goes back to slot a.
    first = board.twin.boots + 1
    board.boot(until="broken build")
    out = board.wait_output(first + 3, ">>> ")
    assert "rolling back to slot a" in out and "APP a 1.0.0 v1" in out, out
    for attempt in range(1, 4):
        tried = board.output(first + attempt - 1)
        assert f"TRY {attempt}" in tried and "broken build" in tried, tried
        assert "APP" not in tried, tried
    assert (board.root / "active").read_text() == "a"
    assert not (board.root / "bootcount").exists()
    # the next deploy goes into the failed slot again, never into the good one
    r = deploy_bundle(good, board.port, reset=False)
    assert r.up_to_date


def test_flash_full_is_refused_before_writing(tmp_path):
    bundle, _ = make_bundle(tmp_path, "v1")
    board = TwinBoard(tmp_path / "flash", flash_size=8 * 4096)
    try:
        with pytest.raises(FlashFullError, match="flash is full"):
            deploy_bundle(bundle, board.port, reset=False)
        assert not (board.root / "active").exists()
        assert sorted(p.name for p in board.root.iterdir()) == ["board.json"]
        # the pen's own ENOSPC: a write beyond the flash raises OSError(28), which
        # the ESP32 prints without a name (28 is not in MicroPython's errno table)
        _, err = board.exec("f = open('/x', 'wb')\nf.write(bytes(9 * 4096))")
        assert err.rstrip().endswith("OSError: 28"), err
        assert (board.root / "x").stat().st_size == 0
    finally:
        board.stop()


def test_deploy_manifest_on_device(tmp_path, board):
    from scalppen.flash.deploy import device_manifest

    bundle, m = make_bundle(tmp_path, "v1")
    deploy_bundle(bundle, board.port, reset=False)
    got = device_manifest(board.port)
    assert got is not None and got["build_id"] == m.build_id
    assert json.loads((board.root / "a" / "manifest.json").read_text())["version"] == "1.0.0"


def test_a_write_that_fills_the_flash_is_reported_as_flash_full(tmp_path):
    # MicroPython prints littlefs's ENOSPC as "OSError: 28" (28 is not in its errno
    # table, py/moderrno.c), on the ESP32 as in the twin
    board = TwinBoard(tmp_path / "flash", flash_size=8 * 4096)
    try:
        ser = open_serial(board.port)
        try:
            repl = RawRepl(ser)
            repl.enter()
            with pytest.raises(FlashFullError):
                DeviceFS(repl).write_file("/x", bytes(9 * 4096))
        finally:
            ser.close()
    finally:
        board.stop()
