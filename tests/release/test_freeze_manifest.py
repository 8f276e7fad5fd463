"""The freeze manifest of the pen's custom MicroPython build (issue 13 item 4): it
lists every firmware module by name, and nothing that is not one.

The manifest is executed as MicroPython's ``tools/manifestfile.py`` executes one
(``ManifestFile.execute``: ``exec`` with ``include``, ``package``, ``module``,
``require``, ``freeze``... as globals), with those functions recording what they
are given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "hardware" / "micropython-board" / "SCALPPEN_S3"
PORT_MANIFEST = "$(PORT_DIR)/boards/manifest.py"


def _execute(path: Path) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"include": [], "package": [], "module": [], "other": []}

    def include(p: str, **kw: Any) -> None:
        seen["include"].append(p)

    def package(name: str, files: list[str] | None = None, base_path: str = ".",
                opt: int | None = None) -> None:
        seen["package"].append((name, files, base_path, opt))

    def module(name: str, base_path: str = ".", opt: int | None = None) -> None:
        seen["module"].append((name, base_path))

    def other(*args: Any, **kw: Any) -> None:
        seen["other"].append(args)

    exec(compile(path.read_text(), str(path), "exec"),
         {"include": include, "package": package, "module": module, "require": other,
          "freeze": other, "metadata": other, "options": other, "add_library": other})
    return seen


def _resolve(base_path: str) -> Path:
    return Path(base_path.replace("$(BOARD_DIR)", str(BOARD))).resolve()


def test_every_firmware_module_is_frozen_by_name() -> None:
    seen = _execute(BOARD / "manifest.py")
    assert seen["include"] == [PORT_MANIFEST]  # the port's own modules (_boot.py...)
    [(name, files, base_path, opt)] = seen["package"]
    assert name == "pen" and opt == 3
    tree = _resolve(base_path) / "pen"
    assert tree == ROOT / "firmware" / "pen"
    assert files is not None, "list the modules by name: a new one must be added on purpose"
    assert sorted(files) == sorted(p.name for p in tree.glob("*.py"))
    assert len(set(files)) == len(files)


def test_the_board_has_no_repl_and_the_security_settings() -> None:
    header = (BOARD / "mpconfigboard.h").read_text()
    for flag in ("MICROPY_HW_ENABLE_UART_REPL", "MICROPY_HW_ENABLE_USBDEV",
                 "MICROPY_HW_ESP_USB_SERIAL_JTAG"):
        assert f"#define {flag}" in header and f"{flag.ljust(35)} (0)" in header, flag
    cmake = (BOARD / "mpconfigboard.cmake").read_text()
    assert "MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py" in cmake
    security = (BOARD / "sdkconfig.security").read_text()
    for line in ("CONFIG_SECURE_BOOT_V2_ENABLED=y", "CONFIG_SECURE_FLASH_ENC_ENABLED=y",
                 "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y",
                 "CONFIG_SECURE_BOOT_ALLOW_JTAG=n"):
        assert line in security.splitlines(), line
