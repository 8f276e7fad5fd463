"""A real Secret Service keyring for tests: a private D-Bus session bus and
gnome-keyring-daemon on it, unlocked, in a HOME of their own. Commands run with
``env()`` use it through the ``keyring`` package as on a desktop."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def keyring_session(tmp: Path) -> Iterator[dict[str, str]]:
    """Start the bus and the keyring; yield the environment that reaches them."""
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        pytest.fail("no gnome-keyring or dbus here: make test installs them "
                    "(tools/system_packages.sh)")
    home = tmp / "desktop-home"
    home.mkdir(mode=0o700)
    out = subprocess.run(["dbus-daemon", "--session", "--fork", "--print-address=1",
                          "--print-pid=1"], capture_output=True, text=True, check=True,
                         timeout=30).stdout.split()
    address, bus_pid = out[0], int(out[1])
    env = {k: v for k, v in os.environ.items() if k != "SCALPPEN_KEYRING"}
    env.update(HOME=str(home), DBUS_SESSION_BUS_ADDRESS=address, XDG_RUNTIME_DIR=str(home))
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock",
                               "--components=secrets"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert daemon.stdin is not None
    daemon.stdin.write(b"test-login-password\n")
    daemon.stdin.close()
    try:
        probe = "import keyring; keyring.set_password('probe', 'p', 'x'); print(keyring.get_keyring())"
        for _ in range(50):
            ready = subprocess.run([_python(), "-c", probe], env=env, capture_output=True,
                                   text=True, timeout=30)
            if ready.returncode == 0 and "SecretService" in ready.stdout:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the test keyring did not start: {ready.stderr.strip()[-300:]}")
        yield env
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        os.kill(bus_pid, 15)


def _python() -> str:
    import sys

    return sys.executable
