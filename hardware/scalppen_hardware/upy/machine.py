"""MicroPython's ``machine`` module (ESP32 port flavour) over virtual pen hardware.

Every object talks to the hardware installed with :func:`_attach` (a
:class:`scalppen_hardware.virtual_pen_hw.VirtualPenHardware`); objects capture
the hardware they were built on, so a reboot installs a fresh hardware object
and the firmware builds new objects on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scalppen_hardware.models.uart_port import DEFAULT_TXBUF, UartTx

_hw: Any = None

# reset causes (values of the ESP32 port)
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

# wake reasons
PIN_WAKE = EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

SLEEP = 2
DEEPSLEEP = 4


class ResetRequested(BaseException):
    """Raised by ``machine.reset()`` / ``soft_reset()``: on a pen they never return.

    A ``BaseException`` so that firmware ``except Exception`` does not swallow it;
    the virtual pen catches it and reboots the firmware.
    """

    def __init__(self, cause: int) -> None:
        super().__init__(cause)
        self.cause = cause


def _attach(hw: Any) -> None:
    """Install the hardware the module's objects use (``None`` detaches)."""
    global _hw
    _hw = hw


def _get_hw() -> Any:
    if _hw is None:
        raise RuntimeError("no virtual hardware attached (machine._attach)")
    return _hw


def _pin_id(p: Any) -> int:
    return p.id() if isinstance(p, Pin) else int(p)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    PULL_HOLD = 4
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0, DRIVE_1, DRIVE_2, DRIVE_3 = 0, 1, 2, 3

    def __init__(
        self, id: Any, mode: int = -1, pull: int = -1, *, value: Any = None, **kw: Any
    ) -> None:
        self._hw = _get_hw()
        self._id = _pin_id(id)
        self._net = self._hw.net(self._id)
        self.init(mode, pull, value=value)

    def init(self, mode: int = -1, pull: int = -1, *, value: Any = None, **kw: Any) -> None:
        net = self._net
        if mode != -1:
            net.mode = mode
        if pull != -1:
            net.pull = pull
        if value is not None:
            self.value(value)

    def id(self) -> int:
        return self._id

    def value(self, x: Any = None) -> int | None:
        if x is None:
            return self._net.get()
        self._net.write(1 if x else 0)
        return None

    __call__ = value

    def on(self) -> None:
        self._net.write(1)

    def off(self) -> None:
        self._net.write(0)

    def irq(
        self,
        handler: Callable[[Pin], Any] | None = None,
        trigger: int = IRQ_FALLING | IRQ_RISING,
        wake: Any = None,
    ) -> Any:
        # The ESP32 port's arguments (ports/esp32/machine_pin.c machine_pin_irq):
        # no `hard`, no `priority`; handlers are scheduled.
        self._net.set_irq(self, handler, trigger)
        return self

    def __repr__(self) -> str:
        return f"Pin({self._id})"


class Signal:
    def __init__(self, pin: Pin, invert: bool = False) -> None:
        self._pin = pin
        self._inv = invert

    def value(self, x: Any = None) -> int | None:
        if x is None:
            return (self._pin.value() or 0) ^ int(self._inv)
        self._pin.value(bool(x) ^ self._inv)
        return None

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)


