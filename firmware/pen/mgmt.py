# The pen's management service: SMP requests (pen/smp.py) the app queued from the
# radio, answered in a bounded share of the tick, and the reset one may ask for.
# Imported at the first SMP write (pen/app.py): a pen nobody manages keeps its heap.
import machine

from pen import images, smp, wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

PER_TICK = const(8)  # writes handled per tick (the bench figure's "raw" intake)
RESET_MS = const(200)  # an SMP reset waits this long for its answer to go out


class Mgmt:
    def __init__(self, app):
        self.app = app
        self.rx = smp.Reassembler()
        self.env = images.Env(app.root, app.board.release_key, self._busy, self._feed)
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
        n = 0
        while app.smp_q and n < PER_TICK:
            n += 1
            data = app.smp_q.pop(0)
            app.smp_bytes -= len(data)
            try:
                frames = self.rx.feed(data)
            except Exception:  # noqa: BLE001  (management never stops the pen)
                app.smp_errors += 1
                self.rx.reset()
                continue
            for frame in frames:
                resp, failed = smp.answer(frame, self.env)
                if failed:
                    app.smp_errors += 1
                if resp is not None:
                    app.ble.send_smp(resp)
        if self.env.reset_asked and not self.reset_at:
            self.reset_at = app.pen.now_ms + RESET_MS
