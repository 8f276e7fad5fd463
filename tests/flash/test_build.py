import hashlib
import json

import pytest

from scalppen.flash.build import (
    TARGET_MPY,
    BuildError,
    BundleError,
    build_bundle,
    find_board,
    load_bundle,
    mpy_header_version,
)
from tests.flash.conftest import BOARD, FIRMWARE, ROOT, make_tree


def test_manifest_matches_the_files(tmp_path):
    out = tmp_path / "bundle"
    m = build_bundle(make_tree(tmp_path / "src"), out, BOARD)
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["version"] == "1.0.0" and raw["mpy_version"] == "6.3"
    assert raw["board"] == "pen-s3-revb" and raw["build_id"] == m.build_id
    listed = {f["path"] for f in raw["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert listed | {"manifest.json"} == on_disk
    assert {"boot.py", "main.py", "board.json", "pen/app.mpy", "pen/bootok.mpy"} <= listed
    for f in raw["files"]:
        data = (out / f["path"]).read_bytes()
        assert f["size"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
        if f["path"].endswith(".mpy"):
            assert f["location"] == "slot"
            assert mpy_header_version(data) == TARGET_MPY
        else:
            assert f["location"] == "root"
    assert (out / "board.json").read_bytes() == BOARD.read_bytes()
    assert load_bundle(out) == m


def test_build_id_follows_the_contents(tmp_path):
    a = build_bundle(make_tree(tmp_path / "a"), tmp_path / "ba", BOARD)
    b = build_bundle(make_tree(tmp_path / "b"), tmp_path / "bb", BOARD)
    c = build_bundle(make_tree(tmp_path / "c", tag="v2"), tmp_path / "bc", BOARD)
    assert a.build_id == b.build_id != c.build_id


def test_real_firmware_tree_builds(tmp_path):
    m = build_bundle(FIRMWARE, tmp_path / "bundle", find_board(ROOT / "hardware" / "boards"))
    assert m.board == "pen-s3-revb"
    assert any(f.path == "pen/bootok.mpy" for f in m.files)


def test_version_file_missing_is_refused(tmp_path):
    # The pen reports its version from pen/version.py: a build must not invent one.
    tree = make_tree(tmp_path / "src")
    (tree / "pen" / "version.py").unlink()
    with pytest.raises(BuildError, match=r"version\.py is missing"):
        build_bundle(tree, tmp_path / "out", BOARD)
    assert not (tree / "pen" / "version.py").exists()
    assert not (tmp_path / "out").exists()
    (tree / "pen" / "version.py").write_text("VERSION = 2\n")
    with pytest.raises(BuildError, match="no line VERSION"):
        build_bundle(tree, tmp_path / "out", BOARD)


def test_syntax_micropython_lacks_is_rejected(tmp_path):
    tree = make_tree(tmp_path / "src", extra={"pen/bad.py": "def f(a, /, b):\n    return a\n"})
    with pytest.raises(BuildError, match=r"pen/bad\.py"):
        build_bundle(tree, tmp_path / "out", BOARD)


def test_tampered_bundle_is_refused(tmp_path):
    out = tmp_path / "bundle"
    build_bundle(make_tree(tmp_path / "src"), out, BOARD)
    (out / "pen" / "app.mpy").write_bytes(b"M\x06\x00\x1fxx")
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(out)
    with pytest.raises(BundleError, match="no manifest"):
        load_bundle(tmp_path)
