"""A clinic pen through the command line (issue 15 item 3): `scalppen sim --clinic`
runs the firmware built for a clinic; one laptop treats Ada, then Bob right after
on the same pen, and Ada's early return is refused (the host by the database, and
the pen by its own per-patient table: tests/twin/test_twin_clinic_pen.py)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.sim_proc import Sim, cli, pair_for


def test_a_clinic_pen_treats_a_second_patient_at_once_and_holds_the_first(
        tmp_path: Path) -> None:
    sim = Sim(tmp_path, "--clinic")
    try:
        pair_for(sim, tmp_path, "Ada")
        assert cli(tmp_path, sim.port, "profile", "add", "Bob", "--birth-year",
                   "1979").returncode == 0
        assert cli(tmp_path, sim.port, "screen", "--profile", "Bob",
                   "--all-no").returncode == 0
        ada = cli(tmp_path, sim.port, "session", "start", "--profile", "Ada", "--depth", "0.5",
                  "--minutes", "1", "--sterilised", timeout=120)
        assert ada.returncode == 0, ada.stderr + ada.stdout
        assert "session ended" in ada.stdout
        assert sim.control("cartridge new").startswith("ok:")
        bob = cli(tmp_path, sim.port, "session", "start", "--profile", "Bob", "--depth", "0.5",
                  "--minutes", "1", "--sterilised", timeout=120)
        assert bob.returncode == 0, bob.stderr + bob.stdout  # on a home pen: rule 6, refused
        assert "session ended" in bob.stdout
        assert sim.control("cartridge new").startswith("ok:")
        again = cli(tmp_path, sim.port, "session", "start", "--profile", "Ada", "--depth",
                    "0.5", "--minutes", "1", "--sterilised")
        assert again.returncode == 3, again.stderr + again.stdout
        assert "rule 6" in again.stdout
    finally:
        sim.stop()
