"""The atheris harness (bench/fuzz/atheris_fuzz.py) works for every target: a short,
bounded libFuzzer run (``-runs=3000``, fixed seed) from the seed corpus exits 0
and really executed its runs ("Done N runs" in libFuzzer's output)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "bench" / "fuzz" / "atheris_fuzz.py"
RUNS = 3000


def _fuzz(name: str, work: Path) -> subprocess.CompletedProcess[str]:
    corpus = work / name
    return subprocess.run(
        [sys.executable, str(HARNESS), "--target", name, "--corpus", str(corpus),
         f"-runs={RUNS}", "-seed=1", f"-artifact_prefix={work}/crash-{name}-"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("atheris")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = pool.map(lambda n: (n, _fuzz(n, work)), TARGETS)
        return dict(done)


@pytest.mark.parametrize("name", list(TARGETS))
def test_atheris_runs_target_without_crash(
    runs: dict[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    proc = runs[name]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    done = re.search(r"^Done (\d+) runs in", out, re.M)
    assert done is not None, out[-4000:]
    assert int(done.group(1)) >= RUNS
    seeded = re.search(r"corpus .* \((\d+) seeds written\)", out)
    assert seeded is not None and int(seeded.group(1)) > 20, out[:2000]
    assert "INITED cov:" in out
