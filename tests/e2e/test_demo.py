"""``scalppen demo``'s story, checked: what the demo prints is what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scalppen.demo import FIRST_MINUTES, run_demo

pytestmark = pytest.mark.timeout(120)


def test_demo_story(tmp_path: Path) -> None:
    lines: list[str] = []
    result = asyncio.run(asyncio.wait_for(run_demo(tmp_path, lines.append), 100))
    assert len(result.passkey) == 6 and f"PAIR {result.passkey}" in result.display
    assert result.session_minutes == pytest.approx(FIRST_MINUTES, abs=0.1)
    assert result.warned  # the 10-minute warning arrived
    assert result.strokes > 60_000
    assert result.synced_new > 0 and result.resync_new == 0  # stored once
    assert result.refusal_rule == 6 and result.lifts_at is not None
    assert result.report is not None and result.report.exists()
    assert any(line.startswith("7. next session refused: rule 6") for line in lines)
