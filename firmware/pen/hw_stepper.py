# Needle depth: micro stepper on a lead screw (STEP/DIR/EN), home switch, and the
# linear hall depth sensor that measures the carriage's actual position.
# Stepping is done from the tick, a bounded number of steps per tick with a
# trapezoid speed profile (accelerate by one step/tick per tick, brake in time).
from machine import ADC, Pin


class Stepper:
    def __init__(self, board):
        pins = board["pins"]
        act = board["active_levels"]
        st = board["stepper"]
        ds = board["depth_sensor"]
        self._spm = st["steps_per_mm"]
        self._deeper = st["dir_deeper"]
        self._vmax = st["max_steps_per_tick"]
        self._vseek = st["seek_steps_per_tick"]
        self._max_steps = board["limits"]["abs_depth_um"] * self._spm // 1000
        # Seeking gives up after the whole travel plus margin without the switch.
        self._seek_budget = (st["travel_um"] - st["hard_stop_um"]) * self._spm // 1000 + 2 * self._spm
        self._en_on = act["stepper_enable"]
        self._home_on = act["home"]
        self._step = Pin(pins["stepper_step"], Pin.OUT, value=0)
        self._dir = Pin(pins["stepper_dir"], Pin.OUT, value=0)
        self._en = Pin(pins["stepper_enable"], Pin.OUT, value=1 - self._en_on)
        self._home = Pin(pins["home"], Pin.IN, Pin.PULL_UP)
        self._adc = ADC(Pin(pins["depth_sense"]), atten=ADC.ATTN_11DB)
        self._zero_uv = int(ds["zero_mv"] * 1000)
        self._uv_per_mm = int(ds["mv_per_mm"] * 1000)
        self.enabled = False
        self.homed = False
        self.seek_failed = False
        self.pos = 0  # steps from home, as counted
        self.target = 0
        self._v = 0
        self._seek_steps = 0

    def at_home(self):
        return self._home.value() == self._home_on

    def depth_um(self):
        return (self._adc.read_uv() - self._zero_uv) * 1000 // self._uv_per_mm

    def pos_um(self):
        return self.pos * 1000 // self._spm

    def moving(self):
        return self.enabled and self.homed and self.pos != self.target

    def _enable(self, on):
        if on != self.enabled:
            self.enabled = on
            self._en.value(self._en_on if on else 1 - self._en_on)
            self._v = 0

    def _pulses(self, n, deeper):
        self._dir.value(self._deeper if deeper else 1 - self._deeper)
        step = self._step
        for _ in range(n):
            step.value(1)
            step.value(0)

    def _seek(self):
        if self.at_home():
            self.pos = 0
            self.target = 0
            self.homed = True
            self._v = 0
            self._seek_steps = 0
            return
        if self._seek_steps >= self._seek_budget:
            self.seek_failed = True
            return
        self._dir.value(1 - self._deeper)
        step = self._step
        for _ in range(self._vseek):
            step.value(1)
            step.value(0)
            self._seek_steps += 1
            if self.at_home():
                break

    def apply(self, enable, target_um, seek):
        self._enable(bool(enable))
        if not self.enabled:
            self._seek_steps = 0
            return
        if seek:
            self._seek()
            return
        self._seek_steps = 0
        self.seek_failed = False
        if not self.homed and self.at_home():
            # The switch closed means the carriage is at 0, however it got there.
            self.pos = 0
            self.homed = True
        if not self.homed:
            return  # position unknown: never move toward the skin before homing
        if target_um < 0:
            target_um = 0
        t = (target_um * self._spm + 500) // 1000
        if t > self._max_steps:
            t = self._max_steps
        self.target = t
        err = t - self.pos
        if err == 0:
            self._v = 0
            return
        dist = err if err > 0 else -err
        v = self._v + 1
        if v > self._vmax:
            v = self._vmax
        # Brake: the steps needed to slow down by one step/tick per tick must fit.
        while v > 1 and v * (v + 1) // 2 > dist:
            v -= 1
        if v > dist:
            v = dist
        self._v = v
        self._pulses(v, err > 0)
        self.pos += v if err > 0 else -v

    def stop(self):
        self._enable(False)
