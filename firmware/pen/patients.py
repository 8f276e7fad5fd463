# Rule 6 per patient on a clinic pen (board "use": "clinic"): a pen shared by a
# clinic keeps each patient's last session and the interval still to serve, by
# the opaque 8-byte reference the permit carries (no personal data), so a second
# patient is treated right after the first while the first's early return is
# refused. A home pen keeps rule 6 per pen (pen/core.py) and has no table.
#
# The table lives in the counters (store.c["pats"]): hex reference ->
# [end, depth_um, lock]: the session's end (pen clock), its depth, and the
# interval still to serve in seconds, counted down by the pen's running time like
# the per-pen count (core._count_lock, the shared reference "lock_at"), so a clock
# moved forward shortens nothing (rule 24).
#
# Bounded: board.patient_slots entries (64 unless the board says otherwise,
# 8..128). A patient gets an entry when their session opens (with the session,
# in one commit), so a power cut mid-session still locks them. When every entry
# is taken, those whose interval is over are dropped (they restrict nothing); if
# none is over, the START is refused (PATIENTS_FULL, detail: when the first
# entry's interval lifts). An interval in force is never evicted.
from pen import safety, wire


class Patients:
    def __init__(self, c, slots):
        self.c = c
        self.slots = slots
        if not isinstance(c.get("pats"), dict):
            c["pats"] = {}

    def entry(self, ref):
        return self.c["pats"].get(ref)

    def lift(self, ref, now):
        # Pen-clock time the patient's interval lifts (0 = none).
        e = self.entry(ref)
        if e is None:
            return 0
        return safety.lockout_until(e[0], e[1], now, e[2])

    def room(self, ref, now):
        # -> (code, detail): 0 when the patient has, or can get, an entry;
        # PATIENTS_FULL with the earliest lift when every entry is in force.
        pats = self.c["pats"]
        if ref in pats or len(pats) < self.slots:
            return 0, 0
        first = 0
        for k in list(pats):
            lift = self.lift(k, now)
            if now and lift <= now:
                del pats[k]  # its interval is over: it restricts nothing
            elif not first or lift < first:
                first = lift
        if len(pats) < self.slots:
            return 0, 0
        return wire.E_PATIENTS_FULL, first

    def open(self, ref):
        # The patient's session opens: their entry exists from now on (room() said
        # there is room; the caller commits it with the session).
        pats = self.c["pats"]
        if ref not in pats:
            pats[ref] = [0, 0, 0]

    def close(self, ref, end, depth):
        # The session ended at `end` (pen clock) at `depth`: the patient's interval.
        e = self.c["pats"].get(ref)
        if e is None:
            e = self.c["pats"][ref] = [0, 0, 0]
        e[0] = end
        e[1] = depth
        s = safety.interval_s(depth)
        if s > e[2]:
            e[2] = s

    def counting(self):
        # True while any patient has an interval to serve.
        for e in self.c["pats"].values():
            if e[2] > 0:
                return True
        return False

    def count_down(self, sec):
        # `sec` seconds of the pen's running time (or of the RTC while asleep) served.
        for e in self.c["pats"].values():
            if e[2] > 0:
                e[2] = e[2] - sec if e[2] > sec else 0
