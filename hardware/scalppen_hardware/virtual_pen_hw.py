"""The whole pen's hardware in virtual time: models wired to virtual GPIO, ADC, I2C, 1-Wire.

:class:`PenBody` is the physical pen (motor, needle carriage, battery, heat, the
cartridge in the slot, the OLED glass, the user's finger on the button and the
pen on the skin): it survives reboots. :class:`VirtualPenHardware` is one boot of
the electronics around it (pins, PWM, timers, watchdog, IRQ handlers): make a
fresh one for every boot with :meth:`VirtualPenHardware.reboot`, and
:func:`scalppen_hardware.upy.install` it into the ``machine`` module.

Typical use (what the simulator does)::

    clock = VirtualClock(epoch_s=1_767_225_600)
    hw = VirtualPenHardware(load_board(), clock)
    upy.install(hw)                  # firmware's machine/micropython/vclock use hw
    hw.insert_cartridge("new"); hw.set_contact(True)
    ... firmware tick ...; hw.advance(10)
    if hw.needs_reboot is not None:  # watchdog, machine.reset(), power loss, brown-out
        hw = hw.reboot()             # new electronics, same body and clock, installed
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from scalppen_hardware.models.battery import BatteryModel
from scalppen_hardware.models.cartridge import VirtualCartridge
from scalppen_hardware.models.depth_sensor import DepthSensorModel
from scalppen_hardware.models.fuel_gauge import FuelGauge
from scalppen_hardware.models.motor import MotorModel
from scalppen_hardware.models.ntc import NtcModel
from scalppen_hardware.models.oled import CharOled
from scalppen_hardware.models.stepper import StepperModel
from scalppen_hardware.models.thermal import ThermalModel
from scalppen_hardware.models.uart_port import UartPort
from scalppen_hardware.upy.vclock import VirtualClock

# reset causes, as machine.* on the ESP32 port
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
# wake reasons, machine.wake_reason(): esp_sleep_get_wakeup_cause() (ESP_SLEEP_WAKEUP_*)
EXT0_WAKE, EXT1_WAKE, TIMER_WAKE = 2, 3, 4
SLEEP_STEP_US = 1_000_000  # wake sources are looked at this often while asleep

FAULTS = (
    "stall",
    "overtemp",
    "charger",
    "cartridge_pulled",
    "contact_lost",
    "brownout",
    "power_loss",
    "missed_steps",
    "depth_jam",
    "hall_pulse_loss",
    "gauge_off_bus",
    "gauge_stuck_high",
    "depth_sensor_stuck",
    "depth_sensor_glitch",
)

_IN, _PULL_UP = 1, 2
_RISING = 1
STEP_US = 10_000  # physics step while anything moves
IDLE_STEP_US = 60_000_000  # longest step while everything is still
SLOW_US = 100_000  # battery / thermal / gauge update period


class Net:
    """One GPIO: the level the MCU drives, or a model's output, plus its IRQ."""

    __slots__ = (
        "get",
        "gpio",
        "handler",
        "level",
        "mode",
        "pin",
        "pull",
        "reader",
        "trigger",
        "writer",
    )

    def __init__(
        self,
        gpio: int,
        reader: Callable[[], int] | None = None,
        writer: Callable[[int, int], None] | None = None,
    ) -> None:
        self.gpio = gpio
        self.reader = reader
        self.writer = writer
        self.level = 0
        self.mode = _IN
        self.pull = -1
        self.handler: Callable[[Any], Any] | None = None
        self.trigger = 0
        self.pin: Any = None
        # What a read returns: the model's output when a model drives the line.
        self.get: Callable[[], int] = reader if reader is not None else self.read

    def read(self) -> int:
        if self.reader is not None:
            return self.reader()
        if self.mode == _IN:
            return 1 if self.pull == _PULL_UP else 0
        return self.level

    def write(self, v: int) -> None:
        old = self.level
        self.level = v
        if self.writer is not None:
            self.writer(v, old)

    def set_irq(self, pin: Any, handler: Callable[[Any], Any] | None, trigger: int) -> None:
        self.pin = pin
        self.handler = handler
        self.trigger = trigger if handler is not None else 0

    def fire(self, rising: bool) -> None:
        h = self.handler
        if h is not None and self.trigger & (1 if rising else 2):
            h(self.pin)


