# ruff: noqa: F821  (MicroPython's tools/manifestfile.py defines these names)
# Freeze manifest of the pen's firmware, in MicroPython's manifest.py format, for a
# custom MicroPython build with the application frozen into the image and the REPL
# off (mpconfigboard.h beside this file). Prepared, not built here: docs/security.md.
#
#   make -C ports/esp32 BOARD_DIR=<this directory>
#
# Every module of firmware/pen is listed by name; tests/release/test_freeze_manifest.py
# keeps the list equal to the tree. boot.py and main.py stay files on the pen's
# filesystem (the port runs them from there, after its frozen _boot.py mounts it);
# main.py imports the frozen package.
include("$(PORT_DIR)/boards/manifest.py")

package(
    "pen",
    files=[
        "__init__.py",
        "app.py",
        "ble.py",
        "board.py",
        "bootok.py",
        "cbor.py",
        "cartauth.py",
        "core.py",
        "crc.py",
        "depthctl.py",
        "drivers.py",
        "ed25519.py",
        "fsio.py",
        "handler.py",
        "hw_cartridge.py",
        "hw_display.py",
        "hw_motor.py",
        "hw_sensors.py",
        "hw_stepper.py",
        "idleoff.py",
        "images.py",
        "io.py",
        "link.py",
        "mgmt.py",
        "motorctl.py",
        "pairing.py",
        "patients.py",
        "permit.py",
        "safety.py",
        "smp.py",
        "store.py",
        "update.py",
        "version.py",
        "wear.py",
        "wire.py",
    ],
    base_path="$(BOARD_DIR)/../../../firmware",
    opt=3,
)
