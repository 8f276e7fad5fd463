"""Board definitions (``hardware/boards/*.json``): load and validate for host-side use.

A board file describes one hardware revision of the pen as data: pins, sensor
scaling, physical constants and the firmware's hard limits (under ``limits``).
See ``hardware/README.md`` for every field.

Run ``python -m scalppen_hardware.board FILE...`` to check files; a bad file gives
one line naming the file, the field and what is wrong.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOARDS_DIR = Path(__file__).resolve().parents[1] / "boards"
DEFAULT_BOARD = "pen-s3-revb"
FORMAT = 1

PIN_NAMES = (
    "motor_pwm", "motor_isense", "hall", "stepper_step", "stepper_dir", "stepper_enable",
    "home", "depth_sense", "ntc", "contact", "charge_detect", "button",
    "i2c_sda", "i2c_scl", "onewire",
)  # fmt: skip
ADC_PINS = ("motor_isense", "depth_sense", "ntc")
ACTIVE_LEVELS = ("contact", "charge_detect", "home", "button", "stepper_enable")

NUM = (int, float)
# section -> {key: type}
SCHEMA: dict[str, dict[str, Any]] = {
    "adc": {"atten_db": int, "full_scale_mv": NUM, "bits": int},
    "i2c": {"id": int, "freq_hz": int},
    "motor": {
        "pwm_freq_hz": int, "nominal_duty": int, "kv_sps_per_v": NUM, "r_ohm": NUM,
        "tau_ms": NUM, "noload_ma": NUM, "contact_ma": NUM, "max_ma": NUM, "stall_ma": NUM,
        "isense_mv_per_ma": NUM, "isense_offset_mv": NUM,
    },
    "thermal": {"ambient_c": NUM, "rth_c_per_w": NUM, "tau_s": NUM},
    "ntc": {"r25_ohm": NUM, "beta": NUM, "r_fixed_ohm": NUM, "vref_mv": NUM, "poll_ms": int},
    "stepper": {
        "steps_per_mm": int, "dir_deeper": int, "max_steps_per_tick": int,
        "seek_steps_per_tick": int, "hard_stop_um": int, "travel_um": int,
    },
    "depth_sensor": {"zero_mv": NUM, "mv_per_mm": NUM},
    "battery": {
        "capacity_mah": NUM, "nominal_mv": NUM, "r_int_mohm": NUM, "base_load_ma": NUM,
        "stepper_ma": NUM, "charge_ma": NUM, "brownout_mv": NUM, "ocv_mv": list,
        "fuel_gauge": str, "fuel_gauge_addr": int, "poll_ms": int,
    },
    "display": {"controller": str, "addr": int, "cols": int, "rows": int, "row_addr": list},
    "cartridge": {
        "bus": str, "chip": str, "family": int, "poll_ms": int, "compute_ms": int,
        "write_ms": int, "auth_key": str,
    },
    "limits": {
        "abs_depth_um": int, "ceiling_um": int, "grid_um": int, "min_depth_um": int,
        "depth_tol_um": int, "depth_settle_ms": int, "rate_min_sps": int, "rate_max_sps": int,
        "rate_nominal_sps": int, "speed_levels_sps": list, "battery_reserve_pct": int,
        "session_cap_s": int, "session_warn_s": int, "tick_ms": int, "overcurrent_ma": int,
        "overtemp_c10": int, "stall_ms": int, "wdt_ms": int, "standalone": dict,
        "cartridge_rated_strokes": int, "cartridge_shelf_life_s": int,
    },
}  # fmt: skip


class BoardError(ValueError):
    """A board file that cannot be used; ``str()`` is one line: file, field, problem."""


@dataclass(frozen=True)
class Board(Mapping[str, Any]):
    """A validated board definition. Reads like the JSON dict (``board["pins"]``)."""

    data: dict[str, Any]
    path: Path | None = None

    @property
    def id(self) -> str:
        return str(self.data["board"])

    @property
    def revision(self) -> str:
        return str(self.data["revision"])

    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def pins(self) -> dict[str, int]:
        return dict(self.data["pins"])

    @property
    def limits(self) -> dict[str, Any]:
        return dict(self.data["limits"])

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def to_json(self) -> str:
        """The file the pen reads as ``/board.json``."""
        return json.dumps(self.data, indent=2, sort_keys=False) + "\n"


def _fail(where: str, field: str, problem: str) -> BoardError:
    return BoardError(f"{where}: {field}: {problem}")


def _typename(t: Any) -> str:
    return "number" if t is NUM else t.__name__


def validate(data: Any, where: str = "board") -> None:
    """Raise :class:`BoardError` (one line) on the first problem found."""
    if not isinstance(data, dict):
        raise _fail(where, "(top)", "must be a JSON object")
    for key, typ in (("board", str), ("revision", str), ("model", str), ("format", int)):
        if not isinstance(data.get(key), typ):
            raise _fail(where, key, f"missing or not a {_typename(typ)}")
    if data["format"] != FORMAT:
        raise _fail(where, "format", f"is {data['format']}, this toolkit reads format {FORMAT}")
    pins = data.get("pins")
    if not isinstance(pins, dict):
        raise _fail(where, "pins", "missing or not an object")
    for name in PIN_NAMES:
        v = pins.get(name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 48:
            raise _fail(where, f"pins.{name}", "missing or not a GPIO number 0..48")
    used: dict[int, str] = {}
    for name, v in pins.items():
        if v in used:
            raise _fail(where, f"pins.{name}", f"GPIO {v} already used by pins.{used[v]}")
        used[v] = name
    for name in ADC_PINS:
        if not 1 <= pins[name] <= 10:
            raise _fail(where, f"pins.{name}", "must be an ADC1 pin (GPIO 1..10 on the ESP32-S3)")
    levels = data.get("active_levels")
    if not isinstance(levels, dict):
        raise _fail(where, "active_levels", "missing or not an object")
    for name in ACTIVE_LEVELS:
        if levels.get(name) not in (0, 1):
            raise _fail(where, f"active_levels.{name}", "missing or not 0/1")
    for section, fields in SCHEMA.items():
        sec = data.get(section)
        if not isinstance(sec, dict):
            raise _fail(where, section, "missing or not an object")
        for key, typ in fields.items():
            v = sec.get(key)
            if v is None or isinstance(v, bool) or not isinstance(v, typ):
                raise _fail(where, f"{section}.{key}", f"missing or not a {_typename(typ)}")
    _check_limits(data, where)
    _check_physics(data, where)


def _check_limits(data: dict[str, Any], where: str) -> None:
    lim = data["limits"]

    def need(cond: bool, field: str, problem: str) -> None:
        if not cond:
            raise _fail(where, f"limits.{field}", problem)

    need(0 < lim["abs_depth_um"] <= 2500, "abs_depth_um", "must be 1..2500 (2.50 mm mechanical)")
    need(0 < lim["ceiling_um"] <= lim["abs_depth_um"], "ceiling_um", "must be 1..abs_depth_um")
    need(lim["grid_um"] > 0, "grid_um", "must be > 0")
    need(lim["min_depth_um"] % lim["grid_um"] == 0, "min_depth_um", "must be on the grid")
    need(lim["ceiling_um"] % lim["grid_um"] == 0, "ceiling_um", "must be on the grid")
    need(0 < lim["depth_tol_um"] <= 150, "depth_tol_um", "must be 1..150 (rule 3)")
    need(
        100 <= lim["rate_min_sps"] <= lim["rate_nominal_sps"] <= lim["rate_max_sps"] <= 150,
        "rate_nominal_sps",
        "need 100 <= rate_min_sps <= rate_nominal_sps <= rate_max_sps <= 150 (rule 8)",
    )
    levels = lim["speed_levels_sps"]
    need(
        bool(levels) and all(lim["rate_min_sps"] <= s <= lim["rate_max_sps"] for s in levels),
        "speed_levels_sps",
        "every level must lie within rate_min_sps..rate_max_sps",
    )
    need(0 < lim["session_warn_s"] < lim["session_cap_s"] <= 900, "session_cap_s",
         "need 0 < session_warn_s < session_cap_s <= 900 (rule 5)")  # fmt: skip
    need(0 <= lim["battery_reserve_pct"] <= 100, "battery_reserve_pct", "must be 0..100")
    need(0 < lim["tick_ms"] <= 10, "tick_ms", "must be 1..10 (rule 9: stop within 10 ms)")
    need(lim["wdt_ms"] > lim["tick_ms"], "wdt_ms", "must exceed tick_ms")
    sa = lim["standalone"]
    need(isinstance(sa.get("enabled"), bool), "standalone.enabled", "missing or not true/false")
    need(isinstance(sa.get("depth_um"), int) and 0 < sa["depth_um"] <= min(500, lim["ceiling_um"]),
         "standalone.depth_um", "must be 1..500 and within ceiling_um")  # fmt: skip
    need(isinstance(sa.get("duration_s"), int) and 0 < sa["duration_s"] <= 600,
         "standalone.duration_s", "must be 1..600")  # fmt: skip


def _check_physics(data: dict[str, Any], where: str) -> None:
    duty = data["motor"]["nominal_duty"]
    if not 0 < duty <= 1023:
        raise _fail(where, "motor.nominal_duty", "must be 1..1023")
    st = data["stepper"]
    if st["travel_um"] < data["limits"]["abs_depth_um"]:
        raise _fail(where, "stepper.travel_um", "must reach limits.abs_depth_um")
    if st["hard_stop_um"] > 0:
        raise _fail(where, "stepper.hard_stop_um", "must be <= 0 (at or above the home switch)")
    if st["dir_deeper"] not in (0, 1):
        raise _fail(where, "stepper.dir_deeper", "must be 0 or 1")
    # 0.05 mm resolution: one resolution step is a whole number of motor steps.
    if (st["steps_per_mm"] * 50) % 1000:
        raise _fail(where, "stepper.steps_per_mm", "0.05 mm must be a whole number of steps")
    ocv = data["battery"]["ocv_mv"]
    if len(ocv) < 2 or any(not isinstance(p, list) or len(p) != 2 for p in ocv):
        raise _fail(where, "battery.ocv_mv", "must be a list of [soc_pct, mv] pairs")
    disp = data["display"]
    if len(disp["row_addr"]) != disp["rows"]:
        raise _fail(where, "display.row_addr", "needs one address per row")


def list_boards() -> list[str]:
    """Ids of the boards shipped in ``hardware/boards``."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def load_board(name_or_path: str | Path = DEFAULT_BOARD) -> Board:
    """Load and validate a board by id (``pen-s3-revb``) or by file path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = BOARDS_DIR / f"{name_or_path}.json"
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(list_boards()) or "none"
        raise BoardError(f"{where}: no such board file (shipped boards: {known})") from None
    except OSError as exc:
        raise BoardError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BoardError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    validate(data, where)
    return Board(data, path)


def board_from_dict(data: dict[str, Any], where: str = "board") -> Board:
    validate(data, where)
    return Board(data, None)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    status = 0
    for arg in args or [str(BOARDS_DIR / f"{b}.json") for b in list_boards()]:
        try:
            b = load_board(arg)
        except BoardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        else:
            print(f"ok: {b.id} rev {b.revision} ({b.model})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
