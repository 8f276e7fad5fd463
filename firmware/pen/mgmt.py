# The pen's management service: SMP requests (pen/smp.py) the app queued from the
# radio (at most one request's worth: pen/app.py), answered in the tick, and the reset
# one may ask for.
# Imported at the first SMP write (pen/app.py): a pen nobody manages keeps its heap.
import machine

from pen import images, smp, wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

RESET_MS = const(200)  # an SMP reset waits this long for its answer to go out


class Mgmt:
    def __init__(self, app):
        self.app = app
        self.rx = smp.Reassembler()
        b = app.board
        self.env = images.Env(app.root, b.release_key, self._busy, self._feed,
                              b.allow_downgrade and b.profile == "development")
        self.reset_at = 0  # when an SMP reset takes the pen down (pen.now_ms)

    def _busy(self):
        # No update while a session is armed, running or paused.
        p = self.app.pen
        return p.session_open or p.state in (wire.S_ARMED, wire.S_RUNNING, wire.S_PAUSED)

    def _feed(self):
        # During the one long computation (an update's signature check, with no
        # session possible): the watchdog must not take it for a hang.
        wdt = self.app.drivers.wdt
        if wdt is not None and not self.app.pen.broken:
            wdt.feed()

    def link_reset(self):
        self.rx.reset()

    def serve(self):
        app = self.app
        if self.reset_at and app.pen.now_ms >= self.reset_at:
            # its answer had time to go out; needles are home (refused while a
            # session is armed or open): a new boot, as machine.reset() is
            app.drivers.safe_stop()
            app.ble.shutdown()
            machine.reset()
        served = False
        for _ in range(len(app.smp_q)):  # what came since the last tick (one request)
            if not app.smp_q:
                break  # the link went (pen/app.py _on_link)
            data = app.smp_q.pop(0)
            app.smp_out += len(data)
            try:
                frames = self.rx.feed(data)
            except Exception:  # noqa: BLE001  (management never stops the pen)
                app.smp_errors += 1
                self.rx.reset()
                continue
            for frame in frames:
                served = True
                resp, failed = smp.answer(frame, self.env)
                if failed:
                    app.smp_errors += 1
                if resp is not None:
                    app.ble.send_smp(resp)
        if served:
            app.note_update()  # a test or confirm changes what INFO says
        if self.env.reset_asked and not self.reset_at:
            self.reset_at = app.pen.now_ms + RESET_MS
