"""NTC thermistor (beta equation) in a divider read by an ADC.

The NTC is the lower leg: ``v = vref * r_ntc / (r_fixed + r_ntc)`` and
``r_ntc = r25 * exp(beta * (1/T - 1/298.15))`` (T in kelvin).
"""

from __future__ import annotations

import math
from typing import Any

T25_K = 298.15


class NtcModel:
    def __init__(self, params: dict[str, Any]) -> None:
        self.r25 = float(params["r25_ohm"])
        self.beta = float(params["beta"])
        self.r_fixed = float(params["r_fixed_ohm"])
        self.vref_mv = float(params["vref_mv"])

    def resistance(self, temp_c: float) -> float:
        return self.r25 * math.exp(self.beta * (1.0 / (temp_c + 273.15) - 1.0 / T25_K))

    def mv(self, temp_c: float) -> float:
        r = self.resistance(temp_c)
        return self.vref_mv * r / (self.r_fixed + r)

    def temp_from_mv(self, mv: float) -> float:
        """Inverse of :meth:`mv` (what the firmware computes)."""
        r = self.r_fixed * mv / (self.vref_mv - mv)
        return 1.0 / (1.0 / T25_K + math.log(r / self.r25) / self.beta) - 273.15