class PWM:
    def __init__(
        self,
        dest: Any,
        *,
        freq: int = 5000,
        duty: int | None = None,
        duty_u16: int | None = None,
        duty_ns: int | None = None,
        invert: bool = False,
    ) -> None:
        self._hw = _get_hw()
        self._id = _pin_id(dest)
        self._freq = int(freq)
        self._duty_u16 = 0
        self._active = True
        self.init(freq=freq, duty=duty, duty_u16=duty_u16)

    def init(
        self,
        *,
        freq: int | None = None,
        duty: int | None = None,
        duty_u16: int | None = None,
        **kw: Any,
    ) -> None:
        self._active = True
        if freq is not None:
            self._freq = int(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        elif duty is not None:
            self.duty(duty)
        else:
            self._apply()

    def _apply(self) -> None:
        self._hw.pwm_set(self._id, self._freq, self._duty_u16 if self._active else 0)

    def freq(self, value: int | None = None) -> int | None:
        if value is None:
            return self._freq
        self._freq = int(value)
        self._apply()
        return None

    def duty_u16(self, value: int | None = None) -> int | None:
        if value is None:
            return self._duty_u16
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        self._duty_u16 = int(value)
        self._apply()
        return None

    def duty(self, value: int | None = None) -> int | None:
        """ESP32 legacy 10-bit duty (0..1023)."""
        if value is None:
            return self._duty_u16 >> 6
        if not 0 <= value <= 1023:
            raise ValueError("duty must be from 0 to 1023")
        return self.duty_u16(value * 65535 // 1023)

    def deinit(self) -> None:
        self._active = False
        self._duty_u16 = 0
        self._apply()


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 12
    _FULL_MV = (950, 1250, 1750, 3100)

    def __init__(self, pin: Any, *, atten: int = ATTN_0DB) -> None:
        self._hw = _get_hw()
        self._id = _pin_id(pin)
        self._src = self._hw.adc_source(self._id)
        self._full = 3100
        self._k = 4095 / 3100
        self.atten(atten)

    def atten(self, atten: int) -> None:
        self._full = self._FULL_MV[atten]
        self._k = 4095 / self._full

    def width(self, bits: int) -> None:
        return None

    def _code(self) -> int:
        mv = self._src()
        full = self._full
        if mv <= 0:
            return 0
        if mv >= full:
            return 4095
        return int(mv * self._k + 0.5)

    def read(self) -> int:
        return self._code()

    def read_u16(self) -> int:
        c = self._code()
        return (c << 4) | (c >> 8)

    def read_uv(self) -> int:
        # Inline of _code(): this is the hot path of every tick.
        mv = self._src()
        if mv <= 0:
            return 0
        full = self._full
        c = 4095 if mv >= full else int(mv * self._k + 0.5)
        return c * full * 1000 // 4095


class I2C:
    def __init__(
        self,
        id: Any = 0,
        *,
        scl: Any = None,
        sda: Any = None,
        freq: int = 400000,
        timeout: int = 50000,
    ) -> None:
        self._hw = _get_hw()
        self._bus = self._hw.i2c_bus(
            None if scl is None else _pin_id(scl), None if sda is None else _pin_id(sda)
        )

    def _dev(self, addr: int) -> Any:
        dev = self._bus.get(addr)
        if dev is None:
            raise OSError(19, "ENODEV")
        return dev

    def scan(self) -> list[int]:
        return sorted(self._bus)

    def writeto(self, addr: int, buf: Any, stop: bool = True) -> int:
        self._dev(addr).i2c_write(bytes(buf))
        return len(buf)

    def readfrom(self, addr: int, nbytes: int, stop: bool = True) -> bytes:
        return self._dev(addr).i2c_read(nbytes)

    def readfrom_into(self, addr: int, buf: Any, stop: bool = True) -> None:
        buf[:] = self._dev(addr).i2c_read(len(buf))

    def writeto_mem(self, addr: int, memaddr: int, buf: Any, *, addrsize: int = 8) -> None:
        self._dev(addr).i2c_write(bytes([memaddr & 0xFF]) + bytes(buf))

    def readfrom_mem(self, addr: int, memaddr: int, nbytes: int, *, addrsize: int = 8) -> bytes:
        dev = self._dev(addr)
        dev.i2c_write(bytes([memaddr & 0xFF]))
        return dev.i2c_read(nbytes)

    def readfrom_mem_into(self, addr: int, memaddr: int, buf: Any, *, addrsize: int = 8) -> None:
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf))


SoftI2C = I2C


