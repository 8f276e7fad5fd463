"""Motor model: settles near its target rate, loads with skin contact, stalls."""

from __future__ import annotations

import pytest

from scalppen_hardware.models.motor import MotorModel

V_NOM = 3.7


def run(m: MotorModel, seconds: float, v: float = V_NOM, dt: float = 0.01) -> int:
    strokes = 0
    for _ in range(round(seconds / dt)):
        strokes += m.step(dt, v)
    return strokes


def test_nominal_duty_gives_about_117_strokes(board) -> None:  # type: ignore[no-untyped-def]
    m = MotorModel(board["motor"])
    m.duty = board["motor"]["nominal_duty"] / 1023
    run(m, 1.0)
    free = m.speed
    m.contact = True
    run(m, 1.0)
    loaded = m.speed
    lim = board["limits"]
    assert lim["rate_min_sps"] < loaded < free < lim["rate_max_sps"]
    assert abs((free + loaded) / 2 - lim["rate_nominal_sps"]) < 5
    assert loaded < free - 2  # skin contact loads the motor
    strokes = run(m, 10.0)
    assert abs(strokes - loaded * 10) <= 2  # one hall pulse per stroke


def test_first_order_response(board) -> None:  # type: ignore[no-untyped-def]
    m = MotorModel(board["motor"])
    m.duty = 0.3  # low enough that the current limit never acts
    target = m.steady_speed(V_NOM)
    tau = board["motor"]["tau_ms"] / 1000
    run(m, tau, dt=0.001)
    assert m.speed == pytest.approx(target * 0.632, rel=0.03)
    run(m, 10 * tau, dt=0.001)
    assert m.speed == pytest.approx(target, rel=1e-3)


def test_contact_raises_current(board) -> None:  # type: ignore[no-untyped-def]
    m = MotorModel(board["motor"])
    m.duty = 0.65
    run(m, 1.0)
    free_ma = m.current * 1000
    m.contact = True
    run(m, 1.0)
    assert m.current * 1000 == pytest.approx(free_ma + board["motor"]["contact_ma"], rel=0.02)


def test_inrush_is_current_limited(board) -> None:  # type: ignore[no-untyped-def]
    m = MotorModel(board["motor"])
    m.duty = 1.0
    peak = 0.0
    for _ in range(100):
        m.step(0.001, 4.2)
        peak = max(peak, m.current)
    assert peak == pytest.approx(board["motor"]["max_ma"] / 1000)


def test_stall_stops_pulses_and_draws_stall_current(board) -> None:  # type: ignore[no-untyped-def]
    m = MotorModel(board["motor"])
    m.duty = board["motor"]["nominal_duty"] / 1023
    run(m, 1.0)
    assert m.current * 1000 < 300
    m.stalled = True
    assert run(m, 1.0) == 0
    assert m.speed == 0
    assert m.current * 1000 == pytest.approx(board["motor"]["stall_ma"], rel=0.05)
    assert m.current * 1000 > board["limits"]["overcurrent_ma"]
    m.stalled = False
    run(m, 1.0)
    assert m.speed > 100


def test_duty_zero_brakes(board) -> None:  # type: ignore[no-untyped-def]
    m = MotorModel(board["motor"])
    m.duty = 0.66
    run(m, 1.0)
    m.duty = 0.0
    m.step(0.01, V_NOM)
    assert m.current == 0.0
    run(m, 1.0)
    assert m.speed == 0.0
    assert run(m, 1.0) == 0
