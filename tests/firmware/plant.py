# A small physical stand-in for the pen's body, driven by the core's Outputs:
# motor (back-EMF physics, hall strokes, current), stepper with home switch and
# depth sensor, contact, battery, cartridge. Fault injection by attributes.
# MicroPython-compatible: the in-VM tests and the benchmark use it too.
import hashlib

from pen import cartauth
from pen.io import Inputs

# The master key the factory keys cartridges with, the same the pen checks them
# against (the boards' "cartridge"/"auth_key").
KEY = b"\x5c\xa1\xbb\xe0\xc0\xa7\xd3\xe5" * 4
_chal = [0]


def _challenge():
    # The pen's challenge (os.urandom on the pen; a counter here, never repeated).
    _chal[0] += 1
    return hashlib.sha256(b"plant challenge %d" % _chal[0]).digest()


def chip_read(cid, pages, key=KEY):
    # The record the pen's driver hands the core for a chip keyed with `key` that
    # holds `pages`: each page read with its MAC to a fresh challenge and checked
    # with the pen's key (pen/cartauth.py, as pen/hw_cartridge.py does).
    secret = cartauth.device_secret(key, cid)
    chal = [_challenge() for _ in range(cartauth.PAGES)]
    macs = [cartauth.page_mac(secret, cid, p, pages[p], chal[p]) for p in range(cartauth.PAGES)]
    return cartauth.record(cid, cartauth.check(KEY, cid, pages, macs, chal), pages)


