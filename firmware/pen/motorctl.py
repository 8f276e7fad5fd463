# Needle motor control (rules 8, 9, 14): soft-start ramp of the PWM duty, closed-loop
# stroke rate from hall count deltas (PI), speed levels inside the validated
# window, and the stop conditions: stall, overcurrent, overtemperature, rate
# drift, a hall rate the motor's own physics does not back, and a loop at full
# duty. A stop condition found in a tick gives duty 0 in that same tick.
#
# The second estimate of the stroke rate is the motor's back-EMF: a DC motor turns
# at kv * (v_applied - i * r), so the duty put out, the cell voltage and the shunt
# current predict the rate without the hall sensor. Both are averaged over the
# same window; they must agree within MISMATCH_PCT, and the cartridge's wear is
# counted from the higher of the two (count()).
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
# Hall rate vs back-EMF rate (rules 8, 14): the largest disagreement of a sound
# pen, in % of the predicted rate. Budget: the motor's kv and winding resistance
# spread (+/-5 % on kv; r +8 % from 25 to 45 C, the overtemperature limit, at
# most 0.2 V of 2 V of EMF: +/-1 %), the cell voltage read up to one gauge poll
# old and carrying the cell's IR drop (150 mOhm x a 0.4 A load change: +/-2 %),
# stroke quantisation of the window (1 of 32 strokes at 100/s: +/-3 %) and the
# driver's dead time (+/-1 %): 12 %. Measured on the virtual pen (both boards,
# every level, a full cell to the reserve, level changes while running): at most
# 3.3 %. One pulse in four lost reads the rate 25 % low (the motor turns 33 %
# faster than the hall says) and is caught in one window; one in ten (11 %) is at
# the edge; one in sixteen (6 %) runs on, counted for wear by the higher estimate.
MISMATCH_PCT = const(12)
# A new speed level while running is approached at this rate (strokes/s x10 per
# ms: 100 strokes/s per s, 0.5 s from 100 to 150), without P action: a step
# would draw the motor's acceleration current past the overcurrent limit and
# the windowed rate would lag it into an overshoot out of the window.
SLEW_X10_PER_MS = const(1)
# Full duty is a loop without authority: the rate loop may sit at the rail this
# long (the stall budget, board stall_ms, is the same question for the hall).
SAT_TICKS = const(3)
# Whatever the hall says, the duty never goes above what the motor's physics gives
# for the top of the window plus MISMATCH_PCT at the cell's voltage (_ceiling): a
# hall that loses pulses from the first stroke cannot drive the cam far out of the
# window during the ramp and settling, before the cross-check is enforced; a loop
# held at that ceiling is a loop without authority (SAT_TICKS).


