# The ESP32 port's `machine` module inside the twin (MicroPython code, not
# firmware). Every object is a handle on its model in the CPython process
# (scalppen_hardware/upy/machine.py, the one model the in-process pen calls
# directly); this module only moves calls and values over the bridge (_twin).
# The constants come from that model at connect time.
import struct

import _twin

_C = _twin.info["const"]


def _const(cls, name):
    for k, v in _C[name].items():
        setattr(cls, k, v)


def _pin_id(p):
    return p._gpio if isinstance(p, Pin) else int(p)


class Pin:
    def __init__(self, id, mode=-1, pull=-1, *, value=None, **kw):
        self._gpio = _pin_id(id)
        self._o, self._slot = _twin.new("Pin", [self._gpio, mode, pull, value])

    def init(self, mode=-1, pull=-1, *, value=None, **kw):
        _twin.call(self._o, "init", [mode, pull, value])

    def value(self, x=None):
        if x is None:
            _twin.refresh()
            return _twin.levels[self._slot]
        _twin.op_pin(self._o, 1 if x else 0)
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, wake=None):
        # The ESP32 port takes handler, trigger and wake only (machine_pin.c): its
        # pin handlers are scheduled (mp_sched_schedule), never hard.
        _twin.call(self._o, "irq", [handler is not None, trigger])
        _twin.set_irq(self._o, handler, self)
        return self

    def __repr__(self):
        return "Pin(%d)" % self._gpio


_const(Pin, "Pin")


class Signal:
    def __init__(self, pin, invert=False):
        self._pin = pin
        self._inv = 1 if invert else 0

    def value(self, x=None):
        if x is None:
            return (self._pin.value() or 0) ^ self._inv
        self._pin.value((1 if x else 0) ^ self._inv)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class PWM:
    def __init__(self, dest, *, freq=5000, duty=None, duty_u16=None, duty_ns=None, invert=False):
        self._o = _twin.new("PWM", [_pin_id(dest), freq, duty, duty_u16])[0]
        self._duty = 0 if duty_u16 is None else duty_u16
        self._freq = freq

    def init(self, *, freq=None, duty=None, duty_u16=None, **kw):
        _twin.call(self._o, "init", [freq, duty, duty_u16])
        if freq is not None:
            self._freq = freq
        if duty_u16 is not None:
            self._duty = duty_u16

    def freq(self, value=None):
        if value is None:
            return self._freq
        _twin.call(self._o, "freq", [value])
        self._freq = value
        return None

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            # the C module's own argument check (ports/esp32/machine_pwm.c)
            raise ValueError("duty_u16 must be from 0 to 65535")
        self._duty = value
        _twin.op_pwm(self._o, value)
        return None

    def duty(self, value=None):
        if value is None:
            return self._duty >> 6
        if not 0 <= value <= 1023:
            raise ValueError("duty must be from 0 to 1023")
        return self.duty_u16(value * 65535 // 1023)

    def deinit(self):
        _twin.call(self._o, "deinit")
        self._duty = 0


class ADC:
    def __init__(self, pin, *, atten=0):
        self._o, self._slot = _twin.new("ADC", [_pin_id(pin), atten])

    def atten(self, atten):
        _twin.call(self._o, "atten", [atten])

    def width(self, bits):
        return None

    def read_uv(self):
        _twin.refresh()
        return _twin.adc_uv[self._slot]

    def read(self):
        _twin.refresh()
        return _twin.adc_code[self._slot]

    def read_u16(self):
        c = self.read()
        return (c << 4) | (c >> 8)


_const(ADC, "ADC")


class I2C:
    # A write's outcome is the device's ack, which the snapshot carries (a device
    # answers or not for a whole tick), so writes go with the tick's outputs.
    # Register reads of a device without read side effects are answered from the
    # snapshot's peeks (the transaction itself still happens, in order); any
    # other read is a synchronous call.
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._o = _twin.new("I2C", [id, None if scl is None else _pin_id(scl),
                                    None if sda is None else _pin_id(sda), freq])[0]
        self._peek = {}

    def _ack(self, addr):
        key = self._o * 256 + addr
        if not _twin.i2c_acks.get(key):
            raise OSError(19)  # ENODEV: no device answered its address
        _twin.i2c_dirty.add(key)

    def scan(self):
        return _twin.call(self._o, "scan")

    def writeto(self, addr, buf, stop=True):
        self._ack(addr)
        data = bytes(buf)
        _twin.push(struct.pack("<BBBH", _twin.OP_I2C_WRITE, self._o, addr, len(data)) + data, False)
        return len(data)

    def readfrom(self, addr, nbytes, stop=True):
        return bytes.fromhex(_twin.call(self._o, "readfrom", [addr, nbytes]))

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self.readfrom(addr, len(buf))

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self.writeto(addr, bytes((memaddr & 0xFF,)) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        slot = self._peek.get((addr, memaddr, nbytes))
        if slot is not None and self._o * 256 + addr not in _twin.i2c_dirty:
            data = _twin.peeks[slot]
            if data is None:
                raise OSError(19)
            _twin.op_i2c_read(self._o, addr, memaddr, nbytes)
            return bytes(data)  # a new object, as the ESP32's readfrom_mem returns
        data, slot = _twin.call(self._o, "readfrom_mem", [addr, memaddr, nbytes])
        if slot >= 0:
            self._peek[(addr, memaddr, nbytes)] = slot
        return bytes.fromhex(data)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf))


