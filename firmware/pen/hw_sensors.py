# Slow and simple sensors: NTC temperature, skin contact, charger detect, the
# button (debounced), and the MAX17048-like fuel gauge on I2C.
import math

from machine import ADC, I2C, Pin
from micropython import const

_REG_VCELL = const(0x02)
_REG_SOC = const(0x04)
_REG_VALRT = const(0x14)
_REG_STATUS = const(0x1A)
_ST_VL = const(0x04)  # high byte of STATUS: voltage-low alert
_ST_RI = const(0x01)  # high byte of STATUS: reset indicator
_T25_INV = 1.0 / 298.15
# Rule 12 rests on the gauge: a poll that cannot read it, or reads what no 1S
# Li-ion cell shows, makes the charge unknown (gauge_ok False) until a good poll.
# A transfer is tried twice in the poll (one NACK is a glitch; two, a gauge gone).
_GAUGE_TRIES = const(2)
_VCELL_MIN_MV = const(2500)  # below: a bus held low (reads 0) or a dead cell
_VCELL_MAX_MV = const(4500)  # above: a bus held high (0xFFFF reads 5119 mV)
_SOC_MAX_PCT = const(110)  # the MAX17048 may read a little over 100 % after a charge
# The low-voltage alert is armed this far above the MCU's brown-out, so a cell
# that sags under load stops the session before the MCU resets (0 % of the cell's
# curve is 3.3 V, 200 mV above the 3.1 V brown-out).
_ALERT_MARGIN_MV = const(200)


class Sensors:
    def __init__(self, board, i2c):
        pins = board["pins"]
        act = board["active_levels"]
        ntc = board["ntc"]
        bat = board["battery"]
        self._ntc = ADC(Pin(pins["ntc"]), atten=ADC.ATTN_11DB)
        self._r25 = ntc["r25_ohm"]
        self._beta = ntc["beta"]
        self._rfix = ntc["r_fixed_ohm"]
        self._vref_uv = int(ntc["vref_mv"] * 1000)
        self._contact = Pin(pins["contact"], Pin.IN)
        self._contact_on = act["contact"]
        self._charge = Pin(pins["charge_detect"], Pin.IN, Pin.PULL_UP)
        self._charge_on = act["charge_detect"]
        self._button = Pin(pins["button"], Pin.IN, Pin.PULL_UP)
        self._button_on = act["button"]
        self._btn_state = False
        self._btn_same = 0
        self._i2c = i2c
        self._gauge = bat["fuel_gauge_addr"]
        self.gauge_errors = 0  # failed transfers since boot (a count for the bench)
        self.gauge_ok = False  # the last poll read a plausible cell
        self.battery_pct = 0  # last good reading; meaningless while not gauge_ok
        self.battery_mv = 0
        self.brownout = False  # the gauge's low-voltage alert (latched for this boot)
        self._init_gauge(bat["brownout_mv"])

    def _init_gauge(self, brownout_mv):
        try:
            st = self._i2c.readfrom_mem(self._gauge, _REG_STATUS, 2)
            self.brownout = bool(st[0] & _ST_VL)
            # Clear VL and RI, then arm the voltage-low alert above the brown-out level.
            self._i2c.writeto_mem(self._gauge, _REG_STATUS, bytes((st[0] & ~(_ST_VL | _ST_RI) & 0xFF, st[1])))
            alert = (brownout_mv + _ALERT_MARGIN_MV + 19) // 20
            self._i2c.writeto_mem(self._gauge, _REG_VALRT, bytes((alert, 0xFF)))
        except OSError:
            self.gauge_errors += 1
        self.poll_gauge()

    def _read_gauge(self):
        # -> (vcell, soc, status) register bytes, or None: the gauge did not answer.
        for _ in range(_GAUGE_TRIES):
            try:
                v = self._i2c.readfrom_mem(self._gauge, _REG_VCELL, 2)
                s = self._i2c.readfrom_mem(self._gauge, _REG_SOC, 2)
                st = self._i2c.readfrom_mem(self._gauge, _REG_STATUS, 2)
                return v, s, st
            except OSError:
                self.gauge_errors += 1
        return None

    def poll_gauge(self):
        # -> gauge_ok. Also watches the low-voltage alert (a sag while running).
        r = self._read_gauge()
        if r is None:
            self.gauge_ok = False
            return False
        v, s, st = r
        mv = ((v[0] << 8) | v[1]) * 5 // 64  # 78.125 uV/LSB
        pct = s[0] + (1 if s[1] >= 128 else 0)
        if mv < _VCELL_MIN_MV or mv > _VCELL_MAX_MV or pct > _SOC_MAX_PCT:
            self.gauge_ok = False
            return False
        self.battery_mv = mv
        self.battery_pct = pct if pct < 100 else 100
        if st[0] & _ST_VL:
            self.brownout = True
        self.gauge_ok = True
        return True

    def temp_c10(self):
        uv = self._ntc.read_uv()
        if uv <= 0 or uv >= self._vref_uv:
            return -990 if uv >= self._vref_uv else 1990  # open / shorted NTC: out of range
        r = self._rfix * uv / (self._vref_uv - uv)
        t = 1.0 / (_T25_INV + math.log(r / self._r25) / self._beta) - 273.15
        return int(t * 10 + (0.5 if t >= 0 else -0.5))

    def contact(self):
        return self._contact.value() == self._contact_on

    def charging(self):
        return self._charge.value() == self._charge_on

    def button(self):
        # Two equal samples in a row (one tick apart) change the debounced state.
        raw = self._button.value() == self._button_on
        if raw == self._btn_state:
            self._btn_same = 0
        else:
            self._btn_same += 1
            if self._btn_same >= 2:
                self._btn_state = raw
                self._btn_same = 0
        return self._btn_state
