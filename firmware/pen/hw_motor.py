# Needle motor: PWM drive, shunt current sense, and the cam's hall pulse counter.
# MicroPython (ESP32-S3); also runs on the virtual machine module under CPython.
from machine import ADC, PWM, Pin
from micropython import const

_DUTY_MAX = const(1023)


class Motor:
    def __init__(self, board):
        pins = board["pins"]
        m = board["motor"]
        self._pwm = PWM(Pin(pins["motor_pwm"], Pin.OUT, value=0), freq=m["pwm_freq_hz"], duty_u16=0)
        self._adc = ADC(Pin(pins["motor_isense"]), atten=ADC.ATTN_11DB)
        self._uv_per_ma = int(m["isense_mv_per_ma"] * 1000)
        self._off_uv = int(m["isense_offset_mv"] * 1000)
        self.duty = 0
        self.count = 0
        self._hall = Pin(pins["hall"], Pin.IN)
        # The ESP32 port's Pin.irq takes handler, trigger and wake only: its pin
        # handlers are scheduled, not hard (ports/esp32/machine_pin.c); hard=True
        # would fail at start-up with TypeError.
        self._hall.irq(handler=self._on_hall, trigger=Pin.IRQ_RISING)

    def _on_hall(self, pin):
        # Scheduled IRQ (between bytecodes): keep it short, a small int increment.
        self.count += 1

    def set_duty(self, duty):
        # Clamp to 0..1023; 0 stops the drive at once (no ramp here: the core ramps).
        duty = int(duty)
        if duty <= 0:
            duty = 0
        elif duty > _DUTY_MAX:
            duty = _DUTY_MAX
        if duty != self.duty:
            self.duty = duty
            self._pwm.duty_u16(duty * 65535 // _DUTY_MAX)

    def stop(self):
        self.duty = 0
        self._pwm.duty_u16(0)

    def current_ma(self):
        ma = (self._adc.read_uv() - self._off_uv) // self._uv_per_ma
        return ma if ma > 0 else 0

    def deinit(self):
        self.stop()
        self._hall.irq(handler=None)
