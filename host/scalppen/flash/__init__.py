"""Building the firmware bundle and putting it on the pen over USB.

- :mod:`.build`: compile ``firmware/`` with mpy-cross into a bundle with a manifest.
- :mod:`.rawrepl`: MicroPython's raw REPL (and raw-paste) over a serial port.
- :mod:`.devicefs`: file operations on the pen, built on the raw REPL.
- :mod:`.deploy`: two-slot deploy with verification, incremental upload, rollback.
- :mod:`.baseimage`: the MicroPython base image through esptool.
- :mod:`.errors`: the typed errors, each a one-line message with a hint.
"""
