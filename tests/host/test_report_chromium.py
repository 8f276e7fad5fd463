"""The browser check cannot be skipped under CI: with no Chromium, CI fails the test
(``make test`` installs it); elsewhere the test is skipped and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.host import chromium


def test_no_chromium_fails_under_ci_and_skips_elsewhere(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"make test installs"):
        chromium.find()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        chromium.find()


def test_make_test_installs_chromium_before_the_tests() -> None:
    root = Path(__file__).resolve().parents[2]
    script = (root / "tools" / "system_packages.sh").read_text()
    install = script.index("apt-get install -y")
    assert "command -v chromium" in script[:install]  # only when it is missing
    assert script.index("apt-get update") < install
    make = (root / "Makefile").read_text()
    assert "test: $(STAMP) system-packages" in make
    assert "bash tools/system_packages.sh" in make
    assert "make test" in (root / ".ci" / "run").read_text()
