"""Error paths: each is a typed error with one line and a hint; the CLI never shows a traceback."""

import os
import struct
import threading

import pytest
import serial
import typer
from typer.testing import CliRunner

from scalppen.cli.flash import register
from scalppen.flash.baseimage import ImageError, flash_base_image, validate_image
from scalppen.flash.deploy import deploy_bundle
from scalppen.flash.errors import (
    ChipError,
    NoSuchPortError,
    NotMicroPythonError,
    PortBusyError,
)
from tests.flash.conftest import make_bundle


class GarbagePty:
    """A pty whose other end answers everything with noise (not MicroPython)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        import tty

        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import select

        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    os.read(self.master, 1024)
                    os.write(self.master, b"\x00\xffAT+OK?\r\nlogin: ")
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._t.join(1)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def garbage():
    g = GarbagePty()
    yield g
    g.close()


def test_no_such_port(tmp_path):
    bundle, _ = make_bundle(tmp_path, "v1")
    with pytest.raises(NoSuchPortError, match="/dev/does-not-exist does not exist") as e:
        deploy_bundle(bundle, "/dev/does-not-exist")
    assert e.value.hint


def test_device_not_running_micropython(tmp_path, garbage):
    bundle, _ = make_bundle(tmp_path, "v1")
    with pytest.raises(NotMicroPythonError, match="does not answer as MicroPython") as e:
        deploy_bundle(bundle, garbage.port, timeout=1)
    assert "--base-image" in e.value.hint


def test_port_busy(tmp_path, board):
    bundle, _ = make_bundle(tmp_path, "v1")
    other = serial.Serial(board.port, exclusive=True)
    try:
        with pytest.raises(PortBusyError, match="in use"):
            deploy_bundle(bundle, board.port)
    finally:
        other.close()


def _image(path, chip_id=9):
    path.write_bytes(bytes([0xE9, 3, 2, 0x4F]) + b"\0" * 8 + struct.pack("<H", chip_id)
                     + b"\0" * 200)
    return path


def test_base_image_validation(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        validate_image(tmp_path / "none.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        validate_image(tmp_path / "empty.bin")
    (tmp_path / "text.bin").write_bytes(b"hello world, not firmware")
    with pytest.raises(ImageError, match="not an ESP firmware image"):
        validate_image(tmp_path / "text.bin")
    with pytest.raises(ImageError, match="another chip"):
        validate_image(_image(tmp_path / "c3.bin", chip_id=5))
    assert validate_image(_image(tmp_path / "s3.bin")) == tmp_path / "s3.bin"


def test_base_image_bad_port(tmp_path):
    img = _image(tmp_path / "s3.bin")
    with pytest.raises(NoSuchPortError):
        flash_base_image("/dev/does-not-exist", img)
    with pytest.raises(ImageError):  # the image is checked before the port
        flash_base_image("/dev/does-not-exist", tmp_path / "none.bin")


def test_base_image_no_chip_answers(tmp_path, garbage):
    img = _image(tmp_path / "s3.bin")
    with pytest.raises(ChipError, match="no ESP chip answered"):
        flash_base_image(garbage.port, img, connect_attempts=1)


# ---- command line ---------------------------------------------------------------------
def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop", hidden=True)
    def _noop() -> None:  # two commands so Typer keeps subcommand names
        pass

    return app


def _run(*args):
    result = CliRunner().invoke(_app(), list(args))
    text = result.output
    assert "Traceback" not in text
    return result.exit_code, text


def test_cli_errors_are_one_line(tmp_path, garbage):
    bundle, _ = make_bundle(tmp_path, "v1")
    code, out = _run("flash", "--port", "/dev/does-not-exist", "--bundle", str(bundle))
    assert code != 0 and out.strip().count("\n") == 0
    assert out.startswith("error: serial port /dev/does-not-exist does not exist")
    code, out = _run("flash", "--port", garbage.port, "--bundle", str(tmp_path / "nope"))
    assert code != 0 and "no firmware bundle" in out and "scalppen build" in out
    code, out = _run("flash", "--port", "/dev/does-not-exist", "--base-image",
                     str(tmp_path / "none.bin"))
    assert code != 0 and "base image" in out and out.strip().count("\n") == 0
    code, out = _run("flash", "--port", garbage.port, "--bundle", str(bundle))
    assert code != 0 and "does not answer as MicroPython" in out


def test_cli_build_and_flash(tmp_path, board):
    from tests.flash.conftest import BOARD, make_tree

    tree = make_tree(tmp_path / "src")
    out_dir = tmp_path / "bundle"
    code, out = _run("build", "--firmware", str(tree), "--out", str(out_dir), "--board",
                     str(BOARD))
    assert code == 0 and "built firmware 1.0.0" in out, out
    code, out = _run("flash", "--port", board.port, "--bundle", str(out_dir), "--dry-run")
    assert code == 0 and "dry run" in out and "upload pen/app.mpy" in out, out
    code, out = _run("flash", "--port", board.port, "--bundle", str(out_dir), "--no-reset")
    assert code == 0 and "flashed firmware 1.0.0" in out and "verified" in out, out
    code, out = _run("flash", "--port", board.port, "--bundle", str(out_dir), "--no-reset")
    assert code == 0 and "nothing to do" in out, out
