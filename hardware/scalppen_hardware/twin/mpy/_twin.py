# The twin's side of the bridge (MicroPython code, not firmware): one batched
# message per tick between this MicroPython process and the CPython process that
# holds the pen's body, its radio and the models of the ESP32's C modules.
#
# Outputs (pin writes, PWM duty, WDT feeds, notifications, UART and 1-Wire writes,
# answers to IRQs) are queued in `_out` and sent with the next message. Reads are
# answered from the snapshot the last reply carried, which the CPython side took
# after it applied every queued output and advanced virtual time. A read that
# follows a write in the same batch could depend on it, so it flushes first
# (`_dirty`). Transactions whose answer depends on the device (I2C, 1-Wire reads,
# construction of objects) are synchronous calls.
#
# Message layout: see scalppen_hardware/twin/wire.py (the CPython side), whose
# tables tests/twin/test_wire_tables.py keeps equal to the constants below.
import gc
import json
import socket
import struct
import sys

K_HELLO = 1
K_SYNC = 2
K_CALL = 3

OP_PIN = 1
OP_PWM = 2
OP_WDT_FEED = 3
OP_NOTIFY = 4
OP_UART = 5
OP_OW_WRITE = 6
OP_OW_RESET = 7
OP_JSON = 8
OP_I2C_WRITE = 9
OP_I2C_READ = 10

_HDR = "<IIq"  # ticks_ms, ticks_us, epoch_us (the ESP32's 2000 epoch)
_HEAD = 13  # u32 body length, u8 kind, u32 arg, u32 ops length

# The hot path allocates (almost) nothing on the pen's heap: the pen's C modules
# take none of it. Outputs are packed into one buffer, replies read into another,
# and the snapshot is kept in buffers and lists updated in place.
_sock = None
# The header, then the queued ops. Made at start at the size a tick's output reaches
# in a log sync (a 160-record page in notifications, events, pins): grown later, on a
# heap the firmware has fragmented, it failed (MemoryError asking 8 KiB, where the
# pen's NimBLE would have used its own mbufs, not the MicroPython heap).
_out = bytearray(16384)
_olen = _HEAD
_dirty = False
_lenbuf = bytearray(4)
# Replies are read into this one, made at start for the same reason: its largest is
# a message of IRQs at the bridge's bound (12 ATT writes of 244 bytes, hex in the
# JSON tail: about 6.5 KiB) with a UART read of 4 KiB as hex beside them.
_rx = bytearray(16384)

ticks_ms = 0
ticks_us = 0
epoch_us = 0
levels = bytearray()  # pin levels by slot
adc_uv = []  # ADC readings by slot
adc_code = []
present = bytearray()  # 1-Wire presence by slot
i2c_acks = {}  # I2C object * 256 + address -> the device acks (at the snapshot)
peeks = []  # side-effect-free register reads by slot (bytearray, or None: no ack)
i2c_dirty = set()  # I2C object * 256 + address, written since the snapshot
info = {}

_irqs = {}  # pin object id -> [handler, pin]
_uart_rx = {}  # uart object id -> bytearray
ble = None  # the bluetooth.BLE stand-in, once made
flash = None  # path substrings whose writes ask the flash fault plan (launch.py _File)


def connect(path):
    global _sock, info
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(struct.pack("<H", socket.AF_UNIX) + path.encode() + b"\x00")
    _sock = s
    info = _exchange(K_HELLO, 0, b"")


def _room(n):
    global _out
    if _olen + n > len(_out):
        grown = bytearray(max(len(_out) * 2, _olen + n))
        grown[:_olen] = _out[:_olen]
        _out = grown


# The hot outputs, packed in place (no allocation).
def op_pin(obj, level):
    global _olen, _dirty
    _room(3)
    struct.pack_into("<BBB", _out, _olen, OP_PIN, obj, level)
    _olen += 3
    _dirty = True


def op_pwm(obj, duty):
    global _olen
    _room(4)
    struct.pack_into("<BBH", _out, _olen, OP_PWM, obj, duty)
    _olen += 4


def op_wdt_feed():
    global _olen
    _room(1)
    _out[_olen] = OP_WDT_FEED
    _olen += 1