class UART:
    """A UART whose far end is a pseudo-terminal (``hw.uart_port(id).path``).

    Writing is as on the ESP32 (:class:`~scalppen_hardware.models.uart_port.UartTx`):
    a write that does not fit in ``txbuf`` plus the hardware FIFO blocks until the
    line has sent the excess, and virtual time (the physics) moves on meanwhile.
    The bytes reach the pty at once."""

    def __init__(self, id: int, baudrate: int = 115200, *, txbuf: int = DEFAULT_TXBUF,
                 **kwargs: Any) -> None:
        self._hw = _get_hw()
        self._port = self._hw.uart_port(int(id))
        self.baudrate = baudrate
        self.tx = UartTx(baudrate, txbuf)

    def init(self, baudrate: int = 115200, **kwargs: Any) -> None:
        self.baudrate = baudrate
        self.tx = UartTx(baudrate, int(kwargs.get("txbuf", DEFAULT_TXBUF)))

    def any(self) -> int:
        return 0  # unknown without reading; read() returns None when nothing waits

    def read(self, nbytes: int = 4096) -> bytes | None:
        return self._port.read(nbytes)

    def write(self, buf: bytes) -> int:
        data = bytes(buf)
        block_us = self.tx.write(len(data), self._hw.clock.world_us)
        if block_us:
            self._port.tx_blocks_us.append(block_us)
            self._hw.clock.sleep_ms(-(-block_us // 1000))  # uart_write_bytes waits
        return self._port.write(data)

    def txdone(self) -> bool:
        return self.tx.done(self._hw.clock.world_us)

    def deliver(self, data: bytes) -> int:
        """Bytes the twin's UART wrote: its MicroPython side models the driver's
        waiting (twin/mpy/machine.py), so they go to the pty as they are."""
        return self._port.write(bytes(data))


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id: int = -1, **kw: Any) -> None:
        self._hw = _get_hw()
        self._timer_id = id
        if kw:
            self.init(**kw)

    def init(
        self,
        *,
        mode: int = PERIODIC,
        period: int = -1,
        freq: float = -1,
        callback: Callable[[Timer], Any] | None = None,
        hard: bool = False,
    ) -> None:
        if freq > 0:
            period = max(1, round(1000 / freq))
        if period <= 0:
            raise ValueError("period must be > 0")
        self._hw.timer_start(self, int(period), mode == Timer.PERIODIC, callback)

    def deinit(self) -> None:
        self._hw.timer_stop(self)


class WDT:
    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        self._hw = _get_hw()
        self._hw.wdt_start(int(timeout))

    def feed(self) -> None:
        self._hw.wdt_feed()


class RTC:
    """The pen's real-time clock, as ``ports/esp32/machine_rtc.c`` has it.

    ``datetime()`` is a calendar date, ``(year, month, day, weekday, hour, minute,
    second, microsecond)`` with weekday 0 = Monday, whatever epoch ``time.time()``
    counts from (2000 on the ESP32: see ``vclock``); setting it takes exactly those
    8 fields (the weekday is ignored).
    """

    def __init__(self) -> None:
        self._hw = _get_hw()

    def datetime(self, dt: Any = None) -> tuple[int, ...] | None:
        import calendar
        import time as host_time

        clock = self._hw.clock
        if dt is None:
            us = clock.epoch_us()
            t = host_time.gmtime(us // 1_000_000)
            return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec,
                    us % 1_000_000)
        if len(dt) != 8:
            raise ValueError(f"requested length 8 but object has length {len(dt)}")
        year, month, day, _wd, hour, minute, second, sub = (int(x) for x in dt)
        clock.set_epoch(
            calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) + sub / 1e6
        )
        return None

    def init(self, dt: Any) -> None:
        self.datetime(dt)

    def memory(self, data: Any = None) -> bytes | None:
        """RTC slow memory (ports/esp32/machine_rtc.c ``machine_rtc_memory``,
        ``RTC_NOINIT_ATTR``): kept across resets and deep sleep, lost when power is
        cut; at most ``RTC_USER_MEM_MAX`` bytes."""
        body = self._hw.body
        if data is None:
            return bytes(body.rtc_memory)
        buf = bytes(data)
        if len(buf) > RTC_USER_MEM_MAX:
            raise ValueError("buffer too long")
        body.rtc_memory = buf
        return None


#: MICROPY_HW_RTC_USER_MEM_MAX, the ESP32 port's default (ports/esp32/mpconfigport.h).
RTC_USER_MEM_MAX = 2048


def reset() -> None:
    raise ResetRequested(_get_hw().request_reset(HARD_RESET))


def soft_reset() -> None:
    raise ResetRequested(_get_hw().request_reset(SOFT_RESET))


def reset_cause() -> int:
    return int(_get_hw().reset_cause)


def wake_reason() -> int:
    """What woke the chip from deep sleep (``EXT0_WAKE``, ``EXT1_WAKE``,
    ``TIMER_WAKE``), 0 after any other reset: ``esp_sleep_get_wakeup_cause()``
    (ports/esp32/modmachine.c ``machine_wake_reason``)."""
    return int(_get_hw().wake_reason)


def unique_id() -> bytes:
    return bytes(_get_hw().unique_id)


def freq(hz: int | None = None) -> int | None:
    hw = _get_hw()
    if hz is None:
        return int(hw.cpu_hz)
    hw.cpu_hz = int(hz)
    return None


def idle() -> None:
    return None


def lightsleep(time_ms: int | None = None) -> None:
    if time_ms:
        _get_hw().advance(int(time_ms))


def deepsleep(time_ms: int | None = None) -> None:
    """Never returns, as on the ESP32 (ports/esp32/modmachine.c
    ``mp_machine_deepsleep``: the wake sources armed with ``esp32.wake_on_ext0`` /
    ``wake_on_ext1`` and the timer ``time_ms``, then ``esp_deep_sleep_start()``).

    This boot ends here (RAM is lost; flash, the RTC's time and ``RTC.memory()``
    stay); the chip draws its deep-sleep current until a wake source fires, then
    boots with ``reset_cause() == DEEPSLEEP_RESET`` and ``wake_reason()`` saying
    which (:meth:`VirtualPenHardware.enter_deepsleep`)."""
    hw = _get_hw()
    raise ResetRequested(hw.enter_deepsleep(None if time_ms is None else int(time_ms)))


def disable_irq() -> int:
    return 0


def enable_irq(state: int = 0) -> None:
    return None


def bootloader(value: Any = None) -> None:
    raise ResetRequested(_get_hw().request_reset(HARD_RESET))
