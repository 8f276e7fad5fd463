# Needle motor control (rules 8, 9): soft-start ramp of the PWM duty, closed-loop
# stroke rate from hall count deltas (PI), speed levels inside the validated
# window, and the stop conditions: stall, overcurrent, overtemperature and rate
# drift. A stop condition found in a tick gives duty 0 in that same tick.
from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

DUTY_MAX = const(1023)
RAMP_MS = const(250)  # soft start: duty rises from 0 to the feed-forward over this
SETTLE_MS = const(600)  # after the ramp, before the rate window is enforced
SPINUP_MS = const(400)  # the first hall pulse must come within this of the start
WIN = const(32)  # rate window, ticks (320 ms at 100 Hz: 3 strokes/s resolution)
DRIFT_MS = const(250)  # outside the window this long -> drift fault
RATE_TOL_X10 = const(40)  # one measurement quantum of the window, strokes/s x10
KP_Q8 = const(640)  # duty per (stroke/s) x256 (2.5)
KI_Q8 = const(3072)  # duty per (stroke/s * s) x256 (12)


class MotorCtl:
    def __init__(self, board):
        self.board = board
        self.level = 0
        self.target_sps = board.speed_levels_sps[0]
        self._hist = [0] * WIN  # hall count at each of the last WIN ticks
        self._tms = [0] * WIN
        self.reset(0, 0)
        self.set_level(self._nominal_level())

    def _nominal_level(self):
        levels = self.board.speed_levels_sps
        best = 0
        for i in range(len(levels)):
            if abs(levels[i] - self.board.rate_nominal_sps) < abs(levels[best] - self.board.rate_nominal_sps):
                best = i
        return best

    def set_level(self, level):
        levels = self.board.speed_levels_sps
        if level < 0 or level >= len(levels):
            return wire.E_SPEED_OUT_OF_RANGE
        r = levels[level]
        if r < self.board.rate_min_sps or r > self.board.rate_max_sps:
            return wire.E_SPEED_OUT_OF_RANGE
        self.level = level
        self.target_sps = r
        return 0

    def reset(self, now_ms, hall):
        # Motor off; the next start ramps from zero.
        self.running = False
        self.duty = 0
        self.rate_x10 = 0
        self._t0 = now_ms
        self._last_hall = hall
        self._last_pulse_ms = now_ms
        self._seen_pulse = False
        self._integ = 0
        self._out_since = -1
        self._n = 0

    def start(self, now_ms, hall):
        self.reset(now_ms, hall)
        self.running = True
        for i in range(WIN):
            self._hist[i] = hall
            self._tms[i] = now_ms

    def stop(self, now_ms, hall):
        self.reset(now_ms, hall)

    def _ff(self):
        return self.board.nominal_duty * self.target_sps // self.board.rate_nominal_sps

    def update(self, now_ms, inp):
        # -> (duty, fault code). Call every tick; duty is 0 unless running.
        hall = inp.hall_count
        moved = hall != self._last_hall
        if moved:
            self._last_pulse_ms = now_ms
            self._seen_pulse = True
        self._last_hall = hall
        # rate over the window
        i = self._n % WIN
        old_h = self._hist[i]
        old_t = self._tms[i]
        self._hist[i] = hall
        self._tms[i] = now_ms
        self._n += 1
        dt = now_ms - old_t
        if dt > 0:
            self.rate_x10 = (hall - old_h) * 10000 // dt
        if not self.running:
            self.duty = 0
            return 0, 0
        b = self.board
        # stop conditions: checked before any duty is put out
        if inp.motor_ma > b.overcurrent_ma:
            # a locked rotor shows as overcurrent with no stroke this tick
            return self._fault(now_ms, hall, wire.E_FAULT_STALL if not moved else wire.E_FAULT_OVERCURRENT)
        if inp.temp_c10 > b.overtemp_c10:
            return self._fault(now_ms, hall, wire.E_FAULT_OVERTEMP)
        run_ms = now_ms - self._t0
        if self._seen_pulse:
            if now_ms - self._last_pulse_ms >= b.stall_ms and run_ms >= RAMP_MS:
                return self._fault(now_ms, hall, wire.E_FAULT_STALL)
        elif run_ms >= SPINUP_MS:
            return self._fault(now_ms, hall, wire.E_FAULT_STALL)
        ff = self._ff()
        if run_ms < RAMP_MS:
            duty = ff * run_ms // RAMP_MS
        else:
            err = self.target_sps * 10 - self.rate_x10  # x10
            if run_ms >= RAMP_MS + WIN * b.tick_ms:
                self._integ += err * b.tick_ms  # x10 * ms
                lim = DUTY_MAX * 2560000 // KI_Q8
                if self._integ > lim:
                    self._integ = lim
                elif self._integ < -lim:
                    self._integ = -lim
                duty = ff + (KP_Q8 * err) // 2560 + (KI_Q8 * self._integ) // 2560000
            else:
                duty = ff
            # rate window (rule 8)
            if run_ms >= RAMP_MS + SETTLE_MS:
                r = self.rate_x10
                if r < b.rate_min_sps * 10 - RATE_TOL_X10 or r > b.rate_max_sps * 10 + RATE_TOL_X10:
                    if self._out_since < 0:
                        self._out_since = now_ms
                    elif now_ms - self._out_since >= DRIFT_MS:
                        return self._fault(now_ms, hall, wire.E_FAULT_RATE_DRIFT)
                else:
                    self._out_since = -1
        if duty < 0:
            duty = 0
        elif duty > DUTY_MAX:
            duty = DUTY_MAX
        self.duty = duty
        return duty, 0

    def _fault(self, now_ms, hall, code):
        self.reset(now_ms, hall)
        return 0, code
