"""Coreless DC motor on PWM driving the needle cam (one hall pulse per stroke).

Electrical model: the driver applies ``duty * v_batt``; the rotor's back-EMF is
``speed / kv`` (speed in strokes/s, one stroke per revolution); the winding
current is ``(v_applied - emf) / r``, clipped to ``[0, max_ma]`` (the driver's
current limit; no regeneration). Mechanical model: the rotor approaches the
steady speed ``kv * (v_applied - i_load * r)`` as a first-order lag of ``tau``,
where ``i_load`` is the no-load current plus the extra load of skin contact.
While the current limit is active the acceleration is limited to what the
clipped current can give. Duty 0 brakes the motor (driver in brake mode): the
speed decays with ``tau``, and the supply shunt sees no current.

A stall (a jam of the cam) locks the rotor: speed 0 at once, no hall pulses, and
the locked-rotor current ``v_applied / r`` (clipped) flows.

A hall sensor that misses pulses (a magnet that has moved off the sensor, a
weak pull-up): ``hall_miss_every = n`` loses every n-th pulse (4: one in four).
The cam still makes the stroke; :meth:`hall_pulses` says how many of the new
strokes the sensor shows, and the hall output stays low through a lost one.
"""

from __future__ import annotations

import math
from typing import Any


class MotorModel:
    """The motor, its cam and its shunt. Units: strokes/s, A, V, s."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.kv = float(params["kv_sps_per_v"])
        self.r = float(params["r_ohm"])
        self.tau = float(params["tau_ms"]) / 1000.0
        self.i_noload = float(params["noload_ma"]) / 1000.0
        self.i_contact = float(params["contact_ma"]) / 1000.0
        self.i_max = float(params["max_ma"]) / 1000.0
        # d(speed)/dt per ampere of net current (strokes/s^2/A).
        self.k_acc = self.r * self.kv / self.tau
        self.duty = 0.0  # 0..1, from the PWM
        self.contact = False
        self.stalled = False
        self.speed = 0.0  # strokes/s
        self.current = 0.0  # A through the shunt
        self.phase = 0.0  # fraction of the current stroke, 0..1
        self.strokes = 0  # strokes since the model was built
        self.hall_miss_every = 0  # 0: every pulse seen; n: every n-th pulse lost
        self.hall_missed = 0  # pulses lost so far
        self._since_miss = 0
        self._lost = False  # the stroke under way is one the sensor misses
        self._alpha_dt = -1.0
        self._alpha = 0.0

    def steady_speed(self, v_batt: float, contact: bool | None = None) -> float:
        """Speed the motor settles at for the present duty (strokes/s)."""
        load = self.i_noload + (
            self.i_contact if (self.contact if contact is None else contact) else 0
        )
        return max(0.0, self.kv * (self.duty * v_batt - load * self.r))

    def hall_level(self) -> int:
        """Hall output: high during the first half of each stroke (low through a lost one)."""
        return 1 if self.phase < 0.5 and not self._lost else 0

    def hall_pulses(self, strokes: int) -> int:
        """Of ``strokes`` new strokes, how many the hall sensor shows."""
        every = self.hall_miss_every
        if every <= 0:
            self._lost = False
            return strokes
        seen = 0
        for _ in range(strokes):
            self._since_miss += 1
            self._lost = self._since_miss >= every
            if self._lost:
                self._since_miss = 0
                self.hall_missed += 1
            else:
                seen += 1
        return seen

    @property
    def active(self) -> bool:
        return self.duty > 0.0 or self.speed > 0.0

    def step(self, dt: float, v_batt: float) -> int:
        """Advance ``dt`` seconds at battery voltage ``v_batt``; returns new strokes."""
        v_app = self.duty * v_batt
        if self.stalled:
            self.speed = 0.0
            i = v_app / self.r
            self.current = i if i < self.i_max else self.i_max
            return 0
        if dt != self._alpha_dt:
            self._alpha_dt = dt
            self._alpha = 1.0 - math.exp(-dt / self.tau)
        speed = self.speed
        if v_app <= 0.0:
            self.current = 0.0
            speed -= speed * self._alpha
            if speed < 0.05:
                speed = 0.0
        else:
            load = self.i_noload + self.i_contact if self.contact else self.i_noload
            target = self.kv * (v_app - load * self.r)
            if target < 0.0:
                target = 0.0
            new = speed + (target - speed) * self._alpha
            i = (v_app - speed / self.kv) / self.r
            if i > self.i_max:
                limited = speed + self.k_acc * (self.i_max - load) * dt
                if limited < new:
                    new = limited
            speed = new
            i = (v_app - speed / self.kv) / self.r
            self.current = 0.0 if i < 0.0 else (i if i < self.i_max else self.i_max)
        self.speed = speed
        phase = self.phase + speed * dt
        if phase < 1.0:
            self.phase = phase
            return 0
        n = int(phase)
        self.phase = phase - n
        self.strokes += n
        return n
