"""The per-pen lock: one command at a time, never stale after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalppen.cli.common import UsageError
from scalppen.cli.penlock import lock_path, pen_lock


def test_a_second_holder_is_told_who_has_the_pen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALPPEN_HOME", str(tmp_path))
    with pen_lock("SP3-ABCDEF"):
        with pytest.raises(UsageError, match=rf"busy: .*\(pid {os.getpid()}\)"), \
                pen_lock("SP3-ABCDEF"):
            pass
        with pen_lock("SP3-OTHER1"):  # another pen is another lock
            pass
    with pen_lock("SP3-ABCDEF"):  # released with its holder
        pass
    assert oct(os.stat(lock_path("SP3-ABCDEF")).st_mode & 0o777) == "0o600"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALPPEN_HOME", str(tmp_path))
    code = ("import sys, time; from scalppen.cli.penlock import pen_lock\n"
            "with pen_lock('SP3-ABCDEF'):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, SCALPPEN_HOME=str(tmp_path)))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=rf"pid {holder.pid}"), pen_lock("SP3-ABCDEF"):
            pass
    finally:
        holder.kill()
        holder.wait(10)
    with pen_lock("SP3-ABCDEF"):  # the system released it with the process
        pass
