# Needle depth (rules 1-3): homing on the home switch at boot and after every
# fault, settings on the grid, the depth target (0 = retracted whenever the
# needles must not be out), and verification of the measured depth once settled.
#
# Rule 3 rests on three witnesses, not one: the depth sensor (the carriage's
# actual position), the stepper's counted steps, and the home switch. The sensor
# must agree with the target once settled (FAULT_DEPTH) and with the counted
# steps whenever the stepper stands still; the home switch must be closed when
# the steps say 0 and open when they say deeper (FAULT_DEPTH_DISAGREE). A bad
# sample is remembered over a window, so samples that are bad now and then fault
# too, not only a run of them.
from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

HOMING_MS = const(3000)  # the home switch must close within this
VERIFY_TICKS = const(3)  # out-of-tolerance samples in the window that make a fault
# The window: the last 24 samples (240 ms at 100 Hz; 24 bits stay a small int in
# MicroPython). A sound sensor never reads outside +/-0.15 mm (its noise is about
# 1 um: 0.8 mV/um on a 12-bit ADC); three bad samples in 24 are a sensor, a screw
# or a wire that has started to fail.
_WIN_MASK = const(0xFFFFFF)


class DepthCtl:
    def __init__(self, board):
        self.board = board
        self.setting_um = 0  # the user's setting (0 = none yet)
        self.target_um = 0  # what the stepper is told now
        self.homed = False
        self.homing = False
        self._home_t0 = 0
        self._changed_ms = 0
        self._bad = 0  # bit i: the sample i ticks ago was off the target
        self._dis = 0  # bit i: the sample i ticks ago disagreed with the steps or switch

    def start_homing(self, now_ms):
        self.homed = False
        self.homing = True
        self.target_um = 0
        self._home_t0 = now_ms
        self._bad = 0
        self._dis = 0

    def homing_step(self, now_ms, inp):
        # -> 0 while seeking, -1 when homed, or E_FAULT_HOMING.
        if inp.home:
            self.homing = False
            self.homed = True
            self._changed_ms = now_ms
            return -1
        if now_ms - self._home_t0 >= HOMING_MS:
            self.homing = False
            return wire.E_FAULT_HOMING
        return 0

    def set_target(self, um, now_ms):
        if um < 0:
            um = 0
        if um > self.board.ceiling_um:
            um = self.board.ceiling_um  # belt and braces: never command above the ceiling
        if um != self.target_um:
            self.target_um = um
            self._changed_ms = now_ms

    def retract(self, now_ms):
        self.set_target(0, now_ms)

    def settled(self, now_ms):
        return now_ms - self._changed_ms >= self.board.depth_settle_ms

    def verify(self, now_ms, inp):
        # Rule 3: once settled, the measured depth is within +/- tol of the target,
        # and the sensor, the counted steps and the home switch agree.
        # -> 0, E_FAULT_DEPTH or E_FAULT_DEPTH_DISAGREE. Call every tick once homed.
        if not self.homed:
            self._bad = 0
            self._dis = 0
            return 0
        tol = self.board.depth_tol_um
        if self.settled(now_ms):
            err = inp.depth_um - self.target_um
            self._bad = ((self._bad << 1) | (1 if err > tol or err < -tol else 0)) & _WIN_MASK
            if _ones(self._bad) >= VERIFY_TICKS:
                return wire.E_FAULT_DEPTH
        if inp.homed and not inp.depth_moving:
            cmd = inp.depth_cmd_um
            err = inp.depth_um - cmd
            bad = err > tol or err < -tol
            if cmd <= 0:
                bad = bad or not inp.home  # the steps say home: the switch must be closed
            elif cmd > tol:
                bad = bad or inp.home  # deeper than the sensor's tolerance: open
            self._dis = ((self._dis << 1) | (1 if bad else 0)) & _WIN_MASK
            if _ones(self._dis) >= VERIFY_TICKS:
                return wire.E_FAULT_DEPTH_DISAGREE
        return 0


def _ones(x):
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n
