"""1S Li-ion cell: state of charge, open-circuit-voltage curve, internal resistance.

Discharge: ``dSOC/dt = -I_load / capacity``. Charging (charger plugged): constant
current ``charge_ma`` tapering linearly to 0 over the last 10 % (CC/CV), while
the charger also feeds the system load (power path), so the cell only charges.
Terminal voltage ``v = OCV(SOC) - I * r_int`` (``+`` while charging) minus
``sag_mv``, the brown-out fault: a transient dip the virtual pen applies.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any


class BatteryModel:
    def __init__(self, params: dict[str, Any], soc_pct: float = 80.0) -> None:
        self.capacity_mas = float(params["capacity_mah"]) * 3600.0  # mA*s
        self.r_int = float(params["r_int_mohm"]) / 1000.0
        self.charge_ma = float(params["charge_ma"])
        curve = sorted((float(s), float(v)) for s, v in params["ocv_mv"])
        self._soc_pts = [p[0] for p in curve]
        self._mv_pts = [p[1] for p in curve]
        self.soc = float(soc_pct)
        self.plugged = False
        self.sag_mv = 0.0
        self.load_ma = 0.0  # last average system load
        self.cell_ma = 0.0  # last cell current, + = discharging
        self.terminal_mv = self.ocv_mv(self.soc)

    def ocv_mv(self, soc: float) -> float:
        s, v = self._soc_pts, self._mv_pts
        if soc <= s[0]:
            return v[0]
        if soc >= s[-1]:
            return v[-1]
        i = bisect_right(s, soc)
        f = (soc - s[i - 1]) / (s[i] - s[i - 1])
        return v[i - 1] + f * (v[i] - v[i - 1])

    def charge_current_ma(self) -> float:
        if not self.plugged or self.soc >= 100.0:
            return 0.0
        taper = (100.0 - self.soc) / 10.0
        return self.charge_ma * (taper if taper < 1.0 else 1.0)

    def step(self, dt: float, load_ma: float) -> None:
        """Advance ``dt`` seconds with an average system load of ``load_ma``."""
        self.load_ma = load_ma
        cell_ma = -self.charge_current_ma() if self.plugged else load_ma
        self.cell_ma = cell_ma
        soc = self.soc - cell_ma * dt * 100.0 / self.capacity_mas
        self.soc = 0.0 if soc < 0.0 else (100.0 if soc > 100.0 else soc)
        self.terminal_mv = self.ocv_mv(self.soc) - cell_ma * self.r_int - self.sag_mv

    @property
    def terminal_v(self) -> float:
        return self.terminal_mv / 1000.0