class OneWireBus:
    """The cartridge slot's 1-Wire line as the MCU sees it."""

    def __init__(self, hw: VirtualPenHardware) -> None:
        self._hw = hw
        self.resets = 0

    def _cart(self) -> VirtualCartridge | None:
        cart = self._hw.body.cartridge if self._hw.running else None
        if cart is not None:
            cart.now_us = self._hw.clock.uptime_us  # the chip's command times: the pen's clock
        return cart

    def present(self) -> bool:
        """Whether a reset now would see a presence pulse (no side effects)."""
        return self._cart() is not None

    def reset(self) -> bool:
        self.resets += 1
        cart = self._cart()
        return cart.ow_reset() if cart is not None else False

    def read_byte(self) -> int:
        cart = self._cart()
        return cart.ow_read_byte() if cart is not None else 0xFF

    def write_byte(self, b: int) -> None:
        cart = self._cart()
        if cart is not None:
            cart.ow_write_byte(b)

    def roms(self) -> list[bytes]:
        cart = self._cart()
        return [cart.rom] if cart is not None else []


class PenBody:
    """The physical pen and its surroundings; carried over from boot to boot."""

    def __init__(
        self, board: Mapping[str, Any], *, soc_pct: float = 80.0, depth_um: float = 0.0
    ) -> None:
        self.motor = MotorModel(board["motor"])
        self.thermal = ThermalModel(board["thermal"])
        self.ntc = NtcModel(board["ntc"])
        self.stepper = StepperModel(board["stepper"], start_um=depth_um)
        self.depth_sensor = DepthSensorModel(
            board["depth_sensor"], rail_mv=float(board.get("adc", {}).get("full_scale_mv", 3100))
        )
        self.battery = BatteryModel(board["battery"], soc_pct)
        self.gauge = FuelGauge(self.battery)
        self.oled = CharOled(board["display"])
        self.uarts: dict[int, UartPort] = {}  # bench UARTs by id, opened on first use
        self.rtc_memory = b""  # machine.RTC().memory(): kept but for a power cut
        self.cartridge: VirtualCartridge | None = None
        self.pulled: VirtualCartridge | None = None  # held out by "cartridge_pulled"
        self.contact = False
        self.button = False
        self.faults: set[str] = set()
        self.strokes = 0  # all strokes the motor ever made


