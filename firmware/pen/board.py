# Board definition: hard limits and identity, loaded from the board JSON
# (hardware/boards/<board>.json, deployed as /board.json). A board may only
# TIGHTEN the built-in absolutes below; a looser value is refused at load.
import json

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

GRID_UM = const(250)  # the depth grid every setting must sit on (rule 2)

# key: (built-in default, bound, direction); "max" = the board may only lower it,
# "min" = the board may only raise it.
_LIMITS = (
    ("abs_depth_um", 2500, 2500, "max"),
    ("ceiling_um", 1500, 2500, "max"),
    ("grid_um", 250, 250, "min"),
    ("min_depth_um", 250, 250, "min"),
    ("depth_tol_um", 150, 150, "max"),
    ("depth_settle_ms", 300, 1000, "max"),
    ("rate_min_sps", 100, 100, "min"),
    ("rate_max_sps", 150, 150, "max"),
    ("rate_nominal_sps", 117, 150, "max"),
    ("battery_reserve_pct", 20, 20, "min"),
    ("session_cap_s", 900, 900, "max"),
    ("session_warn_s", 600, 600, "max"),
    ("tick_ms", 10, 10, "max"),
    ("overcurrent_ma", 1200, 2000, "max"),
    ("overtemp_c10", 450, 500, "max"),
    ("stall_ms", 30, 100, "max"),
    ("wdt_ms", 1000, 2000, "max"),
    # rule 14: a 15-minute session at the top of the stroke window (150/s x 900 s =
    # 135,000) with margin
    ("cartridge_rated_strokes", 150000, 150000, "max"),
    ("cartridge_shelf_life_s", 63072000, 63072000, "max"),
)
STANDALONE_MAX_DEPTH_UM = const(500)
STANDALONE_MAX_S = const(600)
# Auto power-off (pen/idleoff.py): a pen idle this long with nobody around goes to
# deep sleep. Stock MicroPython on the ESP32-S3 never light-sleeps by itself, so
# awake with the radio advertising it draws the board's base_load_ma (40 mA: a
# 500 mAh cell lasts about 12 h); asleep it draws microamps (board "deep_sleep").
# 10 min: what handheld instruments commonly use, the same as the pause window a
# user already knows (wire.PAUSE_WINDOW_S); an idle spell then costs at most
# 40 mA x 600 s = 6.7 mAh. Bounds: not below the 2-min pairing window plus time to
# connect, not above an hour (40 mAh, 8 % of a 500 mAh cell, spent waiting).
IDLE_OFF_S = const(600)
# Rule 6 per patient on a clinic pen (board "use": "clinic"; pen/patients.py): how
# many patients' last sessions it keeps. 64: a pen treating nine patients a day at
# 1 mm or deeper (a 7-day interval each) never fills it; bounded so the counters
# file stays small (about 45 bytes an entry).
PATIENT_SLOTS = const(64)
PATIENT_SLOTS_MIN = const(8)
PATIENT_SLOTS_MAX = const(128)
IDLE_OFF_MIN_S = const(180)
IDLE_OFF_MAX_S = const(3600)


class BoardError(ValueError):
    pass


def _int(d, key, default):
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BoardError("board: %s must be an integer" % key)
    return v


