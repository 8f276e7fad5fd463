# The twin's side of the bridge (MicroPython code, not firmware): one batched
# message per tick between this MicroPython process and the CPython process that
# holds the pen's body, its radio and the models of the ESP32's C modules.
#
# Outputs (pin writes, PWM duty, WDT feeds, notifications, UART and 1-Wire writes,
# answers to IRQs) are queued in `_ops` and sent with the next message. Reads are
# answered from the snapshot the last reply carried, which the CPython side took
# after it applied every queued output and advanced virtual time. A read that
# follows a write in the same batch could depend on it, so it flushes first
# (`_dirty`). Transactions whose answer depends on the device (I2C, 1-Wire reads,
# construction of objects) are synchronous calls.
#
# Message layout: see scalppen_hardware/twin/wire.py (the CPython side), whose
# tables tests/twin/test_wire_tables.py keeps equal to the constants below.
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

_sock = None
_ops = bytearray()
_dirty = False

ticks_ms = 0
ticks_us = 0
epoch_us = 0
levels = b""
adc = []
present = b""
i2c_acks = {}  # (I2C object, address) -> the device acks (at the snapshot)
peeks = []  # side-effect-free register reads, fresh at the snapshot
i2c_dirty = set()  # (I2C object, address) written since the snapshot
info = {}

_objs = []  # MicroPython-side objects by id (pins with IRQs, UARTs, the BLE)
_irqs = {}  # pin object id -> [handler, pin, hard]
_uart_rx = {}  # uart object id -> bytearray
ble = None  # the bluetooth.BLE stand-in, once made


def connect(path):
    global _sock, info
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(struct.pack("<H", socket.AF_UNIX) + path.encode() + b"\x00")
    _sock = s
    info = _exchange(K_HELLO, 0, b"")


def _read_exactly(n):
    buf = bytearray(n)
    mv = memoryview(buf)
    got = 0
    while got < n:
        k = _sock.readinto(mv[got:])
        if not k:
            raise OSError(104)  # the CPython side went away: this pen is gone
        got += k
    return buf


def _read_msg():
    n = struct.unpack("<I", _read_exactly(4))[0]
    return _read_exactly(n)


def _exchange(kind, arg, tail):
    global _ops, _dirty
    _sock.write(struct.pack("<IBII", 9 + len(_ops) + len(tail), kind, arg, len(_ops)))
    if _ops:
        _sock.write(_ops)
    if tail:
        _sock.write(tail)
    _ops = bytearray()
    _dirty = False
    return _apply(_read_msg())


def flush():
    # Send what is queued now (the program ends: its last outputs must reach the pins).
    if _ops:
        call(-1, "snapshot")


def _apply(buf):
    # A reply: the snapshot, then the JSON tail (IRQs, UART input, the call's result).
    global ticks_ms, ticks_us, epoch_us, levels, adc, present, i2c_acks, peeks
    ticks_ms, ticks_us, epoch_us = struct.unpack_from(_HDR, buf, 0)
    p = 16
    n = buf[p]
    levels = bytes(buf[p + 1:p + 1 + n])
    p += 1 + n
    n = buf[p]
    p += 1
    adc = [struct.unpack_from("<iH", buf, p + 6 * i) for i in range(n)]
    p += 6 * n
    n = buf[p]
    present = bytes(buf[p + 1:p + 1 + n])
    p += 1 + n
    n = buf[p]
    p += 1
    edges = []
    for i in range(n):
        edges.append(struct.unpack_from("<HH", buf, p + 4 * i))
    p += 4 * n
    n = buf[p]
    p += 1
    acks = {}
    for i in range(n):
        acks[(buf[p], buf[p + 1])] = buf[p + 2] == 1
        p += 3
    i2c_acks = acks
    n = buf[p]
    p += 1
    pk = []
    for i in range(n):
        k = buf[p]
        if k == 0xFF:
            pk.append(None)
            p += 1
        else:
            pk.append(bytes(buf[p + 1:p + 1 + k]))
            p += 1 + k
    peeks = pk
    i2c_dirty.clear()
    tail = None
    if p < len(buf):
        tail = json.loads(bytes(buf[p:]))
    for obj, count in edges:
        _fire_pin(obj, count)
    if tail is None:
        return None
    rx = tail.get("uart")
    if rx:
        for k in rx:
            _uart_rx.setdefault(int(k), bytearray()).extend(bytes.fromhex(rx[k]))
    events = tail.get("ble")
    if events and ble is not None:
        for ev in events:
            ble._deliver(ev)
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


def push(op, dirty=True):
    # Queue an output. `dirty`: it may change what a pin or ADC reads this tick
    # (register reads and 1-Wire traffic cannot).
    global _dirty
    _ops.extend(op)
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
