# Signed images into the inactive slot (pen/update.py) under CPython, with images
# packed by the host (scalppen.flash.image) from a real build, signed by a release
# key: a whole upload, cuts resumed at every kind of offset, and each refusal.
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pen import update
from pen.update import Upload, UploadError

from scalppen.flash.build import build_bundle
from scalppen.flash.image import pack_image
from scalppen.release import public_raw
from scalppen_protocol import image as fmt

ROOT = Path(__file__).resolve().parents[2]
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = public_raw(KEY)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "firmware"
    build_bundle(ROOT / "firmware", out, ROOT / "hardware" / "boards" / "pen-s3-revb.json",
                 release_key=PUB)
    return out


@pytest.fixture(scope="module")
def image(bundle):
    return pack_image(bundle, KEY)


def pen_flash(tmp_path):
    root = tmp_path / "flash"
    (root / "a").mkdir(parents=True)
    (root / "a" / "manifest.json").write_text("{}")
    (root / "b").mkdir()
    (root / "b" / "stale.mpy").write_bytes(b"old")
    (root / "b" / "manifest.json").write_text("{}")
    return root


def send(up, img, start=0, stop=None, chunk=240):
    off = start
    stop = len(img) if stop is None else stop
    while off < stop:
        off = up.write(off, img[off:min(off + chunk, stop)])
    return off


def test_the_header_layout_is_the_protocols():
    assert update.HEADER_SIZE == fmt.HEADER_SIZE and update.SIGNED_SIZE == fmt.SIGNED_HEADER_SIZE
    assert update.MAGIC == fmt.MAGIC and update.SIGN_PREFIX == fmt.SIGN_PREFIX
    assert (update.MAX_IMAGE, update.MAX_FILES) == (fmt.MAX_IMAGE, fmt.MAX_FILES)


def test_a_whole_upload_fills_the_inactive_slot_with_the_bundle(tmp_path, bundle, image):
    root = pen_flash(tmp_path)
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(image), hashlib.sha256(image).digest())
    assert send(up, image) == len(image)
    assert up.done and up.match() and up.version == json.loads(
        (bundle / "manifest.json").read_text())["version"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    for f in manifest["files"]:
        if f["location"] == "slot":
            assert (root / "b" / f["path"]).read_bytes() == (bundle / f["path"]).read_bytes()
    assert (root / "b" / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    assert not (root / "b" / "stale.mpy").exists()  # the old slot is gone
    assert not list((root / "b").rglob("*.part"))
    assert (root / "a" / "manifest.json").read_text() == "{}"  # the running slot untouched


@pytest.mark.parametrize("cut", [40, fmt.HEADER_SIZE + 10, 2000, 20_000, -100])
def test_a_cut_upload_resumes_from_the_offset_the_pen_reports(tmp_path, image, cut):
    root = pen_flash(tmp_path)
    sha = hashlib.sha256(image).digest()
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(image), sha)
    cut = cut % len(image)
    reached = send(up, image, 0, cut, chunk=97)
    # the link drops; a new one starts again from 0 with the same image
    assert up.same(len(image), sha)
    assert up.write(0, image[:97]) == reached  # the pen says where it is
    assert send(up, image, reached) == len(image)
    assert up.done and up.match()
    assert (root / "b" / "manifest.json").read_bytes() == image[-len((root / "b" / "manifest.json").read_bytes()):]


def test_an_image_signed_by_another_key_is_refused(tmp_path, bundle):
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    img = pack_image(bundle, other)
    up = Upload(str(pen_flash(tmp_path)), "b", PUB, "0.1.0")
    up.begin(len(img), None)
    with pytest.raises(UploadError) as err:
        send(up, img)
    assert err.value.rc == update.EACCESSDENIED and "another key" in err.value.why


def test_a_forged_signature_under_the_right_key_id_is_refused(tmp_path, image):
    img = bytearray(image)
    img[fmt.SIGNED_HEADER_SIZE + 8 + 5] ^= 1  # a bit of the signature
    root = pen_flash(tmp_path)
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(img), None)
    with pytest.raises(UploadError) as err:
        send(up, bytes(img))
    assert err.value.rc == update.EACCESSDENIED and "signature" in err.value.why
    assert not (root / "b").exists()  # nothing of it is left to boot


def test_a_tampered_file_is_refused_when_it_lands_and_the_slot_is_emptied(tmp_path, image):
    img = bytearray(image)
    img[-3000] ^= 0x40  # inside a file, past the signed index
    root = pen_flash(tmp_path)
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(img), None)
    with pytest.raises(UploadError) as err:
        send(up, bytes(img))
    assert err.value.rc == update.ECORRUPT and "differs from its index" in err.value.why
    assert not (root / "b").exists()