SoftI2C = I2C


_UART_FIFO = 128  # UART_HW_FIFO_LEN on the ESP32-S3


class UART:
    # Writing as on the ESP32 (the CPython model is scalppen_hardware.models.
    # uart_port.UartTx): uart_write_bytes returns once the bytes are in the TX ring
    # buffer (txbuf, 256 by default: ports/esp32/machine_uart.c) or the hardware
    # FIFO, and waits for room as long as it takes; the line sends baud/10 bytes/s.
    # A write that does not fit blocks this program (virtual time moves on).
    def __init__(self, id, baudrate=115200, txbuf=256, **kw):
        self._o = _twin.new("UART", [id, baudrate])[0]
        self._rate = baudrate // 10  # bytes/s, 8N1
        self._room = txbuf + _UART_FIFO
        self._queued = 0
        self._at = _twin.ticks_us
        self.blocked_us = []  # how long each blocking write waited

    def init(self, baudrate=115200, **kw):
        return None

    def _left(self):
        period = _twin.info["ticks_period"]
        half = period >> 1
        since = ((_twin.ticks_us - self._at + half) & (period - 1)) - half  # ticks_diff
        sent = since * self._rate // 1000000
        return self._queued - sent if self._queued > sent else 0

    def any(self):
        return _twin.uart_any(self._o)

    def read(self, nbytes=4096):
        return _twin.uart_read(self._o, nbytes)

    def write(self, buf):
        data = bytes(buf)
        queued = self._left() + len(data)
        self._queued = queued
        self._at = _twin.ticks_us
        _twin.push(struct.pack("<BBH", _twin.OP_UART, self._o, len(data)) + data, False)
        if queued > self._room:
            wait = ((queued - self._room) * 1000000 + self._rate - 1) // self._rate
            self.blocked_us.append(wait)
            _twin.sync((wait + 999) // 1000)
        return len(data)

    def txdone(self):
        return self._left() == 0


class WDT:
    def __init__(self, id=0, timeout=5000):
        _twin.call(-1, "wdt", [id, timeout])

    def feed(self):
        _twin.op_wdt_feed()


class RTC:
    def __init__(self):
        pass

    def datetime(self, dt=None):
        if dt is None:
            return tuple(_twin.call(-1, "rtc_get"))
        _twin.call(-1, "rtc_set", [list(dt)])
        return None

    def init(self, dt):
        self.datetime(dt)

    def memory(self, data=None):
        # RTC slow memory: kept across resets and deep sleep, not a power cut
        # (ports/esp32/machine_rtc.c; the model: upy/machine.py RTC.memory).
        if data is None:
            return bytes.fromhex(_twin.call(-1, "rtc_memory", [None]))
        _twin.call(-1, "rtc_memory", [bytes(data).hex()])
        return None


def reset():
    # Never returns: the CPython side ends this process and boots a new one.
    _twin.call(-1, "reset", [_C["reset"]["HARD_RESET"]])


def soft_reset():
    _twin.call(-1, "reset", [_C["reset"]["SOFT_RESET"]])


def reset_cause():
    return _twin.info["reset_cause"]


def wake_reason():
    return _twin.info["wake_reason"]


def unique_id():
    return bytes.fromhex(_twin.info["unique_id"])


def freq(hz=None):
    if hz is None:
        return _twin.info["cpu_hz"]
    return None


def idle():
    return None


def lightsleep(time_ms=None):
    if time_ms:
        _twin.sync(int(time_ms))


def deepsleep(time_ms=None):
    # Never returns (ports/esp32/modmachine.c mp_machine_deepsleep): the CPython
    # side puts the pen to sleep and ends this process; a wake source boots a new one.
    _twin.call(-1, "deepsleep", [time_ms])


def disable_irq():
    return 0


def enable_irq(state=0):
    return None


for _k, _v in _C["reset"].items():
    globals()[_k] = _v
for _k, _v in _C["wake"].items():
    globals()[_k] = _v
