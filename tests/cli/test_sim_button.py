"""`scalppen sim` works the pen's button from lines on its stdin ("pair" holds it
long enough to open the pairing window, "press" presses it)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

from scalppen.sim import PAIR_HOLD_MS, SHORT_PRESS_MS, _obey

CORE = Path(__file__).resolve().parents[2] / "firmware" / "pen" / "core.py"
PEN_PAIR_HOLD_MS = int(re.search(r"PAIR_HOLD_MS = const\((\d+)\)", CORE.read_text())[1])


class _Hw:
    def __init__(self, log: list[tuple[str, object]]) -> None:
        self.log = log

    def set_button(self, pressed: bool) -> None:
        self.log.append(("button", pressed))


class _Pen:
    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.hw = _Hw(self.log)

    async def run_for(self, ms: int) -> None:
        self.log.append(("run", ms))


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


def test_pair_holds_the_button_past_the_pens_hold_time_and_lets_go() -> None:
    pen, said = _Pen(), []
    asyncio.run(_obey(pen, _lines("pair\n", "press\n", "jump\n", "\n"), said.append))
    assert pen.log == [("button", True), ("run", PAIR_HOLD_MS), ("button", False),
                       ("button", True), ("run", SHORT_PRESS_MS), ("button", False)]
    assert PAIR_HOLD_MS > PEN_PAIR_HOLD_MS
    assert said[0].startswith("ok: button: held") and said[1] == "ok: button: pressed"
    assert said[2].startswith("error: unknown command 'jump'")
