"""Rules of the firmware safety machine (test_stateful_safety.Machine): a second
central, clock changes from a central, refusal floods, the host's LOG_ACK
(rules 6, 20, 21; issue: pen hardening, findings 1-3).

A second central (a phone bonded by passkey, without the permit key) takes the
link over, with or without a gap, and tries what it can: START, a SET_TIME
without the key's tag, floods of refused requests. The host acknowledges what it
synced. Checked on top of the machine's own checks:

- after a takeover nothing the phone does gets the needles moving until the key
  holder arms again (rule 20: START only from the arming link);
- a SET_TIME without the key's tag is refused and leaves the clock alone;
- a session starts only when the interval is served in the pen's running time
  as well (rule 6: a clock moved by anyone shortens no interval);
- records above the host's acknowledgement are never dropped, and a flood writes
  at most a handful of records (refusals are counted).
"""

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule
from pen import wire
from rig import signed_ack
from stateful_support import interval_s

OTHER_KEY = bytes(range(150, 182))
#: Records a flood of refused requests may write: the first of each kind, and one
#: count per kind when its window closes.
FLOOD_RECORDS = 8


class LinkAttacks:
    """Mixed into the safety machine; its rules use the machine's helpers."""

    foreign_link = False  # a phone holds the link: nothing it sends may start needles

    # ---- rules ----------------------------------------------------------------------------
    @rule(gap_ms=st.sampled_from([0, 0, 10, 200, 5000]))
    def second_central_takes_over(self, gap_ms):
        """The host's link drops (or is taken over between two ticks) and a phone
        connects and authenticates."""
        if gap_ms:
            self.inp.link_up = False
            self._advance(gap_ms)
        self.inp.link_epoch += 1
        self.inp.link_up = True
        self.foreign_link = True
        self._tick(10)
        assert self.pen.state != wire.S_ARMED, "rule 20: a permit outlived its link"
        assert self.pen.out.motor_duty == 0, "rule 21: needles ran across a link change"

    @precondition(lambda self: self.foreign_link and (
        self.pen.permit is None or self.pen.permit["link"] != self.inp.link_epoch))
    @rule(press=st.booleans())
    def phone_starts(self, press):
        """The phone sends START (or the user presses the button while it holds the link)."""
        if press:
            self.inp.button = True
            self._tick(10)
            self.inp.button = False
            self._tick(10)
            code = 0 if self.pen.state == wire.S_RUNNING else None
        else:
            code = self._req(wire.T_START)
        assert code != 0, "rule 20: START taken from a link that did not arm the permit"
        assert self.pen.state != wire.S_RUNNING

    @rule(delta=st.sampled_from([-4 * 86400, -3600, 3600, 73 * 3600]),
          how=st.sampled_from(["no tag", "other key"]))
    def phone_sets_the_clock(self, delta, how):
        before = self.pen.clock()
        now = before or self.host_now()
        fields = {"unix": now + delta, "nonce": b"phone%03d" % (self.events % 1000),
                  "tag": bytes(32)}
        if how == "other key":
            from pen.permit import time_tag

            fields["tag"] = time_tag(OTHER_KEY, fields["unix"], fields["nonce"])
        code = self._req(wire.T_SET_TIME, fields)
        if code is None:
            return
        assert code == wire.E_PERMIT_BAD_TAG, f"SET_TIME without the key: {code}"
        assert abs(self.pen.clock() - before) <= 1 or not before, "the clock moved"

    @rule(n=st.integers(20, 200))
    def phone_floods_refusals(self, n):
        if not self.inp.link_up:
            return
        seq = self.pen.store.last_seq()
        pen = self.pen
        for i in range(n):
            k = i % 3
            if k == 0:
                self._req(wire.T_SET_DEPTH, {"depth_um": 260})
            elif k == 1:
                self._req(wire.T_SET_TIME, {"unix": 1, "nonce": b"flood%03d" % (i % 1000),
                                            "tag": bytes(32)})
            else:
                self._req(wire.T_SET_SPEED, {"level": 9})
        if self.pen is pen:  # no power loss in between (a reboot writes its own records)
            assert self.pen.store.last_seq() - seq <= FLOOD_RECORDS, \
                f"{self.pen.store.last_seq() - seq} records for {n} refused requests"

    @rule()
    def host_acknowledges_the_log(self):
        """The host synced and stored everything (LOG_ACK with the key's tag)."""
        if not self.inp.link_up:
            return
        self.foreign_link = False  # the host is back on its link
        code = self._req(wire.T_LOG_ACK, signed_ack(self.pen.store.last_seq()))
        assert code in (0, None), f"LOG_ACK: {code}"

    # ---- checks ---------------------------------------------------------------------------
    def check_interval_in_running_time(self):
        """At an acknowledged START (called from Machine._open_session), against the
        last session of whom rule 6 follows (the pen, or the permit's patient)."""
        last = self.lasts.get(self.subject(self.armed))
        if last is None:
            return
        served_s = (self.rig.t - last["t"]) // 1000
        assert served_s >= interval_s(last["depth"]) - 1, (
            f"rule 6: a session started after {served_s} s of the pen's running time, "
            f"the interval is {interval_s(last['depth'])} s")

    @invariant()
    def unacknowledged_records_are_never_dropped(self):
        st_ = self.pen.store
        assert st_.first_seq() <= st_.c.get("ack", 0) + 1, (
            f"records {st_.c.get('ack', 0) + 1}..{st_.first_seq() - 1} dropped before "
            "the host acknowledged them")
