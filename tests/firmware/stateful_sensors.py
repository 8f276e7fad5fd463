"""Rules of the firmware safety machine (test_stateful_safety.Machine): sensor dropouts, a saturated motor, a gauge off the bus, a depth sensor that lies (rules 3, 8, 9, 12, 14).

The faults come and go at any step, during a session or not. Checked at every
tick (check_sensor_crosschecks, called from Machine.check_tick):

- the cam never runs far above the window, whatever the hall shows (rule 8):
  not above 150/s plus the cross-check's tolerance while driven;
- the motor never sits at full duty past the stall budget (rules 8, 9);
- no needling on a battery the gauge cannot vouch for (rule 12);
- a cartridge never takes more real strokes than its rating plus the
  cross-check's tolerance, however many pulses the hall loses (rule 14);
- the needles move only with a depth sensor the pen has not caught lying three
  times in its window (rule 3): a session with a stuck or glitching sensor stops.
"""

from hypothesis import strategies as st
from hypothesis.stateful import rule
from pen import motorctl, wire
from pen.depthctl import VERIFY_TICKS

RATE_CEILING = 150 * (100 + motorctl.MISMATCH_PCT + 5) // 100  # strokes/s, with the loop's lag
WEAR_SLACK = 1 + motorctl.MISMATCH_PCT / 100


class SensorFaults:
    """Mixed into the safety machine; its rules use the machine's helpers."""

    # ---- rules ----------------------------------------------------------------------------
    @rule(every=st.sampled_from([0, 0, 3, 4, 8, 16]), ticks=st.integers(0, 120))
    def hall_pulse_dropouts(self, every, ticks):
        """The hall sensor misses every n-th pulse (0: none)."""
        self.rig.plant.hall_miss_every = every
        for _ in range(ticks):
            self._tick(10)

    @rule(on=st.booleans(), ticks=st.integers(0, 60))
    def supply_sags_to_saturation(self, on, ticks):
        """The cell sags so far that full duty cannot hold the rate."""
        self.inp.battery_mv = 2200 if on else 3950
        for _ in range(ticks):
            self._tick(10)

    @rule(on=st.booleans(), ticks=st.integers(0, 80))
    def gauge_off_the_bus(self, on, ticks):
        """The fuel gauge stops answering (the last reading stays, unvouched for)."""
        self.rig.plant.gauge_off = on
        if not on:
            self.inp.battery_ok = True  # it answers again at its next poll
        for _ in range(ticks):
            self._tick(10)

    @rule(every=st.sampled_from([0, 0, 2, 4, 7, 40]), ticks=st.integers(0, 60))
    def depth_sensor_dropouts(self, every, ticks):
        """Every n-th depth sample reads the ADC rail (0: none)."""
        self.rig.plant.depth_glitch_every = every
        for _ in range(ticks):
            self._tick(10)

    @rule(lie=st.sampled_from([None, None, "stuck", 300, -300]), ticks=st.integers(0, 60))
    def depth_sensor_lies(self, lie, ticks):
        """The depth sensor freezes at what it reads now, or reads 0.3 mm off."""
        p = self.rig.plant
        p.depth_sensor_stuck = self.inp.depth_um if lie == "stuck" else None
        p.depth_offset = lie if isinstance(lie, int) else 0
        for _ in range(ticks):
            self._tick(10)

    # ---- the per-tick check --------------------------------------------------------------------
    def check_sensor_crosschecks(self, out):
        p = self.rig.plant
        n = p.strokes - getattr(self, "_real_seen", p.strokes)
        self._real_seen = p.strokes
        real = self.__dict__.setdefault("_real_used", {})
        cid = self._cur()
        if cid is not None and cid in self.carts:
            real[cid] = real.get(cid, self.carts[cid].used) + (n if self.sess is not None else 0)
        sat = getattr(self, "_sat_ticks", 0)
        # full duty counts once the soft start is over (the motor spins up at full duty
        # from a sagging cell; stalls are watched separately, rule 9)
        ramped = self.pen.now_ms - self.pen.motor._t0 >= motorctl.RAMP_MS
        self._sat_ticks = sat + 1 if out.motor_duty >= motorctl.DUTY_MAX and ramped else 0
        # rule 3: samples far off the carriage's real position while settled at depth
        bad = self.__dict__.setdefault("_depth_bad", [])
        settled = self.pen.depth.settled(self.pen.now_ms) and not self.inp.depth_moving
        if settled and self.pen.state == wire.S_RUNNING:
            bad.append(abs(self.inp.depth_um - p.pos) > self.board.depth_tol_um)
            del bad[:-24]
        else:
            bad.clear()
        if out.motor_duty <= 0:
            return
        assert p.speed <= RATE_CEILING, f"rule 8: the cam at {p.speed:.0f}/s, driven"
        assert self._sat_ticks < motorctl.SAT_TICKS, "rules 8/9: full duty past the stall budget"
        assert self.inp.battery_ok, "rule 12: needling on a battery the gauge cannot vouch for"
        if cid is not None and cid in self.carts:
            c = self.carts[cid]
            assert real[cid] < c.rated * WEAR_SLACK + 2, \
                f"rule 14: {real[cid]} real strokes on a cartridge rated {c.rated}"
        assert sum(bad) < VERIFY_TICKS, "rule 3: needling on a depth sensor caught lying"