def test_an_altered_index_breaks_the_signature(tmp_path, image):
    img = bytearray(image)
    img[fmt.HEADER_SIZE + 3] ^= 1  # a path in the index
    up = Upload(str(pen_flash(tmp_path)), "b", PUB, "0.1.0")
    up.begin(len(img), None)
    with pytest.raises(UploadError) as err:
        send(up, bytes(img))
    assert err.value.rc == update.EACCESSDENIED


def test_a_truncated_upload_never_completes_and_a_wrong_length_is_refused(tmp_path, image):
    root = pen_flash(tmp_path)
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(image), hashlib.sha256(image).digest())
    send(up, image, 0, len(image) - 500)
    assert not up.done and not (root / "b" / "manifest.json").exists()  # not bootable
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(image) - 10, None)  # announces less than the image says it is
    with pytest.raises(UploadError) as err:
        send(up, image[:len(image) - 10])
    assert err.value.rc == update.EINVAL


def test_an_older_version_than_the_running_one_is_refused(tmp_path, image):
    up = Upload(str(pen_flash(tmp_path)), "b", PUB, "9.0.0")
    up.begin(len(image), None)
    with pytest.raises(UploadError) as err:
        send(up, image)
    assert err.value.rc == update.EBADSTATE and "older" in err.value.why


def test_a_development_build_told_to_allow_it_takes_an_older_version(tmp_path, image):
    # the test override of anti-rollback: a development board's allow_downgrade
    up = Upload(str(pen_flash(tmp_path)), "b", PUB, "9.0.0", allow_downgrade=True)
    up.begin(len(image), hashlib.sha256(image).digest())
    assert send(up, image) == len(image) and up.done and up.match()


def test_only_a_development_board_may_allow_a_downgrade():
    import json as _json

    from pen.board import Board, BoardError

    doc = _json.loads((ROOT / "hardware" / "boards" / "pen-s3-revb.json").read_text())
    assert not Board(doc).allow_downgrade
    assert Board(dict(doc, allow_downgrade=True)).allow_downgrade
    with pytest.raises(BoardError, match="development builds only"):
        Board(dict(doc, allow_downgrade=True, profile="production"))
    with pytest.raises(BoardError, match="true or false"):
        Board(dict(doc, allow_downgrade=1))


def test_the_build_refuses_the_override_in_a_production_build(tmp_path):
    from scalppen.flash.errors import BuildError

    board = ROOT / "hardware" / "boards" / "pen-s3-revb.json"
    with pytest.raises(BuildError, match="development builds only"):
        build_bundle(ROOT / "firmware", tmp_path / "p", board, production=True,
                     allow_downgrade=True)
    build_bundle(ROOT / "firmware", tmp_path / "d", board, allow_downgrade=True)
    assert json.loads((tmp_path / "d" / "board.json").read_text())["allow_downgrade"] is True


def _signed(files, version=(0, 9, 0)):
    index = b"".join(fmt.FileEntry.build({"path": p, "size": len(d),
                                          "sha256": hashlib.sha256(d).digest()})
                     for p, d in files)
    total = fmt.HEADER_SIZE + len(index) + sum(len(d) for _, d in files)
    fields = {"flags": 0, "major": version[0], "minor": version[1], "patch": version[2],
              "count": len(files), "index_len": len(index), "total_len": total}
    digest = hashlib.sha256(fmt.SignedHeader.build(fields) + index).digest()
    header = fmt.ImageHeader.build({**fields, "key_id": hashlib.sha256(PUB).digest()[:8],
                                    "signature": KEY.sign(fmt.SIGN_PREFIX + digest)})
    return header + index + b"".join(d for _, d in files)


@pytest.mark.parametrize("path", ["../boot.py", "/main.py", "pen/../../x", "a\\b", ""])
def test_a_signed_image_cannot_write_outside_its_slot(tmp_path, path):
    img = _signed([(path, b"x"), ("manifest.json", b"{}")])
    root = pen_flash(tmp_path)
    up = Upload(str(root), "b", PUB, "0.1.0")
    up.begin(len(img), None)
    with pytest.raises(UploadError) as err:
        send(up, img)
    assert err.value.rc == update.EINVAL
    assert not (tmp_path / "boot.py").exists() and not (root / "main.py").exists()


def test_the_manifest_must_come_last_so_a_cut_slot_never_looks_bootable(tmp_path):
    img = _signed([("manifest.json", b"{}"), ("pen/x.mpy", b"abc")])
    up = Upload(str(pen_flash(tmp_path)), "b", PUB, "0.1.0")
    up.begin(len(img), None)
    with pytest.raises(UploadError) as err:
        send(up, img)
    assert "last" in err.value.why
