"""Typed errors of building and flashing; each is one line plus what to do."""

from __future__ import annotations


class FlashError(Exception):
    """Base of every error raised by :mod:`scalppen.flash`.

    ``str(err)`` says what went wrong in one line; ``err.hint`` says what to do.
    """

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class BuildError(FlashError):
    hint = "fix the firmware source and run `scalppen build` again"


class BundleError(FlashError):
    hint = "run `scalppen build` to make a fresh bundle"


class NoSuchPortError(FlashError):
    hint = "check the cable and the port name, e.g. ls /dev/ttyACM* /dev/ttyUSB*"


class PortBusyError(FlashError):
    hint = "close the other program using the port (mpremote, a serial monitor) and retry"


class PortAccessError(FlashError):
    hint = "add your user to the dialout group (sudo usermod -aG dialout $USER) and log in again"


class NotMicroPythonError(FlashError):
    hint = "flash the MicroPython base image first: scalppen flash --port PORT --base-image FILE"


class LinkError(FlashError):
    """The serial link failed or timed out in the middle of an exchange."""

    hint = "check the USB cable and run the same command again; the pen keeps running its old build"


class DeviceExecError(FlashError):
    """Code sent to the pen raised an exception there."""

    hint = "run the same command again; if it persists, report it with SCALPPEN_DEBUG=1"

    def __init__(self, message: str, traceback: str = "", hint: str = "") -> None:
        super().__init__(message, hint)
        self.traceback = traceback


class FlashFullError(FlashError):
    hint = "free space on the pen (mpremote fs rm) or erase it with --base-image"


class IncompatibleDeviceError(FlashError):
    hint = "flash the matching MicroPython base image with --base-image, or rebuild"


class VerificationError(FlashError):
    hint = "check the USB cable and run the same command again; the pen keeps running its old build"


class ChipError(FlashError):
    hint = "connect an ESP32-S3 board held in its bootloader (hold BOOT, tap RESET)"
