"""Lumped thermal model of the handpiece around the motor and its NTC.

``dT/dt = (ambient + P * rth - T) / tau``, integrated exactly over each step (so
long idle steps are stable). ``P`` is the electrical power drawn by the motor
(all of it ends up as heat in the handpiece). The ``overtemp`` fault holds the
temperature at ``forced_c`` until cleared, after which it relaxes again.
"""

from __future__ import annotations

import math
from typing import Any


class ThermalModel:
    def __init__(self, params: dict[str, Any]) -> None:
        self.ambient = float(params["ambient_c"])
        self.rth = float(params["rth_c_per_w"])
        self.tau = float(params["tau_s"])
        self.temp_c = self.ambient
        self.forced_c: float | None = None

    def steady_temp(self, power_w: float) -> float:
        return self.ambient + power_w * self.rth

    def step(self, dt: float, power_w: float) -> None:
        target = self.ambient + power_w * self.rth
        self.temp_c += (target - self.temp_c) * (1.0 - math.exp(-dt / self.tau))
        if self.forced_c is not None and self.temp_c < self.forced_c:
            self.temp_c = self.forced_c