def chip_pages(needles=14, rated=150000, used=0, expiry=1900000000, first_use=0, finished=False,
               made=1740000000):
    return [cartauth.encode_factory(needles, rated, expiry, made),
            cartauth.encode_usage(first_use, finished),
            cartauth.encode_counter(max(0, rated - used) // cartauth.STROKES_PER_COUNT)]


def cartridge(cid=b"\x2d\x01\x02\x03\x04\x05\x06\x07", needles=14, rated=150000, used=0,
              expiry=1900000000, first_use=0, finished=False, made=1740000000, key=KEY):
    # A cartridge as the factory made it (keyed with `key`), as the pen reads it.
    return chip_read(cid, chip_pages(needles, rated, used, expiry, first_use, finished, made), key)


def chip_write(rec, fields):
    # What the chip takes of a write: first use once, finished once, strokes used
    # only upwards (the usage page's bits only clear, the counter only counts down).
    if fields.get("first_use") and not rec["first_use"]:
        rec["first_use"] = fields["first_use"]
    if fields.get("finished"):
        rec["finished"] = True
    u = fields.get("used", 0)
    if u > rec["used"]:  # in counts of two strokes, rounded up (pen/cartauth.py)
        per = cartauth.STROKES_PER_COUNT
        rated = rec["rated"]
        rec["used"] = rated - (max(0, rated - u) // per) * per


class Plant:
    # Motor: a DC motor on PWM, as hardware/scalppen_hardware/models/motor.py (rev B's
    # constants): speed settles at kv * (d * V - i_load * r) with a first-order lag,
    # the shunt reads the winding current (d * V - speed / kv) / r. Faults:
    # stall, forced_sps (a runaway), extra_load_ma (friction), hall_miss_every
    # (every n-th hall pulse lost), extra_ma (a current-sense error).
    # Depth: the stepper's counted position (cmd) and the carriage's actual one
    # (pos) apart, the sensor reads pos. Faults: depth_stuck (the screw jams: steps
    # counted, carriage still), depth_offset, depth_sensor_stuck (the reading
    # freezes), depth_glitch_every (every n-th sample reads the ADC rail).
    # Battery: gauge_off (the fuel gauge does not answer: the battery is unknown).
    def __init__(self, kv=50.0, r_ohm=1.2, tau_ms=40.0):
        self.inp = Inputs()
        i = self.inp
        i.battery_pct = 90
        i.battery_mv = 3950
        i.battery_ok = True
        i.temp_c10 = 300
        i.contact = True
        i.link_up = True
        i.cartridge = cartridge()
        self.kv = kv
        self.r = r_ohm
        self.i_noload = 0.060
        self.i_contact = 0.080
        self.i_max = 2.5
        self.tau = tau_ms
        self.speed = 0.0
        self.phase = 0.0
        self.strokes = 0  # strokes the cam made (whether the hall saw them or not)
        self.hall_miss_every = 0
        self._since_miss = 0
        self.pos = 400  # um from home; unknown to the pen until it homes
        self.cmd = 400  # what the stepper's step count says
        self.homed = False
        self.stall = False
        self.stall_ma = 2000  # locked-rotor current while stalled and driven
        self.depth_offset = 0  # sensor error injection, um
        self.depth_stuck = False
        self.depth_sensor_stuck = None  # None, or the um the sensor keeps reading
        self.depth_glitch_every = 0
        self._samples = 0
        self.extra_ma = 0
        self.extra_load_ma = 0  # friction: more load current for the same speed
        self.forced_sps = None  # a runaway: this speed whenever driven, whatever the duty
        self.gauge_off = False
        self.writes = []

    def _motor(self, duty, dt_ms):
        i = self.inp
        if self.stall:
            self.speed = 0.0
            i.motor_ma = self.stall_ma if duty > 0 else 0
            return
        v = duty * i.battery_mv / 1023000.0
        if duty > 0:
            load = self.i_noload + (self.i_contact if i.contact else 0.0) + self.extra_load_ma / 1000.0
            target = self.kv * (v - load * self.r)
            if target < 0:
                target = 0.0
            if self.forced_sps is not None:
                target = self.forced_sps
        else:
            target = 0.0
        self.speed += (target - self.speed) * (dt_ms / (self.tau + dt_ms))
        if duty > 0:
            a = (v - self.speed / self.kv) / self.r
            a = 0.0 if a < 0 else (self.i_max if a > self.i_max else a)
            i.motor_ma = int(a * 1000)
        else:
            i.motor_ma = 0

    def step(self, out, dt_ms):
        i = self.inp
        self._motor(out.motor_duty, dt_ms)
        i.motor_ma += self.extra_ma
        self.phase += self.speed * dt_ms / 1000.0
        n = int(self.phase)
        self.phase -= n
        self.strokes += n
        for _ in range(n):
            if self.hall_miss_every:
                self._since_miss += 1
                if self._since_miss >= self.hall_miss_every:
                    self._since_miss = 0
                    continue
            i.hall_count += 1
        if self.gauge_off:
            i.battery_ok = False
        # stepper: 125 um per tick, seek 50 um per tick
        if out.home_seek and out.stepper_enable:
            self.pos -= 50
            if self.pos <= 0:
                self.pos = 0
            self.cmd = self.pos
            if self.pos == 0:
                self.cmd = 0
                self.homed = True
        elif out.stepper_enable and self.homed:
            d = out.depth_target_um - self.cmd
            if d > 125:
                d = 125
            elif d < -125:
                d = -125
            self.cmd += d
            if not self.depth_stuck:
                self.pos += d
        i.home = self.pos <= 0
        i.homed = self.homed
        i.depth_cmd_um = self.cmd
        i.depth_moving = out.stepper_enable and self.homed and self.cmd != out.depth_target_um
        self._samples += 1
        if self.depth_sensor_stuck is not None:
            i.depth_um = self.depth_sensor_stuck
        elif self.depth_glitch_every and self._samples % self.depth_glitch_every == 0:
            i.depth_um = 3375  # the ADC rail (3.1 V on 0.4 V + 0.8 V/mm)
        else:
            i.depth_um = self.pos + self.depth_offset
        if out.cartridge_write and i.cartridge is not None:
            self.writes.append(out.cartridge_write)
            chip_write(i.cartridge, out.cartridge_write)
