# Who may pair with the pen, and when (policy; pen/ble.py is the mechanism).
#
# - A pen without a bond is pairable: a new pen, or one whose bonds were cleared.
# - A pen with a bond pairs only inside the window opened on the pen itself (the
#   button held PAIR_HOLD_MS, core.Pen.open_pairing), so a stranger in radio range
#   can neither add a bond nor replace the host's.
# - Failed passkeys back off: after FREE_FAILURES failures in a row each further
#   failure doubles the wait before the pen shows a passkey again, from
#   BACKOFF_FIRST_MS up to BACKOFF_MAX_MS. The count lives in RAM for the whole
#   boot, not per connection, so reconnecting does not reset it; only a pairing
#   that succeeds does (a reboot, which needs the pen in hand, also clears it).
#   A passkey is 6 random digits, new for every attempt: at the cap an attacker
#   gets 144 guesses a day, about 1 in 7,000 per day.

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

FREE_FAILURES = const(3)  # a user may mistype twice and try again at once
BACKOFF_FIRST_MS = const(5000)
BACKOFF_MAX_MS = const(600000)  # 10 min


def backoff_ms(failures):
    # The wait after `failures` failed passkeys in a row.
    if failures < FREE_FAILURES:
        return 0
    wait = BACKOFF_FIRST_MS
    for _ in range(failures - FREE_FAILURES):
        wait *= 2
        if wait >= BACKOFF_MAX_MS:
            return BACKOFF_MAX_MS
    return wait


class PairingGate:
    # clock(): milliseconds, never going back (the app gives the pen's own time).
    def __init__(self, clock):
        self._clock = clock
        self.failures = 0
        self._until = 0
        self.refused = 0  # pairing attempts refused (window closed or backing off)

    def wait_ms(self):
        left = self._until - self._clock()
        return left if left > 0 else 0

    def allows(self, bonded, window_open):
        # May a passkey be shown now? Counts a refusal when not.
        if self.wait_ms() or (bonded and not window_open):
            self.refused += 1
            return False
        return True

    def failed(self):
        self.failures += 1
        self._until = self._clock() + backoff_ms(self.failures)

    def succeeded(self):
        self.failures = 0
        self._until = 0