class MotorCtl:
    def __init__(self, board):
        self.board = board
        self.level = 0
        self.target_sps = board.speed_levels_sps[0]
        self._hist = [0] * WIN  # hall count at each of the last WIN ticks
        self._tms = [0] * WIN
        self._pred = [0] * WIN  # back-EMF rate at each of the last WIN ticks, x10
        self._psum = 0
        self.pred_x10 = 0  # back-EMF rate averaged over the window, x10
        # wear (count()): hall strokes and predicted strokes since the motor started
        self._c_last = None  # hall count at the last count()
        self._c_h = 0
        self._c_p = 0  # predicted strokes x10000 (rate x10 * ms)
        self._c_done = 0
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
        self._sat = 0
        self._t_last = now_ms
        self._ref_x10 = self.target_sps * 10  # the rate the loop aims at now

    def start(self, now_ms, hall):
        self.reset(now_ms, hall)
        self.running = True
        for i in range(WIN):
            self._hist[i] = hall
            self._tms[i] = now_ms
            self._pred[i] = 0
        self._psum = 0
        self.pred_x10 = 0
        # a new wear segment from the last counted hall pulse
        self._c_h = 0
        self._c_p = 0
        self._c_done = 0

    def count(self, hall):
        # -> strokes to count for wear now (rule 14): the rise of the higher of the
        # two estimates since the motor last started (hall pulses, back-EMF).
        # Call once per tick, before update().
        if self._c_last is None:
            self._c_last = hall
        self._c_h += hall - self._c_last
        self._c_last = hall
        p = self._c_p // 10000
        m = self._c_h if self._c_h > p else p
        n = m - self._c_done
        if n <= 0:
            return 0
        self._c_done = m
        return n

    def _emf_rate_x10(self, inp):
        # The rate the motor's physics gives for the duty put out since the last
        # tick, the cell voltage and the winding current: kv * (d * V - i * r).
        b = self.board
        emf_mv = self.duty * inp.battery_mv // DUTY_MAX - inp.motor_ma * b.motor_r_mohm // 1000
        return emf_mv * b.motor_kv_x10 // 1000 if emf_mv > 0 else 0

    def stop(self, now_ms, hall):
        self.reset(now_ms, hall)

    def _ff(self, mv):
        # Feed-forward duty for the reference rate, from the motor's physics at the
        # cell's voltage: d = (rate / kv + i_load * r) / V, with the on-skin load
        # current; the nominal duty scaled by rate while the voltage is unknown.
        b = self.board
        if mv <= 0:
            return b.nominal_duty * self._ref_x10 // (b.rate_nominal_sps * 10)
        emf_mv = self._ref_x10 * 1000 // b.motor_kv_x10 + b.motor_load_ma * b.motor_r_mohm // 1000
        return emf_mv * DUTY_MAX // mv

    def _ceiling(self, mv):
        # The most duty the loop may put out (see SAT_TICKS above); full duty while
        # the cell voltage is unknown (the gauge check stops the session then).
        b = self.board
        if mv <= 0:
            return DUTY_MAX
        rate_x10 = b.rate_max_sps * (100 + MISMATCH_PCT) // 10
        emf_mv = rate_x10 * 1000 // b.motor_kv_x10 + b.motor_load_ma * b.motor_r_mohm // 1000
        d = emf_mv * DUTY_MAX // mv
        return d if d < DUTY_MAX else DUTY_MAX

    def _slew(self, gap):
        # -> True while the reference is still moving to the level's rate.
        want = self.target_sps * 10
        ref = self._ref_x10
        step = SLEW_X10_PER_MS * gap
        if ref < want:
            ref = ref + step if ref + step < want else want
        elif ref > want:
            ref = ref - step if ref - step > want else want
        self._ref_x10 = ref
        return ref != want

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
        gap = now_ms - self._t_last
        self._t_last = now_ms
        if not self.running:
            self.duty = 0
            return 0, 0
        pred = self._emf_rate_x10(inp)
        self._psum += pred - self._pred[i]
        self._pred[i] = pred
        self.pred_x10 = self._psum // WIN
        self._c_p += pred * gap
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
        if run_ms < RAMP_MS:
            self._ref_x10 = self.target_sps * 10
            duty = self._ff(inp.battery_mv) * run_ms // RAMP_MS
        else:
            slewing = self._slew(gap)
            ff = self._ff(inp.battery_mv)
            err = self._ref_x10 - self.rate_x10  # x10
            if run_ms >= RAMP_MS + WIN * b.tick_ms:
                if not slewing:
                    self._integ += err * b.tick_ms  # x10 * ms
                lim = DUTY_MAX * 2560000 // KI_Q8
                if self._integ > lim:
                    self._integ = lim
                elif self._integ < -lim:
                    self._integ = -lim
                duty = ff + (KI_Q8 * self._integ) // 2560000
                if not slewing:  # the windowed rate lags a moving reference: no P on it
                    duty += (KP_Q8 * err) // 2560
            else:
                duty = ff
            # rate window (rule 8) and the two estimates of the rate (rules 8, 14)
            if run_ms >= RAMP_MS + SETTLE_MS:
                r = self.rate_x10
                p = self.pred_x10
                diff = r - p if r > p else p - r
                if diff > RATE_TOL_X10 and diff * 100 > p * MISMATCH_PCT:
                    return self._fault(now_ms, hall, wire.E_FAULT_STROKE_MISMATCH)
                if r < b.rate_min_sps * 10 - RATE_TOL_X10 or r > b.rate_max_sps * 10 + RATE_TOL_X10:
                    if self._out_since < 0:
                        self._out_since = now_ms
                    elif now_ms - self._out_since >= DRIFT_MS:
                        return self._fault(now_ms, hall, wire.E_FAULT_RATE_DRIFT)
                else:
                    self._out_since = -1
        cap = self._ceiling(inp.battery_mv)
        if duty < 0:
            duty = 0
        elif duty >= cap:
            duty = cap
            if run_ms >= RAMP_MS:
                self._sat += 1
                if self._sat >= SAT_TICKS:
                    return self._fault(now_ms, hall, wire.E_FAULT_DUTY_SATURATED)
        if duty < cap:
            self._sat = 0
        self.duty = duty
        return duty, 0

    def _fault(self, now_ms, hall, code):
        self.reset(now_ms, hall)
        return 0, code
