# The ESP32 port's `esp32` module inside the twin (MicroPython code, not
# firmware): the deep-sleep wake sources. The choices are kept by the model in the
# CPython process (scalppen_hardware/upy/esp32.py, after ports/esp32/modesp32.c),
# which also refuses pins that are not RTC GPIOs (ValueError "invalid pin").
import _twin


def _gpio(p):
    return p._gpio if hasattr(p, "_gpio") else int(p)


def wake_on_ext0(pin=None, level=None):
    _twin.call(-1, "wake_on_ext0", [None if pin is None else _gpio(pin), level])


def wake_on_ext1(pins=None, level=None):
    _twin.call(-1, "wake_on_ext1", [None if pins is None else [_gpio(p) for p in pins], level])
