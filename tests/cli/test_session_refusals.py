"""``session start`` refused by the pen or by this computer's policy (issue 14 item
13): the same exit status (3) and the same ``refused:`` prefix, on a line of its
own after the live view's ``arming...`` (into a pipe the two used to run together).

The pen is a stand-in that refuses: what the command prints is the subject here;
the refusals themselves are tested against the sim (tests/e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scalppen import store as S
from scalppen.cli import session as session_cli
from scalppen.client import PenRefused
from scalppen.policy.decision import Decision
from scalppen.policy.outcome import Refusal
from scalppen.workflows.session import SessionRefused
from scalppen_protocol.codes import ErrorCode, MsgType
from tests.cli.conftest import Invoke


@pytest.fixture
def refusing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """A paired pen whose session start raises what the test puts in the list."""
    with S.open_store(db_path) as db:
        prof = S.add_profile(db, "Ada", birth_year=1985)
        S.upsert_pen(db, "SP-1", model="home", ble_address="AA:BB:CC:DD:EE:01",
                     owner_profile_id=prof.id)
    raised: list[BaseException] = []

    @asynccontextmanager
    async def connected_pen(*_: Any) -> AsyncIterator[object]:
        yield object()

    async def run_session(*_: Any, **__: Any) -> None:
        raise raised[0]

    monkeypatch.setattr(session_cli, "connected_pen", connected_pen)
    monkeypatch.setattr(session_cli, "run_session", run_session)
    return raised


@pytest.mark.parametrize("refusal, words", [
    (PenRefused(ErrorCode.BATTERY_LOW, 0, MsgType.START),
     "refused: the pen: the battery is too low for a session: charge the pen"),
    (SessionRefused(Decision(False, (Refusal(6, "too soon after the last session"),), (), 0, 0,
                             0, 0, None, (), datetime.now(UTC))),
     "refused: rule 6: too soon after the last session"),
], ids=["pen", "host"])
def test_a_refusal_is_one_line_of_its_own_with_status_3(
        cli: Invoke, refusing: list[BaseException], refusal: Exception, words: str) -> None:
    refusing.append(refusal)
    run = cli("session", "start", "--depth", "0.5", "--sterilised")
    assert run.exit_code == 3, run.output
    assert run.stdout.splitlines() == ["arming...", words], run.stdout
    assert run.stderr == ""
