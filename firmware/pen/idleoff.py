# Auto power-off: when an idle pen may go to deep sleep (the policy; pen/app.py
# does the sleeping).
#
#   idle = IdleOff(board.idle_off_s)
#   reason = why_awake(pen, inp, connected, activity)   # "" = nothing keeps it awake
#   if idle.due(now_ms, reason, inp.cartridge is not None): ...save_for_sleep(pen)...
#
# Awake, an ESP32-S3 running stock MicroPython with its radio advertising draws
# the board's base_load_ma (no automatic light sleep in stock builds): a cell
# lasts hours. Asleep it draws microamps and boots again on its button, as after
# any reset (bonds, permit key, log and counters are on flash). So an idle pen
# sleeps, but never while anything could be lost or anyone is using it: an open
# or paused session (the pause window must run its course: rule 21 and
# core.PAUSE_WINDOW_MS), a permit armed, a central connected, the pairing window
# open, the charger in, the button held, the carriage moving or not yet homed, a
# fault shown or the pen locked. Requests on the radio or the bench and a
# cartridge put in or taken out count as use: the countdown starts again.
from pen import wire

_QUIET_STATES = (wire.S_IDLE, wire.S_FINISHED)


def why_awake(pen, inp, connected, activity):
    # The first reason the pen must stay awake now; "" when none.
    if activity:
        return "activity"
    if pen.session_open or pen.resume_left_ms() > 0:
        return "session"
    if pen.state not in _QUIET_STATES:
        return "state"
    if pen.permit is not None:
        return "armed"
    if connected:
        return "connected"
    if pen.pairing_open():
        return "pairing"
    if inp.charging:
        return "charging"
    if inp.button:
        return "button"
    if inp.depth_moving or not pen.depth.homed or inp.cartridge_busy:
        return "moving"
    return ""


class IdleOff:
    def __init__(self, idle_off_s):
        self.after_ms = idle_off_s * 1000
        self._t0 = None  # when the pen was last seen busy (now_ms)
        self._cart = None  # whether a cartridge was in, last tick

    def due(self, now_ms, reason, cart_in):
        # True once nothing has kept the pen awake for after_ms.
        if cart_in != self._cart:
            if self._cart is not None:
                reason = reason or "cartridge"
            self._cart = cart_in
        if reason or self._t0 is None:
            self._t0 = now_ms
            return False
        return now_ms - self._t0 >= self.after_ms

    def left_ms(self, now_ms):
        # How long until the pen sleeps if it stays idle (for views and tests).
        if self._t0 is None:
            return self.after_ms
        left = self.after_ms - (now_ms - self._t0)
        return left if left > 0 else 0


def save_for_sleep(pen):
    # What must survive the sleep is on flash already (log records are written as
    # they happen; counters at each change), but for the interval still to serve
    # (counters "lock"), which the pen counts down in RAM and stores every
    # core.LOCK_SAVE_MS. Store it now with the clock it was counted to (lock_at):
    # the RTC counts on in deep sleep, and the next boot takes the time asleep off
    # it in the RTC's own frame (core._credit_time_off), no more. Without a clock
    # (lock_at 0) nothing is credited: the interval only grows by the sleep.
    # -> True when stored.
    c = pen.store.c
    if c.get("lock", 0) > 0:
        c["lock_at"] = pen.clock()
    try:
        pen.store.commit()
        return True
    except OSError:
        pen.store_ok = False
        return False
