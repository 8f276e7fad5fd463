"""Directed runs of the safety machine's auto power-off rule (stateful_idle_off.py,
issue 14 item 7): the machine sleeps an idle pen and judges what the woken pen
allows by its own clock; it catches a policy that sleeps through a pause."""

import pytest
import stateful_idle_off
from pen import wire
from test_stateful_safety import Machine, running


@pytest.fixture
def machine():
    m = Machine()
    yield m
    m.teardown()


def _finished_deep_session(m):
    running(m, 1000, 60)  # rule 6 at 1 mm: 7 days
    m.advance_minutes(2)  # the permit's minute runs out: the session ends
    assert m.sess is None and m.pen.state == wire.S_FINISHED


def _start_after_wake(m):
    m.link(True)
    m.cartridge_new("fresh")
    m.advance_ticks(10)
    m.begin_session(250, 60, 1)  # the model's rule 6 check runs at an acknowledged START


def test_machine_sleeps_an_idle_pen_and_the_woken_pen_keeps_rule_6(machine):
    _finished_deep_session(machine)
    machine.link(False)  # the host went away
    boots = len(machine.rig.log(wire.K_BOOT))
    machine.idle_until_asleep(72)  # three days asleep
    assert len(machine.rig.log(wire.K_BOOT)) == boots + 1  # it slept and woke
    assert machine.pen.clock() > 0  # the RTC kept the time
    _start_after_wake(machine)
    assert machine.sess is None
    assert machine.rig.log(wire.K_START_REFUSED)[-1]["code"] == wire.E_INTERVAL_LOCKOUT


def test_machine_catches_a_sleep_through_a_pause(machine, monkeypatch):
    monkeypatch.setattr(stateful_idle_off, "why_awake", lambda *a: "")
    monkeypatch.setattr(machine.board, "idle_off_s", 180)  # the board's lowest
    running(machine, 500, 600)
    machine.stop()  # in the first 30 s: paused
    assert machine.pen.state == wire.S_PAUSED
    machine.link(False)
    with pytest.raises(AssertionError, match="pause window was lost"):
        machine.idle_until_asleep(1)