class Board:
    # Attributes: every key of _LIMITS, speed_levels_sps (list), standalone_enabled,
    # standalone_depth_um, standalone_s, model, hw_rev, name, drain_pct_per_ks,
    # nominal_duty, motor_kv_x10, motor_r_mohm, motor_load_ma, idle_off_s, use,
    # patient_slots (0 on a home pen).
    def __init__(self, doc=None):
        doc = doc or {}
        lim = doc.get("limits", doc)
        if not isinstance(lim, dict):
            raise BoardError("board: limits must be an object")
        for key, default, bound, way in _LIMITS:
            v = _int(lim, key, default)
            if v <= 0:
                raise BoardError("board: %s must be positive" % key)
            if way == "max" and v > bound:
                raise BoardError("board: %s=%d loosens the built-in %d" % (key, v, bound))
            if way == "min" and v < bound:
                raise BoardError("board: %s=%d loosens the built-in %d" % (key, v, bound))
            setattr(self, key, v)
        if self.ceiling_um > self.abs_depth_um:
            raise BoardError("board: ceiling_um above abs_depth_um")
        if self.grid_um % GRID_UM:
            raise BoardError("board: grid_um must be a multiple of 250")
        if self.min_depth_um % self.grid_um or self.min_depth_um > self.ceiling_um:
            raise BoardError("board: min_depth_um off the grid or above the ceiling")
        if self.rate_min_sps >= self.rate_max_sps:
            raise BoardError("board: empty stroke-rate window")
        if not self.rate_min_sps <= self.rate_nominal_sps <= self.rate_max_sps:
            raise BoardError("board: rate_nominal_sps outside the window")
        if self.session_warn_s >= self.session_cap_s:
            raise BoardError("board: session_warn_s must be below session_cap_s")
        levels = lim.get("speed_levels_sps", lim.get("speed_levels", [self.rate_nominal_sps]))
        if not isinstance(levels, list) or not 1 <= len(levels) <= 8:
            raise BoardError("board: speed_levels_sps must be a list of 1..8 rates")
        for r in levels:
            if isinstance(r, bool) or not isinstance(r, int):
                raise BoardError("board: speed level must be an integer")
            if r < self.rate_min_sps or r > self.rate_max_sps:
                raise BoardError("board: speed level %d outside the rate window" % r)
        self.speed_levels_sps = levels
        sa = lim.get("standalone", {})
        if not isinstance(sa, dict):
            raise BoardError("board: standalone must be an object")
        self.standalone_enabled = sa.get("enabled", False) is True
        self.standalone_depth_um = _int(sa, "depth_um", STANDALONE_MAX_DEPTH_UM)
        self.standalone_s = _int(sa, "duration_s", STANDALONE_MAX_S)
        if self.standalone_depth_um > STANDALONE_MAX_DEPTH_UM or self.standalone_s > STANDALONE_MAX_S:
            raise BoardError("board: standalone limits loosen 0.5 mm / 10 min")
        if self.standalone_depth_um > self.ceiling_um:
            raise BoardError("board: standalone depth above the ceiling")
        if self.standalone_depth_um % self.grid_um or self.standalone_depth_um < self.min_depth_um:
            raise BoardError("board: standalone depth off the grid")
        if self.standalone_s <= 0:
            raise BoardError("board: standalone duration must be positive")
        self.model = str(doc.get("model", "ScalpPen"))
        self.hw_rev = str(doc.get("revision", doc.get("hw_rev", "")))
        # "production" (scalppen build --production: no bench UART, no REPL), else a
        # development build; reported in INFO
        self.profile = str(doc.get("profile", "development"))
        self.name = str(doc.get("board", ""))
        self.nominal_duty = _int(doc.get("motor", {}), "nominal_duty", 680)
        if not 0 < self.nominal_duty <= 1023:
            raise BoardError("board: motor.nominal_duty out of range")
        # The motor's constants (the stroke-rate cross-check, rules 8 and 14): speed
        # constant in strokes/s per volt x10 and winding resistance in milliohm.
        # Defaults: rev B's motor.
        mot = doc.get("motor", {})
        for k in ("kv_sps_per_v", "r_ohm"):
            if k in mot and (isinstance(mot[k], bool) or not isinstance(mot[k], (int, float))):
                raise BoardError("board: motor.%s must be a number" % k)
        self.motor_kv_x10 = int(mot.get("kv_sps_per_v", 50.0) * 10 + 0.5)
        self.motor_r_mohm = int(mot.get("r_ohm", 1.2) * 1000 + 0.5)
        self.motor_load_ma = _int(mot, "noload_ma", 60) + _int(mot, "contact_ma", 80)  # on skin
        if not 100 <= self.motor_kv_x10 <= 5000 or not 10 <= self.motor_r_mohm <= 20000:
            raise BoardError("board: motor kv_sps_per_v or r_ohm out of range")
        self.drain_pct_per_ks = _drain(doc)
        # "home" (rule 6 per pen) or "clinic" (per patient, by the permit's reference)
        self.use = doc.get("use", "home")
        self.patient_slots = 0
        if self.use == "clinic":
            self.patient_slots = _int(lim, "patient_slots", PATIENT_SLOTS)
            if not PATIENT_SLOTS_MIN <= self.patient_slots <= PATIENT_SLOTS_MAX:
                raise BoardError("board: patient_slots must be %d..%d"
                                 % (PATIENT_SLOTS_MIN, PATIENT_SLOTS_MAX))
            if self.standalone_enabled:
                raise BoardError("board: a clinic pen has no standalone mode (its sessions "
                                 "would name no patient)")
        elif self.use != "home":
            raise BoardError("board: use must be \"home\" or \"clinic\"")
        # The release key (Ed25519 public, hex): signed updates over SMP are checked
        # against it (pen/update.py); none, no updates. Set by `scalppen build
        # --sign` and written with the first flash over USB, never by an update.
        key = doc.get("release_key", "")
        try:
            self.release_key = bytes.fromhex(key) if isinstance(key, str) else b"?"
        except ValueError:
            self.release_key = b"?"
        if self.release_key and len(self.release_key) != 32:
            raise BoardError("board: release_key must be 64 hex digits")
        # A development build may take a signed update older than the one running
        # (`scalppen build --allow-downgrade`, to test a rollback); never a
        # production build. Root board.json: an update cannot turn it on.
        self.allow_downgrade = doc.get("allow_downgrade", False)
        if not isinstance(self.allow_downgrade, bool):
            raise BoardError("board: allow_downgrade must be true or false")
        if self.allow_downgrade and self.profile != "development":
            raise BoardError("board: allow_downgrade is for development builds only")
        self.idle_off_s = _int(lim, "idle_off_s", IDLE_OFF_S)
        if not IDLE_OFF_MIN_S <= self.idle_off_s <= IDLE_OFF_MAX_S:
            raise BoardError("board: idle_off_s must be %d..%d" % (IDLE_OFF_MIN_S, IDLE_OFF_MAX_S))
        self.wire_limits = self.limits_wire()  # INFO's, as the pen keeps it (settings())

    def limits_wire(self):
        # The INFO "limits" sub-record.
        return {
            "abs_depth_um": self.abs_depth_um,
            "ceiling_um": self.ceiling_um,
            "grid_um": self.grid_um,
            "min_depth_um": self.min_depth_um,
            "depth_tol_um": self.depth_tol_um,
            "rate_min_sps": self.rate_min_sps,
            "rate_max_sps": self.rate_max_sps,
            "session_cap_s": self.session_cap_s,
            "session_warn_s": self.session_warn_s,
            "battery_reserve_pct": self.battery_reserve_pct,
            "speed_levels": len(self.speed_levels_sps),
            "standalone_depth_um": self.standalone_depth_um if self.standalone_enabled else 0,
            "standalone_s": self.standalone_s if self.standalone_enabled else 0,
            "patient_slots": self.patient_slots,
        }


def _drain(doc):
    # Battery percent used per 1000 s of needling (rule 12), from the electrical
    # data when present; rounded up; at least 1.
    bat = doc.get("battery", {})
    mot = doc.get("motor", {})
    cap = bat.get("capacity_mah", 0)
    if not cap:
        return 12
    ma = bat.get("base_load_ma", 70) + mot.get("noload_ma", 60) + mot.get("contact_ma", 80)
    ma += bat.get("stepper_ma", 0)
    # percent per ks = ma * 1000 s / 3600 / cap * 100
    return max(1, (ma * 100000 + cap * 3600 - 1) // (cap * 3600))


class Settings:
    # A board as plain data, no methods: what the pen keeps (settings()).
    pass


def settings(doc):
    # -> the board of `doc`, validated, as plain data. The app calls this once at
    # boot, then unloads this module (pen/app.py): its code, loaded from a slot's
    # .mpy into the heap, is needed only then (about 6 KB of the 32-bit pen's heap,
    # bench/firmware).
    b = Board(doc)
    s = Settings()
    d = b.__dict__
    for k in d:
        setattr(s, k, d[k])
    return s


def load(path="/board.json"):
    with open(path) as f:
        return Board(json.load(f))
