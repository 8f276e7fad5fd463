# Start and run interlocks as pure functions: each returns an error code from
# wire.E_* (0 = allowed). No state, no I/O.
from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

DAY_S = const(86400)


def interval_s(depth_um):
    # Rule 6: minimum time between sessions by the last session's depth.
    if depth_um >= 1000:
        return 7 * DAY_S
    if depth_um >= 500:
        return 3 * DAY_S
    return DAY_S


def lockout_until(last_end, last_depth, now=0, lock_s=0):
    # Pen-clock time the interval lockout lifts (0 = none). Two answers, the later
    # wins: the clock's (last end + interval) and the pen's own running count of
    # the interval still to serve (lock_s, from now). A clock moved forward cannot
    # shorten the second; one moved back lengthens the first.
    lift = last_end + interval_s(last_depth) if last_end else 0
    if lock_s > 0 and now and now + lock_s > lift:
        lift = now + lock_s
    return lift


def check_interval(now, last_end, last_depth, lock_s=0):
    # -> (code, lift time). A clock set before the last session counts as locked.
    if not last_end and lock_s <= 0:
        return 0, 0
    lift = lockout_until(last_end, last_depth, now, lock_s)
    if now == 0:
        return wire.E_PERMIT_CLOCK_UNSET, lift
    if now < lift:
        return wire.E_INTERVAL_LOCKOUT, lift
    return 0, 0


def check_depth(um, board, permit_max):
    # Rules 1 and 2 (and the permit's limit, rule 20).
    if um > board.ceiling_um or um > board.abs_depth_um:
        return wire.E_DEPTH_ABOVE_CEILING
    if um < board.min_depth_um or um % board.grid_um:
        return wire.E_DEPTH_OFF_GRID
    if um > permit_max:
        return wire.E_DEPTH_ABOVE_PERMIT
    return 0


def battery_needed(board, remaining_s):
    # Rule 12: the reserve plus what the remaining needling time will use.
    return board.battery_reserve_pct + (board.drain_pct_per_ks * remaining_s + 999) // 1000


def strokes_needed(board, remaining_s):
    # Rule 14: the strokes the remaining needling time can take at the top of the
    # stroke window (the motor may run anywhere in it).
    return board.rate_max_sps * remaining_s


def minutes_left(board, strokes_left):
    # Whole minutes of needling a cartridge budget covers at the top of the window.
    if strokes_left <= 0:
        return 0
    return strokes_left // (board.rate_max_sps * 60)


def check_start(board, inp, now, homed, depth_um, permit_max, remaining_s, cart_code,
                last_end, last_depth, lock_s=0, cart_left=-1):
    # -> (code, detail) for a START (rules 1-3, 5, 6, 10-15, 20). detail is the
    # lift time for INTERVAL_LOCKOUT, the needed percent for BATTERY_LOW, the
    # minutes the cartridge has left for CARTRIDGE_WORN. cart_left: the
    # cartridge's strokes left (-1 = not checked: a session already open).
    if inp.charging:
        return wire.E_CHARGING, 0
    if not homed:
        return wire.E_NOT_HOMED, 0
    if now == 0:
        return wire.E_PERMIT_CLOCK_UNSET, 0
    code, lift = check_interval(now, last_end, last_depth, lock_s)
    if code:
        return code, lift
    if inp.cartridge is None:
        return wire.E_NO_CARTRIDGE, 0
    if cart_code:
        return cart_code, 0
    if remaining_s <= 0:
        return wire.E_SESSION_CAP, 0
    if cart_left >= 0 and cart_left < strokes_needed(board, remaining_s):
        return wire.E_CARTRIDGE_WORN, minutes_left(board, cart_left)
    if not inp.battery_ok:
        return wire.E_BATTERY_UNKNOWN, 0  # rule 12 cannot be judged on a stale reading
    need = battery_needed(board, remaining_s)
    if inp.battery_pct < need:
        return wire.E_BATTERY_LOW, need
    if getattr(inp, "brownout", False):
        return wire.E_BATTERY_LOW, need
    if not inp.contact:
        return wire.E_NO_CONTACT, 0
    code = check_depth(depth_um, board, permit_max)
    if code:
        return code, 0
    return 0, 0


def check_run(board, inp):
    # Conditions that stop a running session in the same tick (rule 11, a pulled
    # cartridge, the gauge's low-voltage alert, a gauge that stopped answering:
    # rule 12), as a fault code; 0 = keep running. Motor faults
    # (rule 9) are pen/motorctl.py's; contact and link are handled as pauses.
    if inp.charging:
        return wire.E_FAULT_CHARGING
    if inp.cartridge is None:
        return wire.E_FAULT_CARTRIDGE_PULLED
    if getattr(inp, "brownout", False):
        return wire.E_FAULT_BROWNOUT
    if not inp.battery_ok:
        return wire.E_FAULT_GAUGE  # rule 12: the charge is no longer known
    return 0
