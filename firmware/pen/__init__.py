# The pen's firmware package (MicroPython). See docs/architecture.md for the module map.
