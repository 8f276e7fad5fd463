# The pen's hardware drivers: read every sensor into Inputs, apply Outputs.
#
#   drv = Drivers(board)          # board: the parsed /board.json dict
#   drv.read(inp)                 # once per tick, before core.tick()
#   drv.apply(out)                # once per tick, after core.tick()
#
# Runs unchanged on the pen and on the virtual machine module under CPython.
from machine import I2C, WDT, Pin

from pen.hw_cartridge import Cartridge
from pen.hw_display import Display
from pen.hw_motor import Motor
from pen.hw_sensors import Sensors
from pen.hw_stepper import Stepper


class Drivers:
    def __init__(self, board):
        pins = board["pins"]
        lim = board["limits"]
        self.board = board
        self.i2c = I2C(
            board["i2c"]["id"], scl=Pin(pins["i2c_scl"]), sda=Pin(pins["i2c_sda"]), freq=board["i2c"]["freq_hz"]
        )
        # The motor first: its PWM is driven to 0 before anything else can fail.
        self.motor = Motor(board)
        self.stepper = Stepper(board)
        self.sensors = Sensors(board, self.i2c)
        self.display = Display(board, self.i2c)
        self.cartridge = Cartridge(board)
        tick = lim["tick_ms"]
        poll = board["battery"]["poll_ms"]
        self._gauge_every = poll // tick if poll >= tick else 1
        self._gauge_n = 0
        poll = board["ntc"]["poll_ms"]
        self._temp_every = poll // tick if poll >= tick else 1
        self._temp_n = self._temp_every
        self.wdt = None

    def start_watchdog(self, timeout_ms=None):
        # The ESP32 watchdog cannot be stopped once started.
        if timeout_ms is None:
            timeout_ms = self.board["limits"]["wdt_ms"]
        self.wdt = WDT(timeout=timeout_ms)
        return self.wdt

    def read(self, inp):
        m = self.motor
        st = self.stepper
        se = self.sensors
        inp.hall_count = m.count
        inp.motor_ma = m.current_ma()
        self._temp_n += 1
        if self._temp_n >= self._temp_every:
            self._temp_n = 0
            inp.temp_c10 = se.temp_c10()
        self._gauge_n += 1
        if self._gauge_n >= self._gauge_every:
            self._gauge_n = 0
            se.poll_gauge()
        inp.battery_pct = se.battery_pct
        inp.battery_mv = se.battery_mv
        inp.brownout = se.brownout
        inp.battery_ok = se.gauge_ok
        inp.charging = se.charging()
        inp.contact = se.contact()
        inp.depth_um = st.depth_um()
        inp.depth_cmd_um = st.pos_um()
        inp.depth_moving = st.moving()
        inp.homed = st.homed
        inp.home = st.at_home()
        inp.button = se.button()
        c = self.cartridge
        c.poll()
        inp.cartridge = c.record
        inp.cartridge_busy = c.busy
        inp.cartridge_errors = c.errors
        return inp

    def apply(self, out):
        self.motor.set_duty(out.motor_duty)
        self.stepper.apply(out.stepper_enable, out.depth_target_um, out.home_seek)
        if out.cartridge_write:
            self.cartridge.write(out.cartridge_write)
        if out.display is not None:
            self.display.show(out.display)
        if out.feed_wdt and self.wdt is not None:
            self.wdt.feed()

    def safe_stop(self):
        # Fail-safe: motor off and stepper released, whatever state the core is in.
        self.motor.stop()
        self.stepper.stop()
