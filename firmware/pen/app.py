# The pen's shell: drivers <-> core at 100 Hz, BLE <-> handler, the watchdog.
#
#   app = App(root)          # root: the flash directory ("/" on the pen)
#   app.step(now_ms)         # one control tick (the virtual pen calls this)
#   run()                    # on the pen: the forever loop, called by main.py
#
# Everything the pen decides is in pen.core; this file only moves data between
# the hardware, the radio and the core.
import gc
import json
import sys

import bluetooth
import esp32
import machine

from pen import bootok, idleoff, link, wire
from pen.ble import PenBle
from pen.core import Pen
from pen.drivers import Drivers
from pen.fsio import Fs
from pen.handler import Handler
from pen.io import Inputs
from pen.store import Store
from pen.version import VERSION

try:
    from time import sleep_ms, ticks_diff, ticks_ms
    import time as clock
except ImportError:  # CPython: the virtual pen's clock
    from vclock import sleep_ms, ticks_diff, ticks_ms
    import vclock as clock

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

_PLAUSIBLE_UNIX = const(1700000000)  # an RTC before this was never set
# MicroPython's time.time()/gmtime()/mktime() and the RTC count from the port's
# epoch: 2000-01-01 on the ESP32 (MICROPY_EPOCH_IS_2000, docs/library/time.rst),
# 1970 on others. The core and the wire speak Unix seconds; this converts at the
# edges, whatever the target says.
_UNIX_OFFSET = 946684800 if clock.gmtime(0)[0] == 2000 else 0
_RX_LIMIT = const(64)  # queued ATT writes; beyond this the oldest is dropped
# SMP writes held between two ticks, in bytes: one whole request (pen/smp.py
# BUF_SIZE; the client waits for each answer, so more comes only from a flood, and
# is dropped: the client times out and retries). All of it is served in the next
# tick: the pen's raw SMP intake is this much a tick. The writes are counted too
# (a flood of 1-byte writes would cost a heap block each): 24 hold a request at an
# MTU of 89 or more.
_SMP_IN_BYTES = const(2048)
_SMP_IN_WRITES = const(24)
_RX_PER_TICK = const(8)  # writes handled per tick, so a flood cannot starve control
_RX_PER_TICK_RUNNING = const(1)  # while needles move: one (and LOG_READ pages are short)
_MAINTENANCE_WDT_MS = const(600000)  # the watchdog under the REPL after Ctrl-C: 10 min
# The bench UART, metered like the radio (the same requests per tick) and never
# blocking a tick: machine.UART.write waits until its bytes fit in the driver's TX
# ring buffer (ports/esp32/machine_uart.c, uart_write_bytes), so the app keeps its
# own outgoing buffer and writes only when the driver has sent everything
# (txdone()), at most half the ring buffer (the IDF's ring buffer keeps item
# headers in it). At 115200 baud a 10 ms tick sends 115 bytes.
_BENCH_TXBUF = const(512)  # the driver's TX ring buffer asked for (bytes)
_BENCH_TX_CHUNK = const(256)  # written at most per tick, and only when txdone()
_BENCH_OUT_MAX = const(4096)  # outgoing bytes held; requests wait beyond half of it
_BENCH_QUEUE = const(16)  # received requests held; more wait in the UART
_BENCH_READ = const(256)  # bytes read from the UART per tick


def _unload(name):
    # Forget a module whose work is done, so the heap its code took from a slot's
    # .mpy comes back at the next collection (nothing may keep a reference to it).
    sys.modules.pop(name, None)
    parts = name.split(".")
    attr = parts[-1]
    parent = sys.modules.get(".".join(parts[:-1]))
    if parent is not None:
        try:
            delattr(parent, attr)
        except AttributeError:
            pass


def _join(root, name):
    if root.endswith("/"):
        return root + name
    return root + "/" + name


def _reset_code():
    cause = machine.reset_cause()
    if cause == machine.WDT_RESET:
        return wire.E_FAULT_WATCHDOG
    return 0