def op_i2c_read(obj, addr, memaddr, n):
    global _olen
    _room(5)
    struct.pack_into("<BBBBB", _out, _olen, OP_I2C_READ, obj, addr, memaddr, n)
    _olen += 5


def op_ow_reset(obj):
    global _olen
    _room(2)
    struct.pack_into("<BB", _out, _olen, OP_OW_RESET, obj)
    _olen += 2


def _u32(buf, p):
    return buf[p] | buf[p + 1] << 8 | buf[p + 2] << 16 | buf[p + 3] << 24


def _exchange(kind, arg, tail):
    global _olen, _dirty, _rx
    ops = _olen - _HEAD
    struct.pack_into("<IBII", _out, 0, 9 + ops + len(tail), kind, arg, ops)
    _sock.write(_out if _olen == len(_out) else memoryview(_out)[:_olen])
    if tail:
        _sock.write(tail)
    _olen = _HEAD
    _dirty = False
    if _sock.readinto(_lenbuf) != 4:
        raise OSError(104)  # the CPython side went away: this pen is gone
    n = _u32(_lenbuf, 0)
    if n > len(_rx):
        _rx = bytearray(n + 256)
    mv = memoryview(_rx)
    if _sock.readinto(mv[:n]) != n:
        raise OSError(104)
    return _apply(_rx, n)


def flush():
    # Send what is queued now (the program ends: its last outputs must reach the pins).
    if _olen > _HEAD:
        call(-1, "snapshot")


def _fit(arr, n, fill):
    while len(arr) < n:
        arr.append(fill)


def _apply(buf, end):
    # A reply: the snapshot, then the JSON tail (IRQs, UART input, the call's result).
    global ticks_ms, ticks_us, epoch_us, flash
    ticks_ms = _u32(buf, 0)
    ticks_us = _u32(buf, 4)
    e = _u32(buf, 8) | _u32(buf, 12) << 32
    epoch_us = e - (1 << 64) if e >= 1 << 63 else e
    p = 16
    n = buf[p]
    p += 1
    _fit(levels, n, 0)
    for i in range(n):
        levels[i] = buf[p + i]
    p += n
    n = buf[p]
    p += 1
    _fit(adc_uv, n, 0)
    _fit(adc_code, n, 0)
    for i in range(n):
        uv = _u32(buf, p)
        adc_uv[i] = uv - (1 << 32) if uv >= 1 << 31 else uv
        adc_code[i] = buf[p + 4] | buf[p + 5] << 8
        p += 6
    n = buf[p]
    p += 1
    _fit(present, n, 0)
    for i in range(n):
        present[i] = buf[p + i]
    p += n
    n = buf[p]
    p += 1
    edges = p
    p += 4 * n
    nedges = n
    n = buf[p]
    p += 1
    for i in range(n):
        i2c_acks[buf[p] * 256 + buf[p + 1]] = buf[p + 2] == 1
        p += 3
    n = buf[p]
    p += 1
    _fit(peeks, n, None)
    for i in range(n):
        k = buf[p]
        if k == 0xFF:
            peeks[i] = None
            p += 1
        else:
            pk = peeks[i]
            if pk is None or len(pk) != k:
                pk = peeks[i] = bytearray(k)
            for j in range(k):
                pk[j] = buf[p + 1 + j]
            p += 1 + k
    i2c_dirty.clear()
    for i in range(nedges):
        q = edges + 4 * i
        _fire_pin(buf[q] | buf[q + 1] << 8, buf[q + 2] | buf[q + 3] << 8)
    if p >= end:
        return None
    # parsed where it lies (json.loads takes any buffer: extmod/modjson.c), not
    # copied out first: a copy wanted a block as large as the tail
    try:
        tail = json.loads(memoryview(buf)[p:end])
    except MemoryError:
        # the IRQs as one document: collect and try once more (a fragmented heap);
        # the ESP32's stack hands IRQs over without the pen's heap
        gc.collect()
        tail = json.loads(memoryview(buf)[p:end])
    if "flash" in tail:
        flash = tail["flash"]
    rx = tail.get("uart")
    if rx:
        for k in rx:
            _uart_rx.setdefault(int(k), bytearray()).extend(bytes.fromhex(rx[k]))
    events = tail.get("ble")
    if events and ble is not None:
        for ev in events:
            ble._deliver(ev)
    more = tail.get("more")
    while more:  # the rest of the tick's IRQs, a message at a time (twin/bridge.py)
        got = call(-1, "irqs")
        if ble is not None:
            for ev in got["ble"]:
                ble._deliver(ev)
        more = got["more"]
    probes = tail.get("probe")
    if probes:
        for probe_id, expr, mode in probes:
            try:
                push_json(["probe", [probe_id, _probe(expr, mode)]])
            except Exception as e:  # e.g. no heap left for the answer: say so, briefly
                push_json(["probe", [probe_id, {"error": repr(e)}]])
    err = tail.get("error")
    if err is not None:
        _raise(err)
    if tail.get("kbd_intr"):
        # Ctrl-C arrived on the console while the program ran: the ESP32's UART
        # driver takes the character and schedules KeyboardInterrupt
        # (mp_sched_keyboard_interrupt); here it is raised at the tick boundary,
        # after the whole reply was taken.
        raise KeyboardInterrupt
    return tail.get("result")


