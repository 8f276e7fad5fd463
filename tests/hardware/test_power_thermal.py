"""Battery, fuel gauge, charger and heat: models and the sensor drivers."""

from __future__ import annotations

import pytest

from scalppen_hardware.models.battery import BatteryModel
from scalppen_hardware.models.fuel_gauge import FuelGauge
from scalppen_hardware.models.ntc import NtcModel
from scalppen_hardware.models.thermal import ThermalModel


def test_battery_discharge_and_charge(board) -> None:  # type: ignore[no-untyped-def]
    bat = BatteryModel(board["battery"], soc_pct=50)
    cap = board["battery"]["capacity_mah"]
    bat.step(3600.0, cap / 10)  # one hour at C/10
    assert bat.soc == pytest.approx(40.0)
    assert bat.terminal_mv < bat.ocv_mv(40.0)  # sags under load
    bat.plugged = True
    bat.step(600.0, 200.0)  # the charger carries the load
    assert bat.soc > 40.0
    assert bat.terminal_mv > bat.ocv_mv(bat.soc)
    for _ in range(100):
        bat.step(600.0, 200.0)
    assert bat.soc == 100.0 and bat.charge_current_ma() == 0


def test_ocv_curve(board) -> None:  # type: ignore[no-untyped-def]
    bat = BatteryModel(board["battery"])
    assert bat.ocv_mv(0) == 3300 and bat.ocv_mv(100) == 4200
    assert bat.ocv_mv(45) == pytest.approx(3790)
    vals = [bat.ocv_mv(s) for s in range(0, 101, 5)]
    assert vals == sorted(vals)


def test_fuel_gauge_registers(board) -> None:  # type: ignore[no-untyped-def]
    bat = BatteryModel(board["battery"], soc_pct=62.5)
    g = FuelGauge(bat)
    g.i2c_write(b"\x02")
    raw = g.i2c_read(4)  # VCELL then SOC (auto-increment)
    assert ((raw[0] << 8) | raw[1]) * 78.125 / 1000 == pytest.approx(bat.terminal_mv, abs=0.1)
    assert raw[2] == 62 and raw[3] == 128
    g.i2c_write(b"\x08")
    assert g.i2c_read(2) == b"\x00\x12"
    g.i2c_write(bytes([0x14, 3600 // 20, 0xFF]))  # VALRT min 3.6 V
    bat.sag_mv = 500
    bat.step(0.1, 0)
    g.check_alerts()
    g.i2c_write(b"\x1a")
    assert g.i2c_read(2)[0] & 0x04  # VL latched
    g.i2c_write(b"\x1a\x00\x00")
    g.i2c_write(b"\x1a")
    assert g.i2c_read(2)[0] == 0


def test_ntc_and_thermal(board) -> None:  # type: ignore[no-untyped-def]
    ntc = NtcModel(board["ntc"])
    assert ntc.mv(25.0) == pytest.approx(board["ntc"]["vref_mv"] / 2)
    assert ntc.mv(45.0) < ntc.mv(25.0)
    for t in (0.0, 25.0, 44.5, 80.0):
        assert ntc.temp_from_mv(ntc.mv(t)) == pytest.approx(t)
    th = ThermalModel(board["thermal"])
    th.step(board["thermal"]["tau_s"], 0.5)
    rise = 0.5 * board["thermal"]["rth_c_per_w"]
    assert th.temp_c - th.ambient == pytest.approx(rise * 0.632, rel=0.01)
    th.step(100 * board["thermal"]["tau_s"], 0.0)
    assert th.temp_c == pytest.approx(th.ambient)


def test_drivers_read_power_and_temperature(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.set_battery(55)
    rig.tick(60)
    inp = rig.inp
    assert inp.battery_pct in (54, 55)
    assert abs(inp.battery_mv - rig.hw.battery.terminal_mv) < 2
    assert inp.temp_c10 == pytest.approx(250, abs=2)
    assert not inp.charging
    rig.hw.plug_charger(True)
    rig.tick()
    assert inp.charging
    rig.hw.plug_charger(False)
    rig.hw.set_ambient(31.0)
    rig.tick(11)
    assert inp.temp_c10 == pytest.approx(310, abs=2)


def test_ntc_rises_under_motor_load(rig) -> None:  # type: ignore[no-untyped-def]
    rig.hw.set_contact(True)
    rig.tick(11)
    t0 = rig.inp.temp_c10
    rig.out.motor_duty = rig.board["motor"]["nominal_duty"]
    rig.tick(30_000)  # 5 minutes
    assert rig.inp.temp_c10 - t0 > 40  # more than 4 degC warmer
    assert rig.inp.temp_c10 < rig.board["limits"]["overtemp_c10"]
    rig.hw.inject("overtemp")
    rig.tick(11)
    assert rig.inp.temp_c10 > rig.board["limits"]["overtemp_c10"]
    rig.hw.clear("overtemp")
    rig.out.motor_duty = 0
    rig.tick(100)
    assert rig.inp.temp_c10 > rig.board["limits"]["overtemp_c10"] - 50  # cools slowly


def test_button_is_debounced(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick()
    rig.hw.set_button(True)
    rig.drv.read(rig.inp)
    assert not rig.inp.button  # one sample is a bounce
    rig.tick()
    assert rig.inp.button
    rig.hw.set_button(False)
    rig.tick(2)
    assert not rig.inp.button
    rig.hw.press_button(100)
    assert rig.hw.body.button is False