class VirtualPenHardware:
    """One boot of the pen's electronics over a :class:`PenBody`, in virtual time.

    Args:
        board: the board definition (a :class:`~scalppen_hardware.board.Board` or its dict).
        clock: the virtual clock (shared across reboots); a new one if omitted.
        body: the physical pen to boot on; a new one (``soc_pct``, ``depth_um``) if omitted.
        reset_cause: what ``machine.reset_cause()`` reports on this boot.
        wake_reason: what ``machine.wake_reason()`` reports (after a deep sleep).
        unique_id: ``machine.unique_id()`` (6 bytes); derived from the board id if omitted.
    """

    def __init__(
        self,
        board: Mapping[str, Any],
        clock: VirtualClock | None = None,
        *,
        body: PenBody | None = None,
        reset_cause: int = PWRON_RESET,
        wake_reason: int = 0,
        unique_id: bytes | None = None,
        soc_pct: float = 80.0,
        depth_um: float = 0.0,
    ) -> None:
        self.board: dict[str, Any] = dict(board)
        self.clock = clock if clock is not None else VirtualClock()
        self.body = body if body is not None else PenBody(board, soc_pct=soc_pct, depth_um=depth_um)
        self.reset_cause = reset_cause
        self.wake_reason = wake_reason
        # esp32.wake_on_ext0/ext1's choices (machine_rtc_config: RAM, none at boot)
        self.wake_cfg: dict[str, Any] = {"ext0": None, "ext0_level": False, "ext1": (),
                                         "ext1_level": False}
        self.asleep = False  # in deep sleep: this boot ended, no wake source fired yet
        self.sleep_timer_us: int | None = None  # world_us of the deep sleep's timer wake
        self.woke_by = 0  # the wake source that ended the deep sleep
        self.unique_id = unique_id or hashlib.sha256(str(board["board"]).encode()).digest()[:6]
        self.cpu_hz = 240_000_000
        self.powered = True
        self.halted_cause: int | None = None  # set when this boot has ended
        self.last_power_event: str | None = None  # "brownout" / "power_loss"
        self._run = True  # powered and not halted (read on every step)
        self._lim = self.board["limits"]
        pins = self.board["pins"]
        act = self.board["active_levels"]
        self._pins = pins
        b = self.body
        # electronics reset: outputs off
        b.motor.duty = 0.0
        b.stepper.enabled = False
        m_isense = self.board["motor"]
        self._isense_k = float(m_isense["isense_mv_per_ma"]) * 1000.0
        self._isense_off = float(m_isense["isense_offset_mv"])
        bat = self.board["battery"]
        self._base_ma = float(bat["base_load_ma"])
        self._stepper_ma = float(bat["stepper_ma"])
        self._brownout_mv = float(bat["brownout_mv"])
        self._sleep_ma = deep_sleep_ua(self.board) / 1000.0
        self._self_ma = self_discharge_ma(self.board)
        self._vbat = b.battery.terminal_v
        self._acc_us = 0
        self._acc_mas = 0.0
        self._acc_j = 0.0
        self._timers: list[list[Any]] = []  # [due_us, period_us (0 = one shot), callback, timer]
        self._wdt_us = 0
        self._wdt_due = 0
        self._wdt_kept = (0, 0)
        self._sched: list[tuple[Callable[[Any], Any], Any]] = []
        self._in_advance = False
        self.onewire = OneWireBus(self)

        stepper = b.stepper

        def step_writer(v: int, old: int) -> None:
            if v and not old and self.running:
                stepper.step_edge()

        def dir_writer(v: int, old: int) -> None:
            stepper.dir_level = v

        en_active = int(act["stepper_enable"])

        def en_writer(v: int, old: int) -> None:
            stepper.enabled = v == en_active and self.running

        contact_act, charge_act = int(act["contact"]), int(act["charge_detect"])
        home_act, button_act = int(act["home"]), int(act["button"])
        self._nets: dict[int, Net] = {
            pins["hall"]: Net(pins["hall"], b.motor.hall_level),
            pins["stepper_step"]: Net(pins["stepper_step"], None, step_writer),
            pins["stepper_dir"]: Net(pins["stepper_dir"], None, dir_writer),
            pins["stepper_enable"]: Net(pins["stepper_enable"], None, en_writer),
            pins["home"]: Net(pins["home"], lambda: home_act if stepper.pos <= 0 else 1 - home_act),
            pins["contact"]: Net(
                pins["contact"],
                lambda: (
                    contact_act if b.contact and "contact_lost" not in b.faults else 1 - contact_act
                ),
            ),
            pins["charge_detect"]: Net(
                pins["charge_detect"], lambda: charge_act if b.battery.plugged else 1 - charge_act
            ),
            pins["button"]: Net(pins["button"], lambda: button_act if b.button else 1 - button_act),
        }
        self._hall_net = self._nets[pins["hall"]]
        motor, thermal, ntc, ds = b.motor, b.thermal, b.ntc, b.depth_sensor
        k, off = self._isense_k, self._isense_off
        self._adc: dict[int, Callable[[], float]] = {
            pins["motor_isense"]: lambda: motor.current * k + off,
            pins["depth_sense"]: lambda: ds.read_mv(stepper.actual_um, self.clock.world_us / 1000),
            pins["ntc"]: lambda: ntc.mv(thermal.temp_c),
        }
        disp = self.board["display"]
        self._i2c = {int(bat["fuel_gauge_addr"]): b.gauge, int(disp["addr"]): b.oled}
        if reset_cause != SOFT_RESET:  # the ESP32's timer keeps counting through a soft reset
            self.clock.boot()
        self.clock.sleeper = self.advance

    # --- state ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """The MCU is powered and this boot has not ended."""
        return self._run

    @property
    def needs_reboot(self) -> int | None:
        """The reset cause of the next boot once this one has ended, else ``None``."""
        if not self.powered:
            return PWRON_RESET
        return self.halted_cause

    @property
    def motor(self) -> MotorModel:
        return self.body.motor

    @property
    def stepper(self) -> StepperModel:
        return self.body.stepper

    @property
    def battery(self) -> BatteryModel:
        return self.body.battery

    @property
    def thermal(self) -> ThermalModel:
        return self.body.thermal

    @property
    def display(self) -> CharOled:
        return self.body.oled

    @property
    def display_text(self) -> str:
        return self.body.oled.text

    @property
    def cartridge(self) -> VirtualCartridge | None:
        return self.body.cartridge

    @property
    def faults(self) -> frozenset[str]:
        return frozenset(self.body.faults)

    @property
    def stroke_rate(self) -> float:
        return self.body.motor.speed

    @property
    def depth_um(self) -> float:
        """The needles' actual depth."""
        return self.body.stepper.actual_um

    # --- what machine.* calls -------------------------------------------------------------
    def net(self, gpio: int) -> Net:
        n = self._nets.get(gpio)
        if n is None:
            n = self._nets[gpio] = Net(gpio)
        return n

    def pwm_set(self, gpio: int, freq: int, duty_u16: int) -> None:
        if gpio == self._pins["motor_pwm"]:
            self.body.motor.duty = duty_u16 / 65535.0 if self.running else 0.0

    def adc_source(self, gpio: int) -> Callable[[], float]:
        return self._adc.get(gpio, lambda: 0.0)

    def i2c_bus(self, scl: int | None, sda: int | None) -> dict[int, Any]:
        pins = self._pins
        if (scl, sda) in ((None, None), (pins["i2c_scl"], pins["i2c_sda"])):
            return _PoweredBus(self, self._i2c)
        return {}

    def uart_port(self, uart_id: int) -> UartPort:
        """The far end of UART ``uart_id`` (a pty; kept across reboots)."""
        port = self.body.uarts.get(uart_id)
        if port is None:
            port = self.body.uarts[uart_id] = UartPort()
        return port

    def onewire_bus(self, gpio: int) -> OneWireBus:
        if gpio != self._pins["onewire"]:
            raise OSError(19, "ENODEV")  # no 1-Wire device on that pin
        return self.onewire

    def timer_start(self, timer: Any, period_ms: int, periodic: bool, callback: Any) -> None:
        self.timer_stop(timer)
        us = period_ms * 1000
        self._timers.append([self.clock.world_us + us, us if periodic else 0, callback, timer])

    def timer_stop(self, timer: Any) -> None:
        self._timers = [t for t in self._timers if t[3] is not timer]

    def wdt_start(self, timeout_ms: int) -> None:
        # An ESP32 watchdog cannot be stopped; a second WDT() only changes the timeout.
        self._wdt_us = timeout_ms * 1000
        self._wdt_due = self.clock.world_us + self._wdt_us

    def wdt_feed(self) -> None:
        if self._wdt_us:
            self._wdt_due = self.clock.world_us + self._wdt_us

    def request_reset(self, cause: int) -> int:
        self._halt(cause)
        return cause

    def schedule(self, func: Callable[[Any], Any], arg: Any) -> None:
        if len(self._sched) >= 8:  # MicroPython's default schedule queue depth
            raise RuntimeError("schedule queue full")
        self._sched.append((func, arg))

    # --- time ------------------------------------------------------------------------------
    def advance(self, ms: float) -> None:
        """Step physics, IRQs, timers and the watchdog forward by ``ms`` of virtual time."""
        remaining = int(ms * 1000)
        clock = self.clock
        nested = self._in_advance  # a sleep inside a timer callback: physics only
        self._in_advance = True
        try:
            motor = self.body.motor
            while remaining > 0:
                step = STEP_US if (motor.duty > 0.0 or motor.speed > 0.0) else IDLE_STEP_US
                events = self._run and not nested and (self._timers or self._wdt_us or self._sched)
                if events:
                    now = clock.world_us
                    for t in self._timers:
                        if t[0] - now < step:
                            step = max(1, t[0] - now)
                    if self._wdt_us and self._wdt_due - now < step:
                        step = max(1, self._wdt_due - now)
                if step > remaining:
                    step = remaining
                clock.world_us += step
                remaining -= step
                self._physics(step)
                if events:
                    self._events()
        finally:
            self._in_advance = nested

    def _physics(self, us: int) -> None:
        m = self.body.motor
        if m.duty > 0.0 or m.speed > 0.0 or m.current > 0.0:
            dt = us * 1e-6
            vbat = self._vbat
            n = m.step(dt, vbat)
            if n:
                b = self.body
                b.strokes += n
                cart = b.cartridge
                if cart is not None:
                    cart.strokes += n
                net = self._hall_net
                h = net.handler
                seen = m.hall_pulses(n)  # the strokes the hall sensor shows
                if h is not None and net.trigger & _RISING and self._run:
                    pin = net.pin
                    for _ in range(seen):
                        h(pin)
            p = m.current * m.duty * dt
            self._acc_mas += p * 1000.0
            self._acc_j += p * vbat
        self._acc_us += us
        if self._acc_us >= SLOW_US:
            self._slow()

    def _slow(self) -> None:
        b = self.body
        dt = self._acc_us * 1e-6
        load = self._acc_mas / dt + self._self_ma
        if self.running:
            load += self._base_ma
            if b.stepper.enabled:
                load += self._stepper_ma
        elif self.asleep:
            load += self._sleep_ma
        b.battery.step(dt, load)
        b.thermal.step(dt, self._acc_j / dt)
        self._vbat = b.battery.terminal_v
        self._acc_us = 0
        self._acc_mas = 0.0
        self._acc_j = 0.0
        b.gauge.check_alerts()
        if self.powered and b.battery.terminal_mv < self._brownout_mv:
            self._power_fail("brownout")

    def _events(self) -> None:
        now = self.clock.world_us
        if self._timers:
            for t in sorted(self._timers, key=lambda t: t[0]):
                if t[0] <= now and self.running and any(t is u for u in self._timers):
                    if t[1]:
                        t[0] += t[1]
                    else:
                        self._timers.remove(t)
                    if t[2] is not None:
                        t[2](t[3])
        if self._wdt_us and now >= self._wdt_due and self.running:
            self._halt(WDT_RESET)
        while self._sched and self.running:
            func, arg = self._sched.pop(0)
            func(arg)

    def _halt(self, cause: int) -> None:
        """This boot ends: the MCU stops, its outputs float (motor off, stepper disabled)."""
        if self.halted_cause is None:
            self.halted_cause = cause
            # a soft reset keeps the watchdog (ports/esp32/machine_wdt.c registers it once)
            self._wdt_kept = (self._wdt_us, self._wdt_due)
        self._run = False
        self.body.motor.duty = 0.0
        self.body.stepper.enabled = False
        self._timers.clear()
        self._sched.clear()
        self._wdt_us = 0

    def _power_fail(self, event: str) -> None:
        self.powered = False
        self.asleep = False  # a sleeping chip loses its RTC domain too
        self._run = False
        self.last_power_event = event
        self._halt(PWRON_RESET)
        self.body.oled.power_off()
        if event == "brownout":
            self.body.battery.sag_mv = 0.0  # the load is gone, the cell recovers
            self.body.faults.discard("brownout")

    def reboot(self, *, install: bool = True) -> VirtualPenHardware:
        """A fresh boot of the electronics on the same body and clock.

        Power is restored (the ``power_loss`` fault is cleared); after a power loss
        the RTC restarts from its cold value. With ``install`` the new hardware is
        installed into the ``scalppen_hardware.upy`` modules.
        """
        cause = self.needs_reboot or HARD_RESET
        wake = 0
        if cause == DEEPSLEEP_RESET:
            if self.asleep:  # reset out of deep sleep (the EN pin), not woken by a source
                cause = HARD_RESET
            else:
                wake = self.woke_by
        if self.last_power_event == "power_loss":
            self.clock.rtc_lost()
        if not self.powered:
            self.body.rtc_memory = b""  # RTC slow memory needs power
        self.body.faults.discard("power_loss")
        self._halt(cause)
        new = VirtualPenHardware(
            self.board, self.clock, body=self.body, reset_cause=cause, wake_reason=wake,
            unique_id=self.unique_id
        )
        if cause == SOFT_RESET:
            new._wdt_us, new._wdt_due = self._wdt_kept
        if install:
            from scalppen_hardware import upy

            upy.install(new)
        return new

    # --- deep sleep ------------------------------------------------------------------------------
    def enter_deepsleep(self, time_ms: int | None = None) -> int:
        """``machine.deepsleep()``: this boot ends (as a reset does: outputs float,
        timers and the watchdog stop, RAM is gone), the chip draws the board's deep
        sleep current until a wake source fires (:meth:`sleep_for`), and the next
        boot's cause is ``DEEPSLEEP_RESET``. The RTC keeps counting; the radio is off."""
        self._halt(DEEPSLEEP_RESET)
        self.asleep = True
        self.woke_by = 0
        self.sleep_timer_us = None
        if time_ms is not None:
            self.sleep_timer_us = self.clock.world_us + max(0, time_ms) * 1000
        self.check_wake()  # a source already active wakes it at once (level-triggered)
        return DEEPSLEEP_RESET

    def check_wake(self) -> int:
        """While asleep: the wake source active now ends the sleep (returns it), else 0."""
        if not self.asleep:
            return 0
        cfg = self.wake_cfg
        src = 0
        if cfg["ext0"] is not None and self.net(cfg["ext0"]).get() == int(cfg["ext0_level"]):
            src = EXT0_WAKE
        elif cfg["ext1"]:
            levels = [self.net(p).get() for p in cfg["ext1"]]
            hit = any(levels) if cfg["ext1_level"] else not any(levels)
            src = EXT1_WAKE if hit else 0
        due = self.sleep_timer_us
        if not src and due is not None and self.clock.world_us >= due:
            src = TIMER_WAKE
        if src:
            self.asleep = False
            self.woke_by = src
        return src

    def reset_from_sleep(self) -> None:
        """The reset line pulled while asleep: the next boot is a hard reset."""
        if self.asleep:
            self.asleep = False
            self.halted_cause = HARD_RESET

    def sleep_for(self, ms: float, step_us: int = SLEEP_STEP_US) -> None:
        """Let ``ms`` of virtual time pass in deep sleep, or less if a wake source
        fires (looked at every ``step_us``, and at the timer's moment)."""
        remaining = int(ms * 1000)
        while remaining > 0 and self.asleep and self.powered:
            if self.check_wake():
                return
            step = min(remaining, step_us)
            due = self.sleep_timer_us
            if due is not None and 0 < due - self.clock.world_us < step:
                step = due - self.clock.world_us
            self.advance(step / 1000)
            remaining -= step
        self.check_wake()

    # --- the user and the world ---------------------------------------------------------------
    def set_contact(self, on: bool) -> None:
        self.body.contact = bool(on)
        self.body.motor.contact = bool(on)

    def set_button(self, pressed: bool) -> None:
        self.body.button = bool(pressed)

    def press_button(self, ms: int = 100) -> None:
        """Press, hold for ``ms`` of virtual time, release."""
        self.set_button(True)
        self.advance(ms)
        self.set_button(False)

    def plug_charger(self, plugged: bool = True) -> None:
        if plugged:
            self.body.faults.add("charger")
        else:
            self.body.faults.discard("charger")
        self.body.battery.plugged = bool(plugged)

    def set_battery(self, pct: float) -> None:
        bat = self.body.battery
        bat.soc = float(pct)
        bat.terminal_mv = bat.ocv_mv(bat.soc)
        self._vbat = bat.terminal_v

    def set_ambient(self, temp_c: float, *, settle: bool = True) -> None:
        th = self.body.thermal
        th.ambient = float(temp_c)
        if settle:
            th.temp_c = float(temp_c)

    def make_cartridge(self, kind: str = "new", **kw: Any) -> VirtualCartridge:
        """A cartridge dated by the world's calendar (not the pen's RTC, which a power
        cut resets), with the board's default rating, keyed by the factory with the
        master key the board's pens check against."""
        kw.setdefault("master", bytes.fromhex(str(self.board["cartridge"].get("auth_key", ""))))
        # the board's rating (the chip's 17-bit counter, two strokes a count, holds it)
        kw.setdefault("rated", int(self._lim["cartridge_rated_strokes"]))
        kw.setdefault("shelf_life_s", int(self._lim["cartridge_shelf_life_s"]))
        return VirtualCartridge.make(kind, now=self.clock.calendar(), **kw)

    def insert_cartridge(self, cart: VirtualCartridge | str = "new", **kw: Any) -> VirtualCartridge:
        """Put a cartridge in the slot: an existing one, or a new one of a kind
        (``new``, ``used``, ``inserted``, ``expired``, ``worn``, ``corrupt``, ``blank``)."""
        if isinstance(cart, str):
            cart = self.make_cartridge(cart, **kw)
        self.body.pulled = None
        self.body.faults.discard("cartridge_pulled")
        self.body.cartridge = cart
        cart.insertions += 1
        return cart

    def remove_cartridge(self) -> VirtualCartridge | None:
        cart, self.body.cartridge = self.body.cartridge, None
        return cart

    # --- faults --------------------------------------------------------------------------------
    def inject(self, name: str, **params: Any) -> None:
        """Inject a fault (see ``FAULTS``); ``clear(name)`` ends it.

        ``stall``: the cam jams (speed 0, locked-rotor current, no hall pulses).
        ``overtemp``: the handpiece is held at ``temp_c`` (default overtemp limit + 5 C).
        ``charger``: the charger is plugged in. ``cartridge_pulled``: the cartridge
        leaves the slot (``clear`` puts the same one back). ``contact_lost``: the
        contact sensor reads no skin. ``brownout``: the cell sags below the brown-out
        level (default by ``sag_mv``): the MCU resets. ``power_loss``: power is cut
        until the next :meth:`reboot`. ``missed_steps``: the stepper loses every
        ``every``-th step (default 2). ``depth_jam``: the lead screw is jammed.
        ``hall_pulse_loss``: the hall sensor misses every ``every``-th pulse (default
        4), the cam strokes all the same. ``gauge_off_bus``: the fuel gauge NACKs
        every transfer. ``gauge_stuck_high``: every gauge read returns 0xFF bytes.
        ``depth_sensor_stuck``: the depth sensor's output freezes at ``mv`` (default:
        what it reads now). ``depth_sensor_glitch``: for 10 ms of every ``every_ms``
        (default 50) the depth sensor's output is at the ADC's rail.
        """
        b = self.body
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; one of {', '.join(FAULTS)}")
        b.faults.add(name)
        if name == "stall":
            b.motor.stalled = True
        elif name == "overtemp":
            temp = float(params.get("temp_c", self._lim["overtemp_c10"] / 10.0 + 5.0))
            b.thermal.forced_c = temp
            b.thermal.temp_c = max(b.thermal.temp_c, temp)
        elif name == "charger":
            self.plug_charger(True)
        elif name == "cartridge_pulled":
            if b.cartridge is not None:
                b.pulled = b.cartridge
                b.cartridge = None
        elif name == "brownout":
            bat = b.battery
            bat.sag_mv = float(params.get("sag_mv", bat.terminal_mv - self._brownout_mv + 300.0))
            bat.terminal_mv -= bat.sag_mv
            self._vbat = bat.terminal_v
            b.gauge.check_alerts()
            if self.powered:
                self._power_fail("brownout")
        elif name == "power_loss":
            if self.powered:
                self._power_fail("power_loss")
        elif name == "missed_steps":
            b.stepper.miss_every = int(params.get("every", 2))
        elif name == "depth_jam":
            b.stepper.jammed = True
        elif name == "hall_pulse_loss":
            b.motor.hall_miss_every = int(params.get("every", 4))
        elif name == "gauge_off_bus":
            b.gauge.off_bus = True
        elif name == "gauge_stuck_high":
            b.gauge.stuck_high = True
        elif name == "depth_sensor_stuck":
            ds = b.depth_sensor
            ds.stuck_mv = float(params.get("mv", ds.mv(b.stepper.actual_um)))
        elif name == "depth_sensor_glitch":
            b.depth_sensor.glitch_every_ms = int(params.get("every_ms", 50))

    def clear(self, name: str) -> None:
        b = self.body
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; one of {', '.join(FAULTS)}")
        b.faults.discard(name)
        if name == "stall":
            b.motor.stalled = False
        elif name == "overtemp":
            b.thermal.forced_c = None
        elif name == "charger":
            self.plug_charger(False)
        elif name == "cartridge_pulled":
            if b.pulled is not None:
                self.insert_cartridge(b.pulled)
        elif name == "brownout":
            b.battery.sag_mv = 0.0
        elif name == "missed_steps":
            b.stepper.miss_every = 0
        elif name == "depth_jam":
            b.stepper.jammed = False
        elif name == "hall_pulse_loss":
            b.motor.hall_miss_every = 0
        elif name == "gauge_off_bus":
            b.gauge.off_bus = False
        elif name == "gauge_stuck_high":
            b.gauge.stuck_high = False
        elif name == "depth_sensor_stuck":
            b.depth_sensor.stuck_mv = None
        elif name == "depth_sensor_glitch":
            b.depth_sensor.glitch_every_ms = 0
        # power_loss ends with reboot()


