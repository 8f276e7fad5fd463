"""The browser check cannot be skipped under CI: with no Chromium, CI fails the test
(``.ci/run`` installs it); elsewhere the test is skipped and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.host import chromium


def test_no_chromium_fails_under_ci_and_skips_elsewhere(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\.ci/run installs"):
        chromium.find()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        chromium.find()


def test_ci_installs_chromium_before_the_tests() -> None:
    run = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    install = run.index("apt-get install -y")
    assert "command -v chromium" in run[:install]  # only when it is missing
    assert run.index("apt-get update") < install < run.index("make test")
