"""Rule 6 on the host against a moved clock (issue: pen hardening, finding 1).

The host used to take a session's end time from the pen's log as written: a
bonded phone that set the pen's clock back four days before STOP made the store
think the session was four days old, and a laptop clock 73 h fast let the policy
issue the next permit. Now the store takes a session's end as the latest time
the pen showed during it, the policy also honours the wait the pen itself still
counts (STATUS, in the pen's own frame), and a sync names clock jumps and
sessions that end before they start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.host.test_policy_rules import NOW, ready
from tests.host.test_store_logsync import rec

from scalppen import store as S
from scalppen.policy import SessionRequest, evaluate
from scalppen.policy.clock import CLOCK_JUMP_S, clock_findings
from scalppen.results import LogRecord
from scalppen_protocol.codes import RecordKind

PEN = "SP-CLOCK"
T = int(NOW.timestamp()) - 3600
DAY = 86400


@pytest.fixture
def db(tmp_path: Path) -> Iterator[S.Store]:
    with S.open_store(tmp_path / "pen.db") as store:
        yield store


def phone_attack_log() -> list[dict]:
    """The old firmware's log of the attack: START at T; a phone sets the clock four
    days back; STOP (the END stamped T - 4 days); the clock set right again."""
    return [
        rec(1, RecordKind.SESSION_START, T, 500),
        rec(2, RecordKind.LINK_LOST, T + 300, 500, a=300_000),
        rec(3, RecordKind.TIME_SET, T - 4 * DAY + 1, 0, a=T - 4 * DAY + 1, b=T + 310),
        rec(4, RecordKind.SESSION_END, T - 4 * DAY + 5, 500, a=300_000, b=35_000),
        rec(5, RecordKind.TIME_SET, T + 320, 0, a=T + 320, b=T - 4 * DAY + 9),
    ]


def test_a_session_end_stamped_days_back_counts_from_the_latest_time_the_pen_showed(db) -> None:
    S.ingest_log_records(db, PEN, phone_attack_log(), from_seq=1, now=NOW)
    [s] = S.list_sessions(db, pen_serial=PEN)
    assert s.ended_at is not None
    assert s.ended_at >= datetime.fromtimestamp(T + 310, UTC)


def test_the_sync_names_the_jumps_and_the_session_that_ends_before_it_starts() -> None:
    records = [LogRecord(**r) for r in phone_attack_log()]
    found = clock_findings(records)
    texts = [f.text for f in found]
    assert [f.seq for f in found] == [3, 4, 5]
    assert "moved back by 96" in texts[0] and "moved forward" in texts[2]
    assert "stamped before it began" in texts[1]


def test_small_corrections_and_a_first_setting_are_not_findings() -> None:
    records = [LogRecord(**r) for r in (
        rec(1, RecordKind.TIME_SET, T, 0, a=T, b=0),  # the first setting: was unset
        rec(2, RecordKind.TIME_SET, T + 60, 0, a=T + 60, b=T + 60 - CLOCK_JUMP_S),
        rec(3, RecordKind.SESSION_START, T + 100, 500),
        rec(4, RecordKind.SESSION_END, T + 700, 500, a=600_000),
    )]
    assert clock_findings(records) == []


def test_the_policy_refuses_while_the_pen_still_counts_a_wait() -> None:
    # The store knows nothing recent (a laptop clock 73 h fast would agree), but the
    # pen's STATUS says its own count has 71 h to go.
    history = ready(pen_lock_left_s=71 * 3600)
    d = evaluate(history, SessionRequest(depth_um=500), now=NOW)
    assert not d.allowed
    [refusal] = [r for r in d.refusals if r.rule == 6]
    assert refusal.lifts_at == NOW + timedelta(hours=71)
    assert "no clock change shortens" in refusal.reason
    assert evaluate(replace(history, pen_lock_left_s=0), SessionRequest(depth_um=500),
                    now=NOW).allowed
