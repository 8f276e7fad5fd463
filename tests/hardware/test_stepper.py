"""Depth: stepper model, home switch, missed steps; the stepper driver end to end."""

from __future__ import annotations

import itertools

from scalppen_hardware.models.stepper import StepperModel


def test_model_steps_stops_and_home(board) -> None:  # type: ignore[no-untyped-def]
    st = StepperModel(board["stepper"], start_um=100)
    spm = board["stepper"]["steps_per_mm"]
    st.step_edge()
    assert st.pos == 8  # disabled: no motion
    st.enabled = True
    st.dir_level = 1 - st.dir_deeper
    for _ in range(100):
        st.step_edge()
    assert st.home
    assert st.actual_um == board["stepper"]["hard_stop_um"]  # against the end stop
    assert st.steps_missed == 100 - 8 - round(-board["stepper"]["hard_stop_um"] * spm / 1000)
    st.dir_level = st.dir_deeper
    for _ in range(10_000):
        st.step_edge()
    assert st.actual_um == board["stepper"]["travel_um"]
    assert not st.home


def test_model_missed_steps_and_jam(board) -> None:  # type: ignore[no-untyped-def]
    st = StepperModel(board["stepper"])
    st.enabled = True
    st.dir_level = st.dir_deeper
    st.miss_every = 2
    for _ in range(40):
        st.step_edge()
    assert st.pos == 20 and st.steps_missed == 20
    st.miss_every = 0
    st.jammed = True
    for _ in range(40):
        st.step_edge()
    assert st.pos == 20


def test_driver_homes_then_reaches_target(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.stepper.set_position_um(1300)  # wherever the carriage was left
    rig.tick()
    assert not rig.inp.home and not rig.inp.homed
    rig.out.stepper_enable = True
    rig.out.depth_target_um = 1000
    rig.tick(5)
    assert rig.hw.depth_um == 1300  # never moves toward a target before homing
    rig.home()
    assert abs(rig.hw.depth_um) <= 50
    for target in (500, 1500, 250, 2500, 0):
        rig.go_to(target)
        assert rig.inp.depth_cmd_um == target
        assert abs(rig.hw.depth_um - target) < 13  # one step is 12.5 um
        assert abs(rig.inp.depth_um - target) <= 5  # the depth sensor reads the carriage
    assert rig.inp.home


def test_driver_soft_motion_is_bounded(rig) -> None:  # type: ignore[no-untyped-def]
    rig.home()
    rig.out.depth_target_um = 2500
    last = rig.hw.stepper.pos
    steps = []
    for _ in range(40):
        rig.tick()
        steps.append(rig.hw.stepper.pos - last)
        last = rig.hw.stepper.pos
    vmax = rig.board["stepper"]["max_steps_per_tick"]
    assert steps[0] == 1 and max(steps) == vmax  # accelerates from one step per tick
    assert all(abs(b - a) <= 1 for a, b in itertools.pairwise(steps))  # and brakes
    assert rig.hw.depth_um == 2500


def test_driver_clamps_to_mechanical_limit(rig) -> None:  # type: ignore[no-untyped-def]
    rig.home()
    rig.go_to(9000, max_ticks=200)
    assert rig.inp.depth_cmd_um == rig.board["limits"]["abs_depth_um"]


def test_missed_steps_make_actual_depth_differ(rig) -> None:  # type: ignore[no-untyped-def]
    rig.home()
    rig.hw.inject("missed_steps", every=3)
    rig.go_to(1500)
    tol = rig.board["limits"]["depth_tol_um"]
    assert rig.inp.depth_cmd_um == 1500
    assert rig.inp.depth_cmd_um - rig.inp.depth_um > tol  # the firmware can see it (rule 3)
    rig.hw.clear("missed_steps")
    rig.hw.inject("depth_jam")
    before = rig.hw.depth_um
    rig.go_to(500)
    assert rig.hw.depth_um == before


def test_disable_releases_and_home_seek_gives_up(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.stepper.set_position_um(800)
    rig.hw.inject("depth_jam")
    rig.out.stepper_enable = True
    rig.out.home_seek = True
    rig.tick(200)
    assert not rig.inp.homed and rig.drv.stepper.seek_failed
    rig.out.stepper_enable = False
    rig.tick()
    assert not rig.hw.stepper.enabled
