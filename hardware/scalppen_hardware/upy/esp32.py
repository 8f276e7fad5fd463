"""MicroPython's ``esp32`` module (ESP32-S3 build): the deep-sleep wake sources.

As ``ports/esp32/modesp32.c`` has them: ``wake_on_ext0(pin, level)`` and
``wake_on_ext1(pins, level)`` only record the choice (``machine_rtc_config``, in
RAM: every boot starts with none); ``machine.deepsleep()`` arms what was chosen
(``ports/esp32/modmachine.c`` ``machine_sleep_helper``). Only RTC GPIOs can wake
the chip: GPIO 0..21 on the S3 (``RTC_VALID_EXT_PINS``, ``ports/esp32/modesp32.h``);
any other pin is ``ValueError("invalid pin")``. EXT1's ``level`` False wakes when
all its pins are low, True when any is high (``ESP_EXT1_WAKEUP_ALL_LOW`` /
``ANY_HIGH``).
"""

from __future__ import annotations

from typing import Any

_hw: Any = None

#: RTC_VALID_EXT_PINS of the ESP32-S3 (ports/esp32/modesp32.h): GPIO 0..21.
RTC_EXT_PINS = frozenset(range(22))


def _attach(hw: Any) -> None:
    global _hw
    _hw = hw


def _get_hw() -> Any:
    if _hw is None:
        raise RuntimeError("no virtual hardware attached (esp32._attach)")
    return _hw


def _gpio(p: Any) -> int:
    gpio = p.id() if hasattr(p, "id") else int(p)
    if gpio not in RTC_EXT_PINS:
        raise ValueError("invalid pin")
    return gpio


def wake_on_ext0(pin: Any = None, level: bool | None = None) -> None:
    hw = _get_hw()
    cfg = hw.wake_cfg
    if level is None:
        level = cfg["ext0_level"]
    if pin is None:
        cfg["ext0"] = None
    else:
        cfg["ext0"] = _gpio(pin)
    cfg["ext0_level"] = bool(level)


def wake_on_ext1(pins: Any = None, level: bool | None = None) -> None:
    hw = _get_hw()
    cfg = hw.wake_cfg
    if level is None:
        level = cfg["ext1_level"]
    if pins is not None:
        cfg["ext1"] = tuple(sorted({_gpio(p) for p in pins}))  # all checked before any is kept
    cfg["ext1_level"] = bool(level)
