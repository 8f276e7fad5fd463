"""Rules of the firmware safety machine (test_stateful_safety.Machine) for the
auto power-off (issue 14 item 7, pen/idleoff.py): time passes with nobody using
the pen; once the policy says so it stores what it must and deep-sleeps for
hours or days, and its button boots it again with an RTC that counted the sleep.

Checked on top of the machine's own checks (which, after the wake, judge every
acknowledged START against rule 6 by the model's own clock):

- the pen never goes to sleep with a session open or paused, a permit armed, the
  charger in or a host linked;
- the wake is a reset like any other (HOMING, no permit, counters not behind).
"""

from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import precondition, rule
from pen import wire
from pen.idleoff import IdleOff, save_for_sleep, why_awake
from stateful_support import committed, snapshot

#: The rule as the issue states it: the pause window runs its course first.
PAUSE_WINDOW_MS = 600_000
HOUR_MS = 3_600_000


def _event(what):
    if currently_in_test_context():
        from hypothesis import event

        event(what)


class IdleOffRules:
    """Mixed into the safety machine; its rules use the machine's helpers."""

    @precondition(lambda self: self.pen.state in (wire.S_IDLE, wire.S_FINISHED, wire.S_PAUSED))
    @rule(hours=st.integers(1, 240))
    def idle_until_asleep(self, hours):
        """Nobody touches the pen: it sleeps when due, `hours` pass, a press wakes it."""
        idle = IdleOff(self.board.idle_off_s)
        limit = self.board.idle_off_s * 1000 + PAUSE_WINDOW_MS + 2000
        waited = 0
        due = False
        while waited < limit and not due:
            self._advance(100)
            waited += 100
            reason = why_awake(self.pen, self.inp, self.inp.link_up, False)
            due = idle.due(self.pen.now_ms, reason, self.inp.cartridge is not None)
        if not due:
            _event("idle: kept awake")
            return
        pen = self.pen
        assert self.sess is None and not pen.session_open and pen.resume_left_ms() == 0, \
            "asleep with a session open or paused: the pause window was lost"
        assert pen.permit is None and pen.state in (wire.S_IDLE, wire.S_FINISHED), \
            "asleep while armed or busy"
        assert not self.inp.charging and not self.inp.link_up, "asleep while charging or linked"
        _event("idle: deep sleep")
        save_for_sleep(pen)
        rtc = pen.clock()  # the app sets the RTC to the pen's clock before sleeping
        disk = snapshot(committed(self.fs))
        asleep_ms = hours * HOUR_MS
        self.rig.t += asleep_ms  # the world goes on; nothing runs
        self.rig.boot(0, rtc=rtc + asleep_ms // 1000 if rtc else 0)
        self._after_boot(disk, True)
