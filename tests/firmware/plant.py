# A small physical stand-in for the pen's body, driven by the core's Outputs:
# motor (first-order speed, hall strokes, current), stepper with home switch and
# depth sensor, contact, battery, cartridge. Fault injection by attributes.
# MicroPython-compatible: the in-VM tests and the benchmark use it too.
from pen.io import Inputs


def cartridge(cid=b"\x2d\x01\x02\x03\x04\x05\x06\x07", needles=14, rated=100000, used=0,
              expiry=1900000000, first_use=0, finished=False):
    return {"id": cid, "needles": needles, "rated": rated, "used": used, "expiry": expiry,
            "first_use": first_use, "finished": finished}


class Plant:
    def __init__(self, sps_per_duty=117.0 / 680, tau_ms=40.0):
        self.inp = Inputs()
        i = self.inp
        i.battery_pct = 90
        i.battery_mv = 3950
        i.temp_c10 = 300
        i.contact = True
        i.link_up = True
        i.cartridge = cartridge()
        self.k = sps_per_duty
        self.tau = tau_ms
        self.speed = 0.0
        self.phase = 0.0
        self.pos = 400  # um from home; unknown to the pen until it homes
        self.stall = False
        self.stall_ma = 2000  # locked-rotor current while stalled and driven
        self.depth_offset = 0  # sensor error injection, um
        self.depth_stuck = False
        self.extra_ma = 0
        self.load_sps = 0.0  # speed lost to load (contact)
        self.forced_sps = None  # a runaway: this speed whenever driven, whatever the duty
        self.writes = []

    def step(self, out, dt_ms):
        i = self.inp
        duty = out.motor_duty
        if self.stall:
            self.speed = 0.0
            i.motor_ma = self.stall_ma if duty > 0 else 0
        else:
            target = duty * self.k - (self.load_sps if duty > 0 else 0)
            if target < 0:
                target = 0.0
            if self.forced_sps is not None and duty > 0:
                target = self.forced_sps
            self.speed += (target - self.speed) * (dt_ms / (self.tau + dt_ms))
            if duty > 0:
                i.motor_ma = int(60 + 80 * i.contact + 8 * max(0.0, target - self.speed))
            else:
                i.motor_ma = 0
        i.motor_ma += self.extra_ma
        self.phase += self.speed * dt_ms / 1000.0
        n = int(self.phase)
        self.phase -= n
        i.hall_count += n
        # stepper: 125 um per tick, seek 50 um per tick
        if out.home_seek and out.stepper_enable:
            self.pos -= 50
            if self.pos <= 0:
                self.pos = 0
        elif out.stepper_enable and not self.depth_stuck:
            d = out.depth_target_um - self.pos
            if d > 125:
                d = 125
            elif d < -125:
                d = -125
            self.pos += d
        i.home = self.pos <= 0
        i.depth_um = self.pos + self.depth_offset
        if out.cartridge_write and i.cartridge is not None:
            self.writes.append(out.cartridge_write)
            for k in out.cartridge_write:
                i.cartridge[k] = out.cartridge_write[k]