def _rtc_unix():
    # The RTC in Unix seconds, 0 when it was never set.
    t = clock.time() + _UNIX_OFFSET
    if t >= _PLAUSIBLE_UNIX:
        return int(t)
    return 0


class App:
    def __init__(self, root="/", on_pen=True, unix=None):
        self.root = root
        self.on_pen = on_pen
        with open(_join(root, "board.json")) as f:
            doc = json.load(f)
        from pen import board

        self.board = board.settings(doc)
        if on_pen:
            _unload("pen.board")  # its code was needed for this only
        self.drivers = Drivers(doc)
        self.store = Store(Fs(_join(root, "data")))
        if unix is None:
            unix = _rtc_unix()
        self.pen = Pen(self.board, self.store, unix, _reset_code())
        uid = machine.unique_id()
        self.serial = "SP3-" + "".join("%02X" % b for b in uid[-3:])
        self.pen.serial = self.serial
        self.handler = Handler(self.pen)
        self.note_update()  # a trial boot.py rolled back is logged by the build it left
        self.inp = Inputs()
        self.rx = []
        self.dropped = 0
        self.events_dropped = 0  # events not sent for want of heap
        self.link_errors = 0
        self.link_epoch = 0  # link changes so far (connect, drop, authentication)
        self.reasm = link.Reassembler()
        self.counter = 0
        self.passkey = None
        self.good = False
        self.ticks = 0
        info = {"name": "ScalpPen-" + self.serial[-4:], "manufacturer": "Scalppen",
                "model": self.board.model, "serial": self.serial, "firmware": VERSION,
                "hardware": self.board.hw_rev, "battery": 100}
        # MCUmgr SMP on its own GATT service (pen/smp.py): writes queued here,
        # answered in the tick, one request at a time. Its modules are imported at
        # the first write: a pen nobody manages keeps their heap. NimBLE calls
        # _on_smp from its own task between any two bytecodes of the main loop
        # (ports/esp32/mpconfigport.h: SYNC_EVENTS_WITH_INTERLOCK): the queue is
        # a list (append and pop are atomic) and each byte count has one writer,
        # smp_in the radio's, smp_out the tick's.
        self.smp_q = []
        self.smp_in = 0
        self.smp_out = 0
        self.smp = None  # pen.mgmt.Mgmt once an SMP write came
        self.smp_errors = 0  # SMP requests that failed inside the pen (answered as such)
        self.ble = PenBle(bluetooth.BLE(), info, _join(root, "bonds.json"), self._on_rx,
                          self._on_passkey, self._on_link,
                          window_open=self.pen.pairing_open, clock=self._uptime,
                          on_smp=self._on_smp)
        # The bench UART (a test fixture's cable): the same frames, COBS + CRC-16,
        # read-only plus STOP (see handler.BENCH_TYPES).
        # Off unless the board enables it (absent, or "enabled": false: a production
        # build has no bench port).
        self.bench = None
        self.bench_out = bytearray()  # encoded packets the UART has yet to take
        self.bench_q = []  # frames received, waiting for their share of a tick
        self.bench_dropped = 0  # events not sent on the bench for want of room
        cfg = doc.get("bench_uart")
        if cfg and cfg.get("enabled", True):
            self.bench = machine.UART(cfg["id"], baudrate=cfg["baud"], tx=cfg["tx"],
                                      rx=cfg["rx"], txbuf=_BENCH_TXBUF)
            self.bench_rx = link.Deframer()
            self.bench_handler = Handler(self.pen, bench=True)
        self._battery = -1
        # Auto power-off (pen/idleoff.py): requests and bench input since the last
        # tick count as use. The press that woke the pen from deep sleep only woke
        # it: the core does not see it (a standalone pen must not start needling
        # from it); the next press is an ordinary one.
        self.idle = self._arm_wake(doc)
        self.activity = False
        self._wake_press = (machine.reset_cause() == machine.DEEPSLEEP_RESET
                            and machine.wake_reason() == machine.EXT0_WAKE)

    def _arm_wake(self, doc):
        # The deep sleep's wake sources (esp32.wake_on_*: recorded now, armed by
        # machine.deepsleep()): the button on EXT0, the charger's sense pin on EXT1
        # where it is an RTC GPIO (0..21 on the S3; else plugging in charges the
        # sleeping pen and a press wakes it). A button that cannot wake the pen
        # means no power-off at all. -> the IdleOff policy, or None.
        pins = doc["pins"]
        act = doc["active_levels"]
        try:
            esp32.wake_on_ext0(machine.Pin(pins["button"]), act["button"] == 1)
        except ValueError:
            return None
        try:
            esp32.wake_on_ext1((machine.Pin(pins["charge_detect"]),),
                               act["charge_detect"] == 1)
        except ValueError:
            pass
        return idleoff.IdleOff(self.board.idle_off_s)

    def _uptime(self):
        return self.pen.now_ms

    # ---- radio callbacks (IRQ context: only record) -----------------------------
    def _on_rx(self, conn, data):
        self.activity = True
        if not self.ble.authenticated:
            # The stack let it through (MITM), but the link is below the pen's
            # floor (short key, no bond) and is being dropped.
            self.dropped += 1
            return
        data = bytes(data)
        if link.whole_type(data) == wire.T_STOP:
            # STOP is always safe: it goes to the head of the queue, so a flood of
            # other requests can neither delay it nor push it out.
            self.rx.insert(0, data)
            if len(self.rx) > _RX_LIMIT:
                self.rx.pop()
                self.dropped += 1
            return
        if len(self.rx) >= _RX_LIMIT:
            self.rx.pop(0)
            self.dropped += 1
        self.rx.append(data)

    def _on_smp(self, conn, data):
        self.activity = True
        held = self.smp_in - self.smp_out
        if (not self.ble.authenticated or len(self.smp_q) >= _SMP_IN_WRITES
                or held + len(data) > _SMP_IN_BYTES):
            self.dropped += 1  # below the pen's floor, or a flood: the client retries
            return
        self.smp_q.append(bytes(data))
        self.smp_in += len(data)

    def _serve_smp(self):
        # SMP requests (pen/mgmt.py, imported at the first one).
        if self.smp is None:
            if not self.smp_q:
                return
            from pen import mgmt

            self.smp = mgmt.Mgmt(self)
        self.smp.serve()

    def _on_passkey(self, conn, passkey):
        self.passkey = passkey

    def _on_link(self, up):
        # A central came or went, or the link's authentication changed. Writes
        # queued from the old link are dropped with it: a request must never
        # outlive the link it came on (a START would run unwatched); the host
        # says HELLO again before events flow (handler.link_reset).
        self.link_epoch += 1  # an armed permit belongs to the link it came on
        self.handler.link_reset()
        self.reasm.reset()
        self.dropped += len(self.rx)
        self.rx = []
        if self.smp is not None:
            self.smp.link_reset()
        self.smp_q = []
        self.smp_in = self.smp_out

    # ---- the control tick -----------------------------------------------------------
    def link_up(self):
        # A host is linked: an authenticated link on which it said HELLO (it
        # subscribed before that; NimBLE never tells the pen about the CCCD).
        return self.ble.link_up and self.handler.hello

    def step(self, now_ms):
        inp = self.drivers.read(self.inp)
        if self._wake_press:
            if inp.button:
                inp.button = False
            else:
                self._wake_press = False
        inp.link_up = self.link_up()
        inp.link_epoch = self.link_epoch
        self._serve()
        self._serve_smp()
        inp.link_up = self.link_up()  # a HELLO just served, or the link gone
        inp.link_epoch = self.link_epoch
        self._serve_bench()
        out = self.pen.tick(now_ms, inp)
        if self.passkey is not None:
            out.display = "PAIR %06d" % self.passkey
        self.drivers.apply(out)
        try:
            for frame in self.handler.event_frames(out.events):
                self._send(frame)
            if self.bench is not None:
                for frame in self.bench_handler.event_frames(out.events):
                    self._bench_put(frame, True)
                self._bench_flush()
        except MemoryError:
            # No heap for a notification this tick: the event is lost to the link
            # (what matters is in the log, which the host syncs), not the session.
            gc.collect()
            self.events_dropped += 1
        self._log_bonds()
        self.ticks += 1
        if self.ticks % 100 == 0:
            self._slow()
        if self.idle is not None:
            reason = idleoff.why_awake(self.pen, inp, self.ble.connected, self.activity)
            self.activity = False
            if self.idle.due(self.pen.now_ms, reason, inp.cartridge is not None):
                self.deep_sleep()
        if not self.good and self.ticks >= 50 and self.on_pen:
            self.good = bootok.mark_good()
            self.note_update()
        return out

    def note_update(self):
        # The last update over SMP (pen/bootok.py /update) into INFO, and a trial
        # that ended into the log, once (counters "upd": the last trial logged; a
        # power cut between the record and the counters repeats it, never loses it).
        if not self.on_pen:
            return
        outcome, n, tried, _before = bootok.update()
        self.pen.update = (outcome, tried)
        c = self.store.c
        if outcome in (wire.U_KEPT, wire.U_ROLLED_BACK) and n != c.get("upd", 0):
            self.pen._log(wire.K_UPDATE, outcome, 0, bootok.version_code(tried),
                          bootok.version_code(VERSION))
            c["upd"] = n
            self.pen._commit()

    def _serve(self):
        # A bounded share of each tick: requests beyond it wait in the queue for the
        # next tick, so a flood from the host slows answers, never the control loop.
        limit = _RX_PER_TICK
        if self.pen.state == wire.S_RUNNING:
            limit = _RX_PER_TICK_RUNNING
        n = 0
        while self.rx and n < limit:
            n += 1
            data = self.rx.pop(0)
            try:
                frame = self.reasm.feed(data)
            except wire.WireError:
                # A damaged or out-of-order fragment: no sequence number is known
                # yet, so nothing can be answered; the host's request times out and
                # it retries. The fragment changes no state.
                self.link_errors += 1
                continue
            if frame is None:
                continue
            for resp in self.handler.handle(frame, self.ble.authenticated):
                if frame[1] == wire.T_SET_KEY and resp[1] == wire.T_ACK:
                    # a new permit key: the hosts bonded before lose their bonds
                    self.ble.revoke_others()
                self._send(resp)

    def _serve_bench(self):
        # As _serve: a bounded share of the tick (LOG_READ pages are short while
        # running: handler). Input is read only while there is room to hold it and
        # to answer; the rest waits in the UART (its driver drops what overflows).
        uart = self.bench
        if uart is None:
            return
        if len(self.bench_q) < _BENCH_QUEUE:
            data = uart.read(_BENCH_READ)
            if data:
                self.activity = True
                for item in self.bench_rx.feed(data):
                    if isinstance(item, wire.WireError):
                        self.link_errors += 1  # a damaged packet: dropped, the stream goes on
                    else:
                        self.bench_q.append(item)
        limit = _RX_PER_TICK
        if self.pen.state == wire.S_RUNNING:
            limit = _RX_PER_TICK_RUNNING
        n = 0
        while self.bench_q and n < limit and len(self.bench_out) < _BENCH_OUT_MAX // 2:
            n += 1
            for resp in self.bench_handler.handle(self.bench_q.pop(0), False):
                self._bench_put(resp, False)

    def _bench_put(self, frame, event):
        packet = link.encode_packet(frame)
        if event and len(self.bench_out) + len(packet) > _BENCH_OUT_MAX:
            self.bench_dropped += 1  # the log keeps what matters
            return
        self.bench_out.extend(packet)

    def _bench_flush(self):
        # Never blocks: the driver has sent all it had, and this fits its buffer.
        out = self.bench_out
        uart = self.bench
        if uart is not None and out and uart.txdone():
            n = len(out) if len(out) < _BENCH_TX_CHUNK else _BENCH_TX_CHUNK
            uart.write(out[:n])
            self.bench_out = out[n:]

    def _log_bonds(self):
        # What the radio did to the bonds (noted in its IRQs), into the log.
        # PAIRED / BONDS_REVOKED: a, b = the host's address (b: its top two bytes
        # and, from bit 16, the address type); code = bonds left / hosts revoked.
        notes = self.ble.notes
        while notes:
            what, arg = notes.pop(0)
            if what == "paired":
                self._log_peer(wire.K_PAIRED, arg, self.ble.bonds.count())
            else:
                for key in arg:
                    self._log_peer(wire.K_BONDS_REVOKED, key, len(arg))

    def _log_peer(self, kind, key, code):
        a = key[1] | key[2] << 8 | key[3] << 16 | key[4] << 24
        self.pen._log(kind, code, 0, a, key[5] | key[6] << 8 | key[0] << 16)

    def _send(self, frame):
        for frag in link.fragment(frame, self.ble.mtu, self.counter):
            self.ble.send(frag)
        self.counter = (self.counter + 1) & 0x3F

    def _slow(self):
        # once a second: battery level for generic BLE apps, the RTC follows the
        # clock the host set.
        pct = self.inp.battery_pct
        if pct != self._battery:
            self._battery = pct
            self.ble.set_battery(pct)
        self._set_rtc(2)

    def _set_rtc(self, slack):
        unix = self.pen.clock()
        if unix and abs(unix - _rtc_unix()) > slack:
            try:
                t = clock.gmtime(unix - _UNIX_OFFSET)
                machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
            except Exception:
                pass

    def deep_sleep(self):
        # Auto power-off (pen/idleoff.py decided): store what the RTC must credit,
        # set the RTC to the pen's clock (the next boot counts the time asleep in
        # its frame), needles and display off, radio off, sleep until a wake source
        # armed at boot (_arm_wake) fires. machine.deepsleep() never returns: the pen
        # boots again as after a reset (reset_cause DEEPSLEEP_RESET, wake_reason
        # EXT0_WAKE / EXT1_WAKE).
        idleoff.save_for_sleep(self.pen)
        self._set_rtc(0)
        self.drivers.safe_stop()
        self.drivers.display.off()
        self.ble.shutdown()
        machine.deepsleep()

    def shutdown(self):
        self.drivers.safe_stop()
        self.ble.shutdown()


# The App that run() is running: what a debugger (and the twin's probe) looks at.
current = None


def run():
    global current
    app = App("/")
    current = app
    app.drivers.start_watchdog()
    try:
        _loop(app)
    except KeyboardInterrupt:
        # Ctrl-C on the USB serial: someone breaks in to flash or debug. Needles
        # stop at once (rule 21); the watchdog cannot be stopped on the ESP32 and
        # would reset the pen under the REPL, so it gets a maintenance timeout.
        app.drivers.safe_stop()
        app.drivers.start_watchdog(_MAINTENANCE_WDT_MS)
        raise


def _loop(app):
    tick = app.board.tick_ms
    now = 0
    last = ticks_ms()
    while True:
        try:
            app.step(now)
        except Exception as e:
            # Fail safe (rule 21): stop the motor, retract, and let the watchdog reset.
            app.drivers.safe_stop()
            sys.print_exception(e)
            while True:
                sleep_ms(1000)
        t = ticks_ms()
        spent = ticks_diff(t, last)
        if spent < tick:
            sleep_ms(tick - spent)
            t = ticks_ms()
        now += ticks_diff(t, last)
        last = t
