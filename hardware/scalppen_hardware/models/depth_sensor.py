"""Linear hall sensor on the needle carriage: output voltage proportional to depth.

``mv = zero_mv + mv_per_mm * actual_depth_mm`` (+ ``offset_mv``, a calibration
drift a test can inject). It reads the carriage's ACTUAL position, so the
firmware can verify depth independently of the steps it commanded (rule 3).
"""

from __future__ import annotations

from typing import Any


class DepthSensorModel:
    def __init__(self, params: dict[str, Any]) -> None:
        self.zero_mv = float(params["zero_mv"])
        self.mv_per_mm = float(params["mv_per_mm"])
        self.offset_mv = 0.0

    def mv(self, depth_um: float) -> float:
        return self.zero_mv + self.mv_per_mm * depth_um / 1000.0 + self.offset_mv

    def depth_um_from_mv(self, mv: float) -> float:
        return (mv - self.zero_mv) * 1000.0 / self.mv_per_mm