def _probe(expr, mode):
    # A test's look inside the running firmware (the debugger's view of a pen):
    # `app` is the running pen.app.App. Values that JSON cannot carry come back
    # as their repr. mode "exec" runs statements and answers the name `result`.
    env = {"app": getattr(sys.modules.get("pen.app"), "current", None), "result": None}
    try:
        if mode == "exec":
            exec(expr, env)
            value = env["result"]
        else:
            value = eval(expr, env)
    except Exception as e:
        return {"error": repr(e)}
    return {"value": _plain(value)}


def _plain(v):
    # JSON for a probe's answer: bytes as {"bytes": hex}, other objects as repr.
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {"items": [[_plain(k), _plain(x)] for k, x in v.items()]}
    return {"repr": repr(v)}


def _raise(err):
    kind, arg = err
    if kind == "OSError":
        raise OSError(arg)
    if kind == "ValueError":
        raise ValueError(arg)
    if kind == "TypeError":
        raise TypeError(arg)
    raise RuntimeError(arg)


def _fire_pin(obj, count):
    # The ESP32's pin ISR schedules the handler (machine_pin.c machine_pin_isr_handler
    # -> mp_sched_schedule); the scheduler runs it between bytecodes, printing an
    # exception and carrying on (py/scheduler.c, mp_call_function_1_protected).
    # Here the edges of a tick run at its boundary, in order.
    entry = _irqs.get(obj)
    if entry is None:
        return
    handler, pin = entry
    for _ in range(count):
        try:
            handler(pin)
        except Exception as e:
            sys.print_exception(e)


def sync(ms):
    # Sleep: send the tick's outputs, let virtual time run `ms`, take the snapshot.
    _exchange(K_SYNC, ms, b"")


def call(obj, name, args=()):
    # A synchronous call of the CPython model (flushes the queued outputs first).
    return _exchange(K_CALL, 0, json.dumps([obj, name, args]).encode())


def refresh():
    # A read after a write in the same batch: flush, then read fresh.
    if _dirty:
        call(-1, "snapshot")


def push(data, dirty=True):
    # Queue an output given as bytes (variable-size ops). `dirty`: it may change
    # what a pin or ADC reads this tick (register reads, 1-Wire traffic, PWM,
    # notifications and the watchdog cannot).
    global _olen, _dirty
    n = len(data)
    _room(n)
    _out[_olen:_olen + n] = data
    _olen += n
    if dirty:
        _dirty = True



def push_json(doc):
    data = json.dumps(doc).encode()
    push(struct.pack("<BH", OP_JSON, len(data)) + data, False)


def new(cls, args):
    return call(-1, "new", [cls, args])


def set_irq(obj, handler, pin):
    if handler is None:
        _irqs.pop(obj, None)
    else:
        _irqs[obj] = [handler, pin]


def flash_write(path, n):
    # A write to a watched file: [bytes allowed, byte to invert or -1, 1: link cut]
    # (scalppen_hardware/twin/flashfaults.py).
    return call(-1, "flash_write", [path, n])


def uart_read(obj, n):
    buf = _uart_rx.get(obj)
    if not buf:
        return None
    data = bytes(buf[:n])
    _uart_rx[obj] = buf[n:]
    return data


def uart_any(obj):
    buf = _uart_rx.get(obj)
    return len(buf) if buf else 0
