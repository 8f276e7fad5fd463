# MicroPython's `bluetooth` module (the ESP32 port, NimBLE) inside the twin
# (MicroPython code, not firmware). The stack is the CPython model
# (scalppen_hardware/upy/bluetooth.py over bumble); this module moves calls there
# and delivers its IRQs to the firmware's handler at the tick boundary, in order.
# An IRQ whose return value the stack needs (_IRQ_GET_SECRET, _IRQ_SET_SECRET,
# _IRQ_GATTS_READ_REQUEST) carries an id; the handler's answer goes back with
# the next message. A _IRQ_GATTS_WRITE carries the value written, which
# gatts_read() returns while that IRQ is handled, as NimBLE's synchronous events do.
import errno
import struct

import _twin

_C = _twin.info["const"]["bluetooth"]
# What the module exports on the ESP32 (extmod/modbluetooth.c): BLE, UUID and five
# flags; the IRQ numbers are the application's own constants.
for _k in ("FLAG_READ", "FLAG_WRITE", "FLAG_NOTIFY", "FLAG_INDICATE", "FLAG_WRITE_NO_RESPONSE"):
    globals()[_k] = _C[_k]

_IRQ_GATTS_WRITE = _C["_IRQ_GATTS_WRITE"]
_ASKED = (_C["_IRQ_GET_SECRET"], _C["_IRQ_SET_SECRET"], _C["_IRQ_GATTS_READ_REQUEST"])


class UUID:
    def __init__(self, value):
        if isinstance(value, UUID):
            self._b = value._b
            self._r = value._r
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = {"bytes": bytes(value).hex()}
        raw, self._r = _twin.call(-1, "uuid", [value])
        self._b = bytes.fromhex(raw)

    def __iter__(self):
        return iter(self._b)

    def __len__(self):
        return len(self._b)

    def __eq__(self, other):
        return isinstance(other, UUID) and self._b == other._b

    def __hash__(self):
        return hash(self._b)

    def __repr__(self):
        return self._r


def _wire(v):
    # bytes-like values cross the bridge as hex, tagged
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, UUID):
        return {"bytes": v._b.hex()}
    if isinstance(v, (tuple, list)):
        return [_wire(x) for x in v]
    return v


def _unwire(v):
    if isinstance(v, dict):
        return bytes.fromhex(v["bytes"])
    if isinstance(v, list):
        return tuple(_unwire(x) for x in v)
    return v


class BLE:
    _inst = None

    def __new__(cls):
        if BLE._inst is None:
            o = object.__new__(cls)
            o._handler = None
            o._values = {}
            o._conns = []
            _twin.call(-1, "ble")
            BLE._inst = o
            _twin.ble = o
        return BLE._inst

    def __init__(self):
        pass

    def _call(self, name, args=()):
        return _twin.call(-2, name, _wire(list(args)))

    def active(self, flag=None):
        if flag is None:
            return self._call("active")
        return self._call("active", [bool(flag)])

    def config(self, *args, **kw):
        if args:
            return _unwire(self._call("config_get", list(args)))
        self._call("config_set", [_wire(kw)])
        return None

    def irq(self, handler):
        self._handler = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        _twin.push_json(["gap_advertise", _wire([interval_us, adv_data, resp_data, connectable])])

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self._conns:
            return False
        _twin.push_json(["gap_disconnect", [conn_handle]])
        return True

    def gap_passkey(self, conn_handle, action, passkey):
        _twin.push_json(["gap_passkey", [conn_handle, action, passkey]])

    def gap_pair(self, conn_handle):
        _twin.push_json(["gap_pair", [conn_handle]])

    def gattc_exchange_mtu(self, conn_handle):
        if conn_handle not in self._conns:
            raise OSError(errno.ENOTCONN)
        _twin.push_json(["gattc_exchange_mtu", [conn_handle]])

    def gatts_register_services(self, services):
        result = self._call("gatts_register_services", [services])
        return tuple(tuple(h) for h in result)

    def gatts_set_buffer(self, value_handle, len, append=False):
        if append:
            raise OSError(95)  # EOPNOTSUPP: append mode is not modelled in the twin
        self._call("gatts_set_buffer", [value_handle, len, False])

    def gatts_read(self, value_handle):
        v = self._values.get(value_handle)
        if v is None:
            v = _unwire(self._call("gatts_read", [value_handle]))
            self._values[value_handle] = v
        return v

    def gatts_write(self, value_handle, data, send_update=False):
        data = bytes(data)
        self._values[value_handle] = data
        _twin.push_json(["gatts_write", [value_handle, {"bytes": data.hex()}, bool(send_update)]])

    def gatts_notify(self, conn_handle, value_handle, data=None):
        if conn_handle not in self._conns:
            raise OSError(errno.ENOTCONN)  # as NimBLE's ble_gatts_notify_custom
        if data is None:
            data = self._values.get(value_handle, b"")
        data = bytes(data)
        _twin.push(struct.pack("<BHHH", _twin.OP_NOTIFY, conn_handle, value_handle, len(data))
                   + data, False)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        if conn_handle not in self._conns:
            raise OSError(errno.ENOTCONN)
        _twin.push_json(["gatts_indicate", _wire([conn_handle, value_handle, data])])

    def _deliver(self, ev):
        # ev: [event, data, ask_id, written_value]
        event = ev[0]
        data = _unwire(ev[1])
        if event == _C["_IRQ_CENTRAL_CONNECT"]:
            self._conns.append(data[0])
        elif event == _C["_IRQ_CENTRAL_DISCONNECT"]:
            if data[0] in self._conns:
                self._conns.remove(data[0])
        elif event == _IRQ_GATTS_WRITE:
            self._values[data[1]] = bytes.fromhex(ev[3])
        result = None
        h = self._handler
        if h is not None:
            try:
                result = h(event, data)
            except Exception as e:
                # modbluetooth.c invoke_irq_handler_run_protected: printed, and the
                # handler is disabled
                import sys
                print("Unhandled exception in IRQ callback handler")
                sys.print_exception(e)
                self._handler = None
                result = None
        if event in _ASKED:
            _twin.push_json(["answer", [ev[2], _wire(result)]])
