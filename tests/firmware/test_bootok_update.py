"""What pen/bootok.py says of the last update over SMP (INFO's update, the UPDATE
record), across its trial and the power cuts between its two file writes. The
files are a dict here; the twin runs the same code on littlefs
(tests/twin/test_twin_smp.py)."""

from __future__ import annotations

import pytest
from pen import bootok, wire


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    fs: dict[str, str] = {"/active": "a", "/good": "a"}
    monkeypatch.setattr(bootok, "_read", lambda path: fs.get(path, "").strip())
    monkeypatch.setattr(bootok, "_write", fs.__setitem__)
    monkeypatch.setattr(bootok, "_forget_starts", lambda: fs.pop("/bootcount", None))
    return fs


def test_a_trial_reads_on_trial_then_kept_once_the_build_starts_well(files):
    assert bootok.update() == (wire.U_NONE, 0, "", "")
    bootok.set_active("b", "0.2.0", "0.1.0")
    assert bootok.update() == (wire.U_ON_TRIAL, 1, "0.2.0", "0.1.0")
    files["/active"] = "b"
    assert bootok.mark_good()
    assert bootok.update() == (wire.U_KEPT, 1, "0.2.0", "0.1.0")
    assert files["/good"] == "b"
    bootok.set_active("a", "0.3.0", "0.2.0")  # the next trial counts on
    assert bootok.update()[:2] == (wire.U_ON_TRIAL, 2)


def test_a_cut_before_the_switch_is_no_trial(files):
    # /update is written before /active: a cut between them leaves a trial that
    # never began, and the pen says none (it is not on trial)
    files["/update"] = "trial 4 0.2.0 0.1.0"
    assert bootok.update()[:2] == (wire.U_NONE, 4)  # the count goes on from it
    assert bootok.mark_good()  # nothing on trial: the file stays as it was
    assert files["/update"] == "trial 4 0.2.0 0.1.0"


@pytest.mark.parametrize("text", ["", "trial", "trial x 1 2", "kept 1 2", "oops 1 0.2.0 0.1.0",
                                  "kept 1 0.2.0 0.1.0 extra"])
def test_a_damaged_update_file_reads_as_none(files, text):
    files["/update"] = text
    assert bootok.update() == (wire.U_NONE, 0, "", "")


@pytest.mark.parametrize(("text", "code"), [("0.1.0", 0x100), ("1.2.3", 0x010203),
                                            ("2.0.1-rc1", 0x020001), ("300.1.1", 0xFF0101),
                                            ("1.2", 0), ("", 0), ("a.b.c", 0), ("?", 0)])
def test_version_codes(text, code):
    assert bootok.version_code(text) == code
