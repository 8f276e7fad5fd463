"""The closed loop against the hardware team's physical motor model: soft start keeps
the inrush under the overcurrent limit; every speed level settles in the window."""

import pytest
from pen.motorctl import MotorCtl
from rig import board_doc, make_board

from scalppen_hardware.models.motor import MotorModel


class In:
    def __init__(self):
        self.hall_count = 0
        self.motor_ma = 0
        self.temp_c10 = 300
        self.battery_mv = 3900


@pytest.mark.parametrize("level", [0, 1, 2, 3])
@pytest.mark.parametrize("contact", [False, True])
@pytest.mark.parametrize("vbat", [4.15, 3.9, 3.62])  # a full cell to the 20 % reserve, loaded
def test_levels_settle_in_window_on_the_motor_model(level, contact, vbat):
    b = make_board()
    m = MotorModel(board_doc()["motor"])
    m.contact = contact
    ctl = MotorCtl(b)
    assert ctl.set_level(level) == 0
    inp = In()
    inp.battery_mv = int(vbat * 1000)
    ctl.start(0, 0)
    peak = 0
    rates = []
    for k in range(1, 400):
        duty, code = ctl.update(k * 10, inp)
        assert code == 0, (k, code)
        m.duty = duty / 1023
        inp.hall_count += m.step(0.01, vbat)
        inp.motor_ma = int(m.current * 1000)
        peak = max(peak, inp.motor_ma)
        if k > 200:
            rates.append(ctl.rate_x10)
    target = b.speed_levels_sps[level] * 10
    assert peak < b.overcurrent_ma
    assert abs(sum(rates) / len(rates) - target) < 30
    assert all(b.rate_min_sps * 10 - 40 <= x <= b.rate_max_sps * 10 + 40 for x in rates)


def test_jam_on_the_motor_model_stops_in_one_tick():
    b = make_board()
    m = MotorModel(board_doc()["motor"])
    ctl = MotorCtl(b)
    inp = In()
    ctl.start(0, 0)
    for k in range(1, 150):
        duty, code = ctl.update(k * 10, inp)
        m.duty = duty / 1023
        inp.hall_count += m.step(0.01, 3.9)
        inp.motor_ma = int(m.current * 1000)
    m.stalled = True
    m.step(0.01, 3.9)
    inp.motor_ma = int(m.current * 1000)
    duty, code = ctl.update(150 * 10, inp)
    assert duty == 0 and code != 0
