"""Put the MicroPython base image on a bare ESP32-S3 through esptool's Python API.

Steps: validate the image file (before any port is opened), detect the chip
(must be an ESP32-S3), load the flasher stub, erase the whole flash, write the
image at the chip's bootloader offset (0x0 on the ESP32-S3), verify it against
the file, hard-reset. esptool's own output is captured (its progress bar is
forwarded to ``progress``); failures become one-line :mod:`.errors` exceptions.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from scalppen.flash.errors import (
    ChipError,
    FlashError,
    LinkError,
    NoSuchPortError,
    PortAccessError,
    PortBusyError,
)
from scalppen.flash.port import check_port_name

EXPECTED_CHIP: Final = "ESP32-S3"
ESP_IMAGE_MAGIC: Final = 0xE9
ESP32S3_IMAGE_CHIP_ID: Final = 9
MAX_IMAGE: Final = 16 * 1024 * 1024
#: ``progress(stage, done, total)``, stage one of "erase", "write", "verify".
ProgressFn = Callable[[str, int, int], None]


class ImageError(FlashError):
    hint = "download the ESP32_GENERIC_S3 .bin from micropython.org/download and pass its path"


@dataclass(frozen=True)
class BaseImageResult:
    chip: str
    image: Path
    size: int
    offset: int


def validate_image(image: str | Path) -> Path:
    """Check the base image before touching the port.

    Raises:
        ImageError: missing, empty, too large, not an ESP image, or for another chip.
    """
    path = Path(image)
    if not path.exists():
        raise ImageError(f"base image {path} does not exist")
    if not path.is_file():
        raise ImageError(f"base image {path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"base image {path} is empty")
    if size > MAX_IMAGE:
        raise ImageError(f"base image {path} is {size} bytes, more than the 16 MiB of flash")
    with path.open("rb") as f:
        head = f.read(16)
    if len(head) < 16 or head[0] != ESP_IMAGE_MAGIC:
        raise ImageError(f"{path} is not an ESP firmware image (no 0xE9 header)")
    chip_id = struct.unpack_from("<H", head, 12)[0]
    if chip_id != ESP32S3_IMAGE_CHIP_ID:
        raise ImageError(f"{path} is built for another chip (image chip id {chip_id}), "
                         "not the ESP32-S3")
    return path


def _make_logger(progress: ProgressFn | None, stage: list[str]) -> Any:
    from esptool.logger import TemplateLogger

    class _Quiet(TemplateLogger):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def print(self, *args: Any, **kwargs: Any) -> None:
            self.lines.append(" ".join(str(a) for a in args))

        def note(self, message: str) -> None:
            self.lines.append(message)

        def warning(self, message: str) -> None:
            self.lines.append(message)

        def error(self, message: str) -> None:
            self.lines.append(message)

        def stage(self, finish: bool = False) -> None:
            pass

        def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "",
                         suffix: str = "", bar_length: int = 30) -> None:
            if progress is not None:
                progress(stage[0], cur_iter, total_iters)

        def set_verbosity(self, verbosity: str) -> None:
            pass

    return _Quiet()


@contextlib.contextmanager
def _esptool_errors(port: str) -> Iterator[None]:
    import serial
    from esptool.util import FatalError

    try:
        yield
    except FlashError:
        raise
    except serial.SerialException as exc:
        text = str(exc)
        if "No such file" in text or ("could not open port" in text and "[Errno 2]" in text):
            raise NoSuchPortError(f"serial port {port} does not exist") from None
        if "exclusively lock" in text or "busy" in text.lower():
            raise PortBusyError(f"serial port {port} is in use by another program") from None
        if "Permission denied" in text:
            raise PortAccessError(f"no permission to open serial port {port}") from None
        raise LinkError(f"serial error on {port}: {' '.join(text.split())}") from None
    except FatalError as exc:
        text = " ".join(str(exc).split())
        if "Failed to connect" in text or "No serial data received" in text:
            raise ChipError(f"no ESP chip answered in bootloader mode on {port}") from None
        raise LinkError(f"esptool failed: {text}") from None
    except OSError as exc:
        raise LinkError(f"serial error on {port}: {exc.strerror or exc}") from None


def flash_base_image(
    port: str,
    image: str | Path,
    *,
    baud: int = 460800,
    erase: bool = True,
    verify: bool = True,
    progress: ProgressFn | None = None,
    connect_attempts: int = 3,
) -> BaseImageResult:
    """Erase the ESP32-S3 on ``port`` and write the MicroPython ``image`` at offset 0x0.

    Args:
        port: serial port of the board in bootloader mode.
        image: MicroPython firmware ``.bin`` for ESP32-S3 (bootloader + partitions + app).
        baud: baud rate after the stub is loaded.
        erase: erase the whole flash first (removes the old filesystem too).
        verify: read the flash back and compare with the image.
        progress: ``progress(stage, done, total)`` during erase/write/verify.
        connect_attempts: esptool connection attempts.

    Raises:
        ImageError, NoSuchPortError, PortBusyError, PortAccessError, ChipError, LinkError.
    """
    path = validate_image(image)
    if baud <= 0:
        raise ImageError(f"baud rate must be positive, got {baud}")
    check_port_name(port)

    from esp_pylib.logger import EspLog
    from esptool import cmds
    from esptool.logger import log

    stage = ["connect"]
    previous = EspLog.instance
    log.set_logger(_make_logger(progress, stage))
    esp = None
    sink = io.StringIO()
    try:
        with _esptool_errors(port), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            esp = cmds.detect_chip(port, connect_attempts=connect_attempts)
            chip = str(esp.CHIP_NAME)
            if chip != EXPECTED_CHIP:
                raise ChipError(f"the chip on {port} is an {chip}, the pen needs an "
                                f"{EXPECTED_CHIP}")
            esp = cmds.run_stub(esp)
            if baud != esp.ESP_ROM_BAUD:
                esp.change_baud(baud)
            cmds.attach_flash(esp)
            offset = int(getattr(esp, "BOOTLOADER_FLASH_OFFSET", 0))
            if erase:
                stage[0] = "erase"
                if progress is not None:
                    progress("erase", 0, 1)
                cmds.erase_flash(esp)
                if progress is not None:
                    progress("erase", 1, 1)
            stage[0] = "write"
            cmds.write_flash(esp, [(offset, str(path))])
            if verify:
                stage[0] = "verify"
                cmds.verify_flash(esp, [(offset, str(path))])
            cmds.reset_chip(esp, "hard-reset")
        return BaseImageResult(chip, path, path.stat().st_size, offset)
    finally:
        if esp is not None:
            with contextlib.suppress(Exception):
                esp._port.close()
        EspLog.instance = previous
