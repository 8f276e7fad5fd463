"""Firmware updates over Bluetooth through the command line (issue 16), as a
manufacturer and a clinic would run them against `scalppen sim`: a release key,
a signed build, a pen flashed with it, then `scalppen update --test --confirm`;
an image signed by another key is refused in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.sim_proc import SCALPPEN, Sim, cli, cli_env, pair_for

ROOT = Path(__file__).resolve().parents[2]


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALPPEN, *args], capture_output=True, text=True,
                          env=cli_env(home), cwd=ROOT, timeout=120)


def test_a_signed_build_goes_to_the_pen_over_bluetooth_and_another_key_is_refused(
        tmp_path: Path) -> None:
    key = tmp_path / "release.pem"
    made = _run(tmp_path, "release", "keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    assert (key.stat().st_mode & 0o077) == 0  # owner-only
    built = _run(tmp_path, "build", "--sign", str(key), "--out", str(tmp_path / "fw"))
    assert built.returncode == 0, built.stderr
    image = tmp_path / "fw.spimg"
    assert "signed update image" in built.stdout and image.is_file()
    other_key = tmp_path / "other.pem"
    assert _run(tmp_path, "release", "keygen", "--out", str(other_key)).returncode == 0
    assert _run(tmp_path, "build", "--sign", str(other_key), "--out",
                str(tmp_path / "fw-other")).returncode == 0

    sim = Sim(tmp_path, "--bundle", str(tmp_path / "fw"), speed="20")
    try:
        pair_for(sim, tmp_path)
        update = cli(tmp_path, sim.port, "update", str(image), "--test", "--confirm",
                     timeout=180)
        assert update.returncode == 0, update.stderr + update.stdout
        assert "the pen runs 0.1.0, confirmed" in update.stdout
        assert (tmp_path / "flash" / "active").read_text() == "b"  # the other slot runs
        assert (tmp_path / "flash" / "good").read_text() == "b"

        wrong = cli(tmp_path, sim.port, "update", str(tmp_path / "fw-other.spimg"))
        assert wrong.returncode == 3, wrong.stderr + wrong.stdout
        assert "refused: upload refused: the image is signed with a key this pen does not " \
               "trust" in wrong.stdout
        assert len(wrong.stdout.strip().splitlines()) == 2  # the image line, the refusal

        status = cli(tmp_path, sim.port, "status")
        assert status.returncode == 0 and "firmware 0.1.0" in status.stdout
        assert "0.1.0 started well and stays" in status.stdout  # INFO's last update
    finally:
        sim.stop()
