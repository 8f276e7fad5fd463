"""The twin: the pen's firmware bundle in a real MicroPython process.

Three kinds of code, each in one place:

- ``mpy/``: the MicroPython-side stand-ins for the ESP32's C modules (``machine``,
  ``bluetooth``, ``onewire``, ``time``) and the launcher that plays the ESP32 port's
  start-up. MicroPython code, but not firmware.
- :mod:`.bridge` and :mod:`.wire`: the bridge between that process and CPython.
- the CPython models themselves stay where the in-process pen uses them:
  :mod:`scalppen_hardware.upy` and :mod:`scalppen_hardware.virtual_pen_hw`.

:class:`.pen.TwinPen` puts it together; nothing here is imported by ``firmware/``.
"""
