"""The firmware core's tests, run INSIDE MicroPython (the unix port, a real process).

Each ``tests/upy/cases/case_*.py`` holds plain MicroPython test functions; one fresh
``micropython`` process per case module runs them all (tests/upy/cases/harness.py
prints a PASS line or a FAIL block with the traceback per test) and pytest shows
one test per in-VM case. The firmware is the bundle ``scalppen build`` makes
(``pen/*.mpy`` from mpy-cross, mounted at ``/a`` as the pen's slot); the heap is
capped at :data:`tests.upy.runner.HEAP_KB`. A test passes only if its PASS line
is there, the process printed DONE (every firmware module came from a .mpy) and
exited with 0.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.upy.runner import (
    CASES,
    HEAP_KB,
    ROOT,
    TEST_FIRMWARE,
    UpyError,
    build_firmware,
    run_upy,
)

pytestmark = pytest.mark.micropython

MARK = "@@upy "


def _cases() -> list[tuple[str, str]]:
    out = []
    for path in sorted(CASES.glob("case_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                out.append((path.stem, node.name))
    return sorted(out)


def _hmac_vectors() -> list[list[str]]:
    vectors = []
    for i, (klen, mlen) in enumerate([(32, 20), (32, 0), (16, 100), (64, 64), (100, 33), (1, 1)]):
        key = hashlib.sha256(b"k%d" % i).digest() * 4
        msg = hashlib.sha256(b"m%d" % i).digest() * 4
        key, msg = key[:klen], msg[:mlen]
        vectors.append([key.hex(), msg.hex(), hmac.new(key, msg, hashlib.sha256).hexdigest()])
    return vectors


def _ed25519_vectors() -> dict[str, list[list[str]]]:
    """Signatures by the cryptography package (and SHA-512 digests by hashlib) for
    pen/ed25519.py to check inside MicroPython."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    sigs = []
    for i, mlen in enumerate([0, 1, 32, 64, 200]):
        key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"key%d" % i).digest())
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        msg = (hashlib.sha256(b"msg%d" % i).digest() * 8)[:mlen]
        sigs.append([pub.hex(), msg.hex(), key.sign(msg).hex()])
    digests = [[m.hex(), hashlib.sha512(m).hexdigest()]
               for m in (b"", b"abc", bytes(range(111)), bytes(range(112)), bytes(300))]
    return {"sigs": sigs, "sha512": digests}


def _parse(stdout: str) -> tuple[dict[str, tuple[bool, str]], bool]:
    """{mod.name: (passed, detail)} and whether the harness printed DONE.

    A failing test's detail is what it printed, then its traceback."""
    results: dict[str, tuple[bool, str]] = {}
    done = False
    failing: str | None = None
    block: list[str] = []  # a failing test's traceback, or a test's own output
    for line in stdout.splitlines():
        if failing is not None:
            if line == MARK + "END":
                results[failing] = (False, "\n".join(block))
                failing, block = None, []
            else:
                block.append(line)
        elif line.startswith(MARK + "PASS "):
            name, _, detail = line[len(MARK + "PASS "):].partition(" ")
            results[name] = (True, detail)
            block = []
        elif line.startswith(MARK + "FAIL "):
            failing = line[len(MARK + "FAIL "):].strip()
        elif line == MARK + "DONE":
            done = True
        elif not line.startswith(MARK):
            block.append(line)
    if failing is not None:  # the process ended inside a FAIL block
        results[failing] = (False, "\n".join(block))
    return results, done


def _run_module(mod: str, bundle: Path, data: Path) -> dict[str, tuple[bool, str]]:
    (data / "hmac.json").write_text(json.dumps(_hmac_vectors()))
    (data / "ed25519.json").write_text(json.dumps(_ed25519_vectors()))
    try:
        res = run_upy(
            f"import harness\nharness.run([{mod!r}])",
            {
                "/a": bundle,
                "/tf": TEST_FIRMWARE,
                "/cases": CASES,
                "/boards": ROOT / "hardware" / "boards",
                "/vec": ROOT / "protocol" / "vectors",
                "/data": data,
            },
            path=["/a", "/tf", "/cases"],
        )
    except UpyError as exc:
        return {mod + ".__run__": (False, str(exc))}
    results, done = _parse(res.stdout)
    if not done or res.exit_code != 0:
        # The run did not complete: no result of it counts, passed or not.
        text = (f"micropython -X heapsize={res.heap_kb}k exited with {res.exit_code}"
                f"{'' if done else ' before DONE'}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
        return {mod + ".__run__": (False, text)}
    if res.stderr.strip():
        results = {k: (ok, v + "\nstderr:\n" + res.stderr) for k, (ok, v) in results.items()}
    return results


@pytest.fixture(scope="module")
def vm_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bool, str]]:
    bundle = build_firmware(tmp_path_factory.mktemp("fw") / "bundle")
    mods = sorted({m for m, _ in _cases()})
    with ThreadPoolExecutor(max_workers=max(1, min(len(mods), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(_run_module, m, bundle, tmp_path_factory.mktemp("upy-" + m))
                   for m in mods]
        results: dict[str, tuple[bool, str]] = {}
        for f in futures:
            results.update(f.result())
    return results


# In-VM cases that fail because of a known defect outside the core, with the reason.
KNOWN: dict[str, str] = {}


def _params() -> list:
    out = []
    for m, n in _cases():
        reason = KNOWN.get(f"{m}.{n}")
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(m, n, id=f"{m}::{n}", marks=marks))
    return out


@pytest.mark.parametrize(("module", "name"), _params())
def test_in_micropython(vm_results: dict[str, tuple[bool, str]], module: str, name: str,
                        record_property: Callable[[str, object], None]) -> None:
    key = f"{module}.{name}"
    crashed = vm_results.get(module + ".__run__")
    if crashed is not None:
        pytest.fail(f"{key}: the MicroPython run of {module} did not complete:\n{crashed[1]}",
                    pytrace=False)
    if key not in vm_results:
        pytest.fail(f"{key} did not run in MicroPython", pytrace=False)
    ok, text = vm_results[key]
    if not ok:
        pytest.fail(f"{key} failed inside MicroPython (unix port, heap {HEAP_KB} KiB):\n{text}",
                    pytrace=False)
    record_property("upy", text)  # heap=<in use after> alloc=<allocated>
