"""The firmware core's tests, run INSIDE a real MicroPython 1.27 VM.

Each ``tests/upy/cases/case_*.py`` holds plain MicroPython test functions; one VM
run per case module executes them all (tests/upy/cases/harness.py prints
``PASS``/``FAIL`` lines) and pytest shows one test per in-VM case.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import re

import pytest

from tests.upy.runner import CASES, FIRMWARE, ROOT, TEST_FIRMWARE, run_upy

pytestmark = pytest.mark.micropython


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


@pytest.fixture(scope="module")
def vm_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bool, str]]:
    results: dict[str, tuple[bool, str]] = {}
    for mod in sorted({m for m, _ in _cases()}):
        data = tmp_path_factory.mktemp("upy-" + mod)
        (data / "hmac.json").write_text(json.dumps(_hmac_vectors()))
        res = run_upy(
            f"import harness\nharness.run([{mod!r}])",
            {
                "/fw": FIRMWARE,
                "/tf": TEST_FIRMWARE,
                "/cases": CASES,
                "/boards": ROOT / "hardware" / "boards",
                "/vec": ROOT / "protocol" / "vectors",
                "/data": data,
            },
            path=["/fw", "/tf", "/cases"],
        )
        text = res.stdout + res.stderr
        for m in re.finditer(r"^(PASS|FAIL) (\S+?)(?::.*)?$", res.stdout, re.M):
            results[m.group(2)] = (m.group(1) == "PASS", text)
        if "DONE" not in res.stdout:
            results.setdefault(mod + ".__run__", (False, text))
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
def test_in_micropython(vm_results: dict[str, tuple[bool, str]], module: str, name: str) -> None:
    key = f"{module}.{name}"
    if key not in vm_results:
        crashed = [v[1] for k, v in vm_results.items() if k.startswith(module + ".")]
        pytest.fail(f"{key} did not run in the VM:\n" + (crashed[0] if crashed else ""))
    ok, text = vm_results[key]
    assert ok, f"{key} failed inside MicroPython:\n{text}"
