"""Linear hall sensor on the needle carriage: output voltage proportional to depth.

``mv = zero_mv + mv_per_mm * actual_depth_mm`` (+ ``offset_mv``, a calibration
drift a test can inject). It reads the carriage's ACTUAL position, so the
firmware can verify depth independently of the steps it commanded (rule 3).

Failure modes: ``offset_mv`` (drift); ``stuck_mv`` (the output freezes at a
voltage: a sensor that died, a shorted output); ``glitch_every_ms = n`` (for
``glitch_ms`` of every ``n`` ms the output is at the ADC's rail, ``rail_mv``: a
connector that opens now and then). Glitches follow time, not the number of
reads, so a reader that samples more often (the twin's snapshots) sees the same.
"""

from __future__ import annotations

from typing import Any


class DepthSensorModel:
    def __init__(self, params: dict[str, Any], rail_mv: float = 3100.0) -> None:
        self.zero_mv = float(params["zero_mv"])
        self.mv_per_mm = float(params["mv_per_mm"])
        self.rail_mv = float(rail_mv)
        self.offset_mv = 0.0
        self.stuck_mv: float | None = None
        self.glitch_every_ms = 0
        self.glitch_ms = 10

    def mv(self, depth_um: float) -> float:
        return self.zero_mv + self.mv_per_mm * depth_um / 1000.0 + self.offset_mv

    def read_mv(self, depth_um: float, t_ms: float = 0.0) -> float:
        """The output at virtual time ``t_ms``, with the injected failures."""
        if self.stuck_mv is not None:
            return self.stuck_mv
        every = self.glitch_every_ms
        if every and t_ms % every < self.glitch_ms:
            return self.rail_mv
        return self.mv(depth_um)

    def depth_um_from_mv(self, mv: float) -> float:
        return (mv - self.zero_mv) * 1000.0 / self.mv_per_mm
