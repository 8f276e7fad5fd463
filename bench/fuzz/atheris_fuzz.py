"""Coverage-guided fuzzing (atheris over libFuzzer) of one target of tests/fuzz/targets.py.

Run: ``.venv/bin/python bench/fuzz/atheris_fuzz.py --target NAME [--corpus DIR]
[libFuzzer flags]``, e.g. ``--target handler -runs=100000`` or
``--target differential -max_total_time=600``. Targets: wire_decode, handler,
fw_reassembler, fw_deframer, host_decode, host_reassembler, host_deframer,
differential (see tests/fuzz/targets.py for each input layout).

The firmware (pen.*), the protocol package (scalppen_protocol, construct) and the
targets are imported under ``atheris.instrument_imports`` so libFuzzer sees their
coverage. The corpus directory (a new temporary one by default) is seeded with the
target's ``seed_inputs``: the golden vectors of protocol/vectors/ and valid encoded
messages of every type, in the target's layout; libFuzzer adds what it finds there.
A property broken or an unexpected exception is a crash: libFuzzer writes the input
(``-artifact_prefix``) and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "protocol"), str(ROOT / "firmware"),
                str(ROOT / "tests" / "firmware")]

with atheris.instrument_imports(include=["pen", "scalppen_protocol", "tests.fuzz"]):
    from pen import handler, link, wire  # noqa: F401 - instrumented before the targets use them
    from tests.fuzz import targets

    from scalppen_protocol import codec, fragment, serial_framing  # noqa: F401


def write_seeds(name: str, corpus: Path) -> int:
    """Write the target's seeds into ``corpus`` unless it already holds inputs."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return 0
    seeds = targets.seed_inputs(name)
    for i, data in enumerate(seeds):
        (corpus / f"seed-{i:04d}").write_bytes(data)
    return len(seeds)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, choices=sorted(targets.TARGETS))
    p.add_argument("--corpus", type=Path, default=None,
                   help="corpus directory (default: a new temporary one)")
    args, libfuzzer_args = p.parse_known_args(argv[1:])
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix=f"fuzz-{args.target}-"))
    n = write_seeds(args.target, corpus)
    print(f"atheris: target {args.target}, corpus {corpus} ({n} seeds written)", flush=True)
    fn = targets.TARGETS[args.target]

    def test_one_input(data: bytes) -> None:
        fn(data)

    atheris.Setup([argv[0], *libfuzzer_args, str(corpus)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
