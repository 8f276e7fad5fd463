"""Running the ``scalppen`` command line in-process on a private database."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from scalppen.cli.common import console
from scalppen.cli.main import app

Invoke = Callable[..., "Run"]


class Run:
    """The outcome of one command: exit code and what it printed."""

    def __init__(self, exit_code: int, output: str, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.output = output
        self.stdout = stdout
        self.stderr = stderr

    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]

    def one_line_error(self) -> str:
        """The single ``error: ...`` line a failing command must print (and nothing else)."""
        assert "Traceback" not in self.output, self.output
        lines = self.lines()
        assert len(lines) == 1, self.output
        assert lines[0].startswith("error: "), self.output
        return lines[0]


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database path in a private SCALPPEN_HOME (not created yet)."""
    monkeypatch.setenv("SCALPPEN_HOME", str(tmp_path))
    for name in ("SCALPPEN_DB", "SCALPPEN_PEN", "SCALPPEN_BLE", "SCALPPEN_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "x.db"


@pytest.fixture
def cli(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``scalppen --db <db_path> ARGS...``; returns a :class:`Run`.

    Tables are drawn 200 columns wide so that the words checked are not wrapped.
    """
    monkeypatch.setattr(console, "width", 200)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, db: Path | None = None) -> Run:
        argv: Sequence[str] = ["--db", os.fspath(db or db_path), *args]
        result = runner.invoke(app, list(argv), input=input, catch_exceptions=False)
        return Run(result.exit_code, result.output, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def clinician(cli: Invoke, tmp_path: Path) -> Callable[..., str]:
    """A clinician whose key the test database trusts (pinned through the command line).

    Returns ``sign(lock_id, profile, **kw) -> clearance text`` for this toolkit.
    """
    import json
    from datetime import UTC, datetime

    from tests.host.clinicians import Clinician

    doc = Clinician("Dr Lee")
    key_file = tmp_path / "dr-lee.json"
    key_file.write_text(doc.pub.to_json())
    pinned = cli("clinician", "trust", str(key_file), "--fingerprint", doc.pub.fingerprint)
    assert pinned.exit_code == 0, pinned.output
    toolkit = json.loads(cli("clinician", "keys", "--json").stdout)["toolkit"]

    def sign(lock_id: str, profile: str = "Ann", **kw: Any) -> str:
        kw.setdefault("issued", datetime.now(UTC))
        return doc.sign(lock_id, profile=profile, toolkit=toolkit, **kw).text()

    return sign