def deep_sleep_ua(board: Mapping[str, Any]) -> float:
    """The board's current in deep sleep (uA): the sum of its ``deep_sleep`` parts
    (MCU, LDO, fuel gauge, charger, display, drivers: board JSON, with sources)."""
    parts = board.get("deep_sleep", {})
    return float(sum(v for k, v in parts.items() if k.endswith("_ua")))


def self_discharge_ma(board: Mapping[str, Any]) -> float:
    """The cell's self-discharge as a constant current (mA): ``cell_self_discharge_
    pct_month`` of the board's ``deep_sleep`` figures (a 30-day month)."""
    pct = float(board.get("deep_sleep", {}).get("cell_self_discharge_pct_month", 0.0))
    return float(board["battery"]["capacity_mah"]) * pct / 100.0 / (30 * 24)


class _PoweredBus(dict[int, Any]):
    """The I2C bus: devices answer only while the MCU runs, and only those present
    (a device off the bus NACKs its address)."""

    def __init__(self, hw: VirtualPenHardware, devices: dict[int, Any]) -> None:
        super().__init__(devices)
        self._hw = hw

    def get(self, addr: int, default: Any = None) -> Any:
        if not self._hw.running:
            return default
        dev = super().get(addr, default)
        if dev is not None and not getattr(dev, "present", True):
            return default
        return dev
