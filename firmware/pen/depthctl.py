# Needle depth (rules 1-3): homing on the home switch at boot and after every
# fault, settings on the grid, the depth target (0 = retracted whenever the
# needles must not be out), and verification of the measured depth once settled.
from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

HOMING_MS = const(3000)  # the home switch must close within this
VERIFY_TICKS = const(3)  # consecutive out-of-tolerance ticks that make a fault


class DepthCtl:
    def __init__(self, board):
        self.board = board
        self.setting_um = 0  # the user's setting (0 = none yet)
        self.target_um = 0  # what the stepper is told now
        self.homed = False
        self.homing = False
        self._home_t0 = 0
        self._changed_ms = 0
        self._bad = 0

    def start_homing(self, now_ms):
        self.homed = False
        self.homing = True
        self.target_um = 0
        self._home_t0 = now_ms
        self._bad = 0

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
            self._bad = 0

    def retract(self, now_ms):
        self.set_target(0, now_ms)

    def settled(self, now_ms):
        return now_ms - self._changed_ms >= self.board.depth_settle_ms

    def verify(self, now_ms, inp):
        # Rule 3: once settled, the measured depth is within +/- tol of the target.
        # -> 0 or E_FAULT_DEPTH. Call every tick once homed.
        if not self.homed or not self.settled(now_ms):
            self._bad = 0
            return 0
        err = inp.depth_um - self.target_um
        if err > self.board.depth_tol_um or err < -self.board.depth_tol_um:
            self._bad += 1
            if self._bad >= VERIFY_TICKS:
                return wire.E_FAULT_DEPTH
        else:
            self._bad = 0
        return 0
