"""Micro stepper on a lead screw setting the needle depth, with a home switch.

The driver (A4988-like) takes a step on each rising edge of STEP while enabled,
in the direction given by DIR (``dir_deeper`` is the level that moves deeper).
The carriage is mechanically limited to ``[hard_stop_um, travel_um]``: steps
past a stop are lost, like a real screw against its end. The home switch is
closed whenever the carriage is at or above depth 0 (``actual_steps <= 0``).

Failure modes: ``miss_every = n`` loses every n-th step (n = 1 loses them all:
a jam); ``jammed`` loses every step. Both make the actual depth depart from the
steps the firmware counted.
"""

from __future__ import annotations

from typing import Any


class StepperModel:
    def __init__(self, params: dict[str, Any], start_um: float = 0.0) -> None:
        self.steps_per_mm = float(params["steps_per_mm"])
        self.dir_deeper = int(params.get("dir_deeper", 1))
        self.min_steps = round(float(params["hard_stop_um"]) * self.steps_per_mm / 1000.0)
        self.max_steps = round(float(params["travel_um"]) * self.steps_per_mm / 1000.0)
        self.pos = round(start_um * self.steps_per_mm / 1000.0)  # actual, in steps
        self.enabled = False
        self.dir_level = 0
        self.miss_every = 0
        self.jammed = False
        self.steps_taken = 0  # step edges accepted by the driver
        self.steps_missed = 0
        self._since_miss = 0

    @property
    def actual_um(self) -> float:
        return self.pos * 1000.0 / self.steps_per_mm

    @property
    def home(self) -> bool:
        return self.pos <= 0

    def set_position_um(self, um: float) -> None:
        self.pos = round(um * self.steps_per_mm / 1000.0)

    def step_edge(self) -> None:
        """A rising edge on STEP."""
        if not self.enabled:
            return
        self.steps_taken += 1
        if self.jammed:
            self.steps_missed += 1
            return
        if self.miss_every:
            self._since_miss += 1
            if self._since_miss >= self.miss_every:
                self._since_miss = 0
                self.steps_missed += 1
                return
        if self.dir_level == self.dir_deeper:
            if self.pos < self.max_steps:
                self.pos += 1
            else:
                self.steps_missed += 1
        elif self.pos > self.min_steps:
            self.pos -= 1
        else:
            self.steps_missed += 1
