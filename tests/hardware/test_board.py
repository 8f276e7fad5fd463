"""Board files: the shipped revisions validate; a bad file gives one clear line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from scalppen_hardware.board import BoardError, list_boards, load_board, main, validate


def test_shipped_boards_load() -> None:
    ids = list_boards()
    assert "pen-s3-revb" in ids and len(ids) >= 2
    for bid in ids:
        b = load_board(bid)
        assert b.id == bid
        assert b.limits["abs_depth_um"] == 2500


def test_default_board_limits(board) -> None:  # type: ignore[no-untyped-def]
    lim = board.limits
    assert (lim["ceiling_um"], lim["grid_um"], lim["min_depth_um"], lim["depth_tol_um"]) == (
        1500,
        250,
        250,
        150,
    )
    assert (lim["rate_min_sps"], lim["rate_nominal_sps"], lim["rate_max_sps"]) == (100, 117, 150)
    assert lim["speed_levels_sps"] == [100, 117, 133, 150]
    assert (lim["session_warn_s"], lim["session_cap_s"], lim["tick_ms"]) == (600, 900, 10)
    assert lim["standalone"] == {"enabled": False, "depth_um": 500, "duration_s": 600}
    assert lim["cartridge_rated_strokes"] == 150000  # rule 14
    assert lim["cartridge_shelf_life_s"] == 2 * 365 * 86400
    assert board["pins"]["motor_pwm"] == board.pins["motor_pwm"]
    assert json.loads(board.to_json()) == board.data


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["pins"].pop("hall"), "pins.hall"),
        (lambda d: d["pins"].__setitem__("button", d["pins"]["hall"]), "pins.button"),
        (lambda d: d["pins"].__setitem__("ntc", 40), "pins.ntc"),
        (lambda d: d["limits"].__setitem__("ceiling_um", 3000), "limits.ceiling_um"),
        (lambda d: d["limits"].__setitem__("rate_max_sps", 180), "limits.rate_nominal_sps"),
        (
            lambda d: d["limits"].__setitem__("speed_levels_sps", [90, 117]),
            "limits.speed_levels_sps",
        ),
        (lambda d: d["limits"].__setitem__("depth_tol_um", 300), "limits.depth_tol_um"),
        (
            lambda d: d["limits"]["standalone"].__setitem__("depth_um", 1000),
            "limits.standalone.depth_um",
        ),
        (lambda d: d["motor"].__setitem__("kv_sps_per_v", "fast"), "motor.kv_sps_per_v"),
        (lambda d: d["stepper"].__setitem__("steps_per_mm", 30), "stepper.steps_per_mm"),
        (lambda d: d.__setitem__("format", 9), "format"),
    ],
)
def test_bad_board_one_line_error(tmp_path: Path, board, mutate, field) -> None:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(board.data)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(BoardError) as exc:
        load_board(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)) and f": {field}: " in msg


def test_unreadable_and_unknown(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(BoardError, match="not valid JSON"):
        load_board(p)
    with pytest.raises(BoardError, match=r"no such board file.*pen-s3-revb"):
        load_board("pen-nope")
    with pytest.raises(BoardError, match="must be a JSON object"):
        validate([1, 2])


def test_cli(tmp_path: Path, capsys, board) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 0
    assert "ok: pen-s3-revb" in capsys.readouterr().out
    data = copy.deepcopy(board.data)
    del data["limits"]["tick_ms"]
    assert main([str(_write(tmp_path, data))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "limits.tick_ms" in err
