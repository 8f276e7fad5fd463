"""Fixtures: a board, a virtual clock, virtual pen hardware installed into the upy modules,
and the firmware's drivers built on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scalppen_hardware import upy
from scalppen_hardware.board import Board, load_board
from scalppen_hardware.upy.vclock import VirtualClock
from scalppen_hardware.virtual_pen_hw import VirtualPenHardware

EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z

# The firmware's drivers import machine/micropython/onewire by their MicroPython names.
upy.add_to_path()


@pytest.fixture
def board() -> Board:
    return load_board()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(epoch_s=EPOCH)


@pytest.fixture
def hw(board: Board, clock: VirtualClock) -> Iterator[VirtualPenHardware]:
    h = VirtualPenHardware(board, clock)
    upy.install(h)
    yield h
    upy.uninstall()


@pytest.fixture
def machine(hw: VirtualPenHardware) -> Any:
    """The top-level ``machine`` module the firmware imports."""
    return upy.module("machine")


class Rig:
    """Drivers + Inputs/Outputs on the installed hardware; ``tick()`` is one 10 ms loop."""

    def __init__(self, hw: VirtualPenHardware, board: Board) -> None:
        from pen.drivers import Drivers
        from pen.io import Inputs, Outputs

        self.hw = hw
        self.board = board
        self.drv = Drivers(board.data)
        self.inp = Inputs()
        self.out = Outputs()

    def tick(self, n: int = 1) -> Any:
        for _ in range(n):
            self.drv.read(self.inp)
            self.drv.apply(self.out)
            self.hw.advance(10)
        return self.drv.read(self.inp)

    def home(self) -> None:
        self.out.stepper_enable = True
        self.out.home_seek = True
        for _ in range(200):
            self.tick()
            if self.inp.homed:
                break
        assert self.inp.homed and self.inp.home
        self.out.home_seek = False

    def go_to(self, um: int, max_ticks: int = 100) -> None:
        self.out.depth_target_um = um
        for _ in range(max_ticks):
            self.tick()
            if not self.inp.depth_moving:
                return
        raise AssertionError("stepper did not reach its target")


@pytest.fixture
def rig(hw: VirtualPenHardware, board: Board) -> Rig:
    return Rig(hw, board)
