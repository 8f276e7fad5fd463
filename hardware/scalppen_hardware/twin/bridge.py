"""The CPython end of the twin's bridge: the ESP32's C modules, as models, for a
MicroPython process.

Every object the firmware makes in the twin (``machine.Pin``, ``ADC``, ``I2C``,
``onewire.OneWire``, ``bluetooth.BLE``...) is made here too, from the same model
classes the in-process pen uses (:mod:`scalppen_hardware.upy`), on the same
:class:`~scalppen_hardware.virtual_pen_hw.VirtualPenHardware`. :meth:`Bridge.handle`
takes one message from the twin (see :mod:`scalppen_hardware.twin.wire`), applies
its queued outputs in order, advances virtual time when the firmware sleeps, and
answers with the snapshot of every input and the IRQs that came due.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import itertools
import json
import struct
from collections.abc import Callable
from typing import Any

from scalppen_hardware import upy
from scalppen_hardware.models.cartridge import crc8
from scalppen_hardware.twin import wire as w
from scalppen_hardware.twin.flashfaults import FlashFaults
from scalppen_hardware.upy import vclock

_BLE_OBJ = -2
#: ATT writes one message carries to the twin. A tick's IRQs all reach the
#: firmware before its tick goes on (on the pen NimBLE's task runs the handler
#: for each as it arrives, even while the main loop computes), but in messages of
#: at most this many writes, which the twin asks for one after the other: a flood
#: of writes without response as one message would take more of the twin's small
#: heap than a tick's work does (the pen's NimBLE keeps them in its own buffers).
WRITES_PER_MESSAGE = 12
#: The ESP32 port counts time from 2000-01-01 (Unix 946684800), as the RTC does cold.
_ESP32_EPOCH_US = vclock.RTC_COLD_EPOCH * 1_000_000


class TwinReset(Exception):
    """The firmware asked for a reset (``machine.reset()``): this process ends."""

    def __init__(self, cause: int) -> None:
        super().__init__(cause)
        self.cause = cause


def constants() -> dict[str, Any]:
    """The stand-ins' constants, taken from the models (one source)."""
    machine = upy.module("machine")
    bt = _bluetooth()
    pin = {k: getattr(machine.Pin, k) for k in dir(machine.Pin) if k.isupper()}
    adc = {k: getattr(machine.ADC, k) for k in dir(machine.ADC) if k.startswith("ATTN_")}
    reset = {k: getattr(machine, k) for k in ("PWRON_RESET", "HARD_RESET", "WDT_RESET",
                                              "DEEPSLEEP_RESET", "SOFT_RESET")}
    ble = {k: getattr(bt, k) for k in dir(bt) if k.startswith(("FLAG_", "_IRQ_"))}
    wake = {k: getattr(machine, k) for k in ("PIN_WAKE", "EXT0_WAKE", "EXT1_WAKE", "TIMER_WAKE",
                                             "TOUCHPAD_WAKE", "ULP_WAKE", "SLEEP", "DEEPSLEEP")}
    return {"Pin": pin, "ADC": adc, "reset": reset, "bluetooth": ble, "wake": wake}


def _bluetooth() -> Any:
    from scalppen_hardware.upy import bluetooth

    return bluetooth


class TwinPort:
    """The firmware end of the bluetooth model when the firmware is the twin.

    IRQs are queued and go out with the next reply; an IRQ whose answer the stack
    needs is awaited until the twin's handler has answered.
    """

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        self._ids = itertools.count(1)

    def irq(self, event: int, data: Any) -> None:
        self._bridge.queue_ble(event, data, 0)

    async def ask(self, event: int, data: Any) -> Any:
        ask_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._bridge.asks[ask_id] = fut
        self._bridge.queue_ble(event, data, ask_id)
        try:
            return await fut
        finally:
            self._bridge.asks.pop(ask_id, None)


class Bridge:
    """One boot of the twin: the model objects it made, and its pending IRQs.

    Args:
        hw: the pen's electronics for this boot (installed into the models).
        radio_ble: makes the bluetooth model for this boot (``bluetooth.BLE()``).
        on_display: unused hook kept for symmetry with the in-process pen.
    """

    def __init__(self, hw: Any, radio_ble: Callable[[], Any]) -> None:
        self.hw = hw
        self._radio_ble = radio_ble
        self.objs: list[Any] = []
        self.pins: list[Any] = []
        self.adcs: list[Any] = []
        self.onewires: list[Any] = []
        self.edges: dict[int, int] = {}
        self.ble: Any = None
        self.ble_events: list[list[Any]] = []
        self._due = 0  # of ble_events, how many the current tick still takes
        self.asks: dict[int, asyncio.Future[Any]] = {}
        self.uarts: dict[int, Any] = {}
        self.i2cs: dict[int, Any] = {}
        #: register reads the twin answers from the snapshot: (i2c obj, addr, memaddr, n)
        self.peeks: list[tuple[int, int, int, int]] = []
        self.messages = 0
        self.syncs = 0
        self.calls = 0
        #: Synchronous calls by method name (what costs round trips).
        self.call_names: collections.Counter[str] = collections.Counter()
        self.probes: dict[int, asyncio.Future[Any]] = {}
        self._probe_ids = itertools.count(1)
        self._probe_queue: list[list[Any]] = []
        self.wdt_started = False
        #: Ctrl-C came in on the console while the program ran: raise it in the twin.
        self.kbd_intr = False
        #: The plan of flash faults (the twin's writes to watched paths ask it).
        self.flash_faults: FlashFaults | None = None
        self._flash_watch: list[str] | None = None  # what the twin was told to watch
        upy.install(hw)
        self._machine = upy.module("machine")
        self._onewire = upy.module("onewire")

    # ---- the twin's messages -------------------------------------------------------------
    def take_ops(self, body: bytes) -> bytes:
        """Apply what the firmware did since its last message (pins, notifications,
        UART bytes) at once -> the message without them. A sync's ops are the
        tick's outputs: they happen when the firmware makes them, before the sleep
        that the twin paces to wall time (a notification leaves the pen then)."""
        _kind, _arg, ops_len = struct.unpack_from("<BII", body, 0)
        self._apply_ops(body[9:9 + ops_len])
        return body[:5] + b"\0\0\0\0" + body[9 + ops_len:]

    def handle(self, body: bytes) -> bytes:
        """One message from the twin -> the reply (raises TwinReset on machine.reset)."""
        self.messages += 1
        kind, arg, ops_len = struct.unpack_from("<BII", body, 0)
        p = 9
        ops = body[p:p + ops_len]
        tail = body[p + ops_len:]
        self._apply_ops(ops)
        result: Any = None
        error: Any = None
        if kind == w.K_SYNC:
            self.syncs += 1
            if arg > 0:
                self.hw.advance(arg)
        elif kind == w.K_CALL:
            self.calls += 1
            obj, name, args = json.loads(tail)
            self.call_names[name] += 1
            try:
                result = self._call(int(obj), str(name), list(args))
            except TwinReset:
                raise
            except OSError as exc:
                error = ["OSError", exc.errno or errno.EIO]
            except (ValueError, TypeError) as exc:
                error = [type(exc).__name__, str(exc)]
        elif kind == w.K_HELLO:
            result = self.hello()
        else:
            raise ValueError(f"unknown message kind {kind}")
        return self._reply(kind, result, error)

    def hello(self) -> dict[str, Any]:
        hw = self.hw
        return {"const": constants(), "reset_cause": int(hw.reset_cause),
                "wake_reason": int(hw.wake_reason),
                "unique_id": bytes(hw.unique_id).hex(), "cpu_hz": int(hw.cpu_hz),
                "ticks_period": vclock.TICKS_PERIOD}

    def _reply(self, kind: int, result: Any, error: Any) -> bytes:
        clock = self.hw.clock
        tail: dict[str, Any] = {}
        edges: list[tuple[int, int]] = []
        if kind == w.K_SYNC:
            if self.edges:
                edges = [(obj, min(n, 0xFFFF)) for obj, n in self.edges.items() if n]
                self.edges = dict.fromkeys(self.edges, 0)
            self._due = len(self.ble_events)  # the IRQs that came before this tick
            if self._due:
                tail["ble"], more = self._ble_chunk()
                if more:
                    tail["more"] = True
            rx = self._uart_input()
            if rx:
                tail["uart"] = rx
            if self._probe_queue:
                tail["probe"] = self._probe_queue
                self._probe_queue = []
        if self.kbd_intr:
            self.kbd_intr = False
            tail["kbd_intr"] = True
        if self.flash_faults is not None:
            watch = self.flash_faults.watched()
            if watch != self._flash_watch:  # the plan changed: tell the twin
                self._flash_watch = watch
                tail["flash"] = watch
        if result is not None:
            tail["result"] = result
        if error is not None:
            tail["error"] = error
        levels = bytes((p.value() or 0) & 1 for p in self.pins)
        adc = [(a.read_uv(), a.read()) for a in self.adcs]
        present = bytes(1 if ow._bus.present() else 0 for ow in self.onewires)
        epoch_us = clock.epoch_us() - _ESP32_EPOCH_US
        acks = [(obj, addr, 1 if bus._bus.get(addr) is not None else 0)
                for obj, bus in self.i2cs.items() for addr in dict.keys(bus._bus)]
        peeks = [self._peek(*k) for k in self.peeks]
        return w.encode_reply(clock.ticks_ms(), clock.ticks_us(), epoch_us, levels, adc,
                              present, edges, tail or None, acks, peeks)

    def _ble_chunk(self) -> tuple[list[list[Any]], bool]:
        # The next of this tick's IRQs, in order, up to WRITES_PER_MESSAGE writes
        # -> (them, whether more of this tick's are left).
        writes = 0
        n = 0
        while n < self._due:
            if self.ble_events[n][0] == _bluetooth()._IRQ_GATTS_WRITE:
                if writes == WRITES_PER_MESSAGE:
                    break
                writes += 1
            n += 1
        chunk, self.ble_events = self.ble_events[:n], self.ble_events[n:]
        self._due -= n
        return chunk, self._due > 0

    def _peek(self, obj: int, addr: int, memaddr: int, n: int) -> bytes | None:
        dev = self.i2cs[obj]._bus.get(addr)
        return None if dev is None else dev.peek_mem(memaddr, n)

    def _uart_input(self) -> dict[str, str]:
        rx: dict[str, str] = {}
        for obj, uart in self.uarts.items():
            data = uart.read(4096)
            if data:
                rx[str(obj)] = bytes(data).hex()
        return rx

    # ---- outputs ------------------------------------------------------------------------------
    def _apply_ops(self, ops: bytes) -> None:
        if not ops:
            return
        objs = self.objs
        for op in w.decode_ops(ops):
            code = op[0]
            if code == w.OP_PIN:
                objs[op[1]].value(op[2])
            elif code == w.OP_PWM:
                objs[op[1]].duty_u16(op[2])
            elif code == w.OP_WDT_FEED:
                self.hw.wdt_feed()
            elif code == w.OP_NOTIFY:
                self._notify(op[1], op[2], op[3])
            elif code == w.OP_UART:
                objs[op[1]].deliver(op[2])  # the twin's UART already waited as the ESP32's
            elif code == w.OP_OW_WRITE:
                objs[op[1]].write(op[2])
            elif code == w.OP_I2C_WRITE:
                with contextlib.suppress(OSError):  # the twin saw the ack in the snapshot
                    objs[op[1]].writeto(op[2], op[3])
            elif code == w.OP_I2C_READ:
                with contextlib.suppress(OSError):  # the transaction, its data already served
                    objs[op[1]].readfrom_mem(op[2], op[3], op[4])
            elif code == w.OP_OW_RESET:
                objs[op[1]].reset()
            elif code == w.OP_JSON:
                self._json_op(op[1][0], w.unwire(op[1][1]))

    def _ble_op(self, fn: Callable[[Any], Any]) -> None:
        # A radio operation whose error the firmware cannot see any more (it was
        # queued); NimBLE would have raised it at the call. The stand-in checks
        # the connection itself, so what is left is a link that dropped since.
        if self.ble is None:
            return
        with contextlib.suppress(OSError):
            fn(self.ble)

    def _notify(self, conn: int, handle: int, data: bytes) -> None:
        if self.ble is not None:
            with contextlib.suppress(OSError):  # the link dropped since: see _ble_op
                self.ble.gatts_notify(conn, handle, data)

    def _json_op(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "answer":
            ask_id, value = args
            fut = self.asks.get(int(ask_id))
            if fut is not None and not fut.done():
                fut.set_result(value)
            return
        if name == "probe":
            probe_id, value = args
            pfut = self.probes.pop(int(probe_id), None)
            if pfut is not None and not pfut.done():
                pfut.set_result(value)
            return
        if name == "gap_advertise":
            interval, adv, resp, connectable = args
            self._ble_op(lambda b: b.gap_advertise(interval, adv, resp_data=resp,
                                                   connectable=connectable))
        elif name == "gap_disconnect":
            self._ble_op(lambda b: b.gap_disconnect(args[0]))
        elif name == "gap_passkey":
            self._ble_op(lambda b: b.gap_passkey(*args))
        elif name == "gap_pair":
            self._ble_op(lambda b: b.gap_pair(args[0]))
        elif name == "gattc_exchange_mtu":
            self._ble_op(lambda b: b.gattc_exchange_mtu(args[0]))
        elif name == "gatts_write":
            self._ble_op(lambda b: b.gatts_write(args[0], args[1], args[2]))
        elif name == "gatts_indicate":
            self._ble_op(lambda b: b.gatts_indicate(*args))
        else:
            raise ValueError(f"unknown bridge operation {name!r}")

    # ---- calls ----------------------------------------------------------------------------------
    def _register(self, obj: Any, slots: list[Any] | None) -> list[int]:
        self.objs.append(obj)
        slot = -1
        if slots is not None:
            slots.append(obj)
            slot = len(slots) - 1
        return [len(self.objs) - 1, slot]

    def _call(self, obj: int, name: str, args: list[Any]) -> Any:
        m = self._machine
        if obj == _BLE_OBJ:
            return self._ble_call(name, args)
        if obj >= 0:
            return self._obj_call(self.objs[obj], obj, name, args)
        if name == "snapshot":
            return None
        if name == "irqs":  # the rest of this tick's IRQs (WRITES_PER_MESSAGE)
            chunk, more = self._ble_chunk()
            return {"ble": chunk, "more": more}
        if name == "new":
            cls, a = args
            if cls == "Pin":
                gpio, mode, pull, value = a
                return self._register(m.Pin(gpio, mode, pull, value=value), self.pins)
            if cls == "ADC":
                return self._register(m.ADC(a[0], atten=a[1]), self.adcs)
            if cls == "PWM":
                gpio, freq, duty, duty_u16 = a
                return self._register(m.PWM(gpio, freq=freq, duty=duty, duty_u16=duty_u16), None)
            if cls == "I2C":
                i2c_id, scl, sda, freq = a
                ids = self._register(m.I2C(i2c_id, scl=scl, sda=sda, freq=freq), None)
                self.i2cs[ids[0]] = self.objs[ids[0]]
                return ids
            if cls == "UART":
                ids = self._register(m.UART(a[0], baudrate=a[1]), None)
                self.uarts[ids[0]] = self.objs[ids[0]]
                return ids
            if cls == "OneWire":
                return self._register(self._onewire.OneWire(m.Pin(a[0])), self.onewires)
            raise ValueError(f"no model of {cls}")
        if name == "wdt":
            m.WDT(args[0], timeout=args[1])
            self.wdt_started = True
            return None
        if name == "rtc_get":
            return list(m.RTC().datetime())
        if name == "rtc_set":
            m.RTC().datetime(tuple(args[0]))
            return None
        if name == "gmtime":
            return list(upy.module("vclock").gmtime(args[0]))
        if name == "mktime":
            return upy.module("vclock").mktime(tuple(args[0]))
        if name == "reset":
            raise TwinReset(self.hw.request_reset(int(args[0])))
        if name == "deepsleep":  # machine.deepsleep(): this process ends, the pen sleeps
            raise TwinReset(self.hw.enter_deepsleep(None if args[0] is None else int(args[0])))
        if name in ("wake_on_ext0", "wake_on_ext1"):
            level = None if args[1] is None else bool(args[1])
            getattr(upy.module("esp32"), name)(args[0], level)
            return None
        if name == "rtc_memory":
            rtc = m.RTC()
            if args[0] is None:
                return bytes(rtc.memory() or b"").hex()
            rtc.memory(bytes.fromhex(args[0]))
            return None
        if name == "flash_write":  # a write to a watched file (flashfaults.py)
            if self.flash_faults is None:
                return [int(args[1]), -1, 0]
            return self.flash_faults.write(str(args[0]), int(args[1]))
        if name == "uuid":
            bt = _bluetooth()
            value = w.unwire(args[0])
            u = bt.UUID(value)
            return [bytes(u).hex(), repr(u)]
        if name == "ble":
            self.ble = self._radio_ble()
            return None
        raise ValueError(f"no call {name!r}")

    def _obj_call(self, o: Any, obj: int, name: str, args: list[Any]) -> Any:
        if name == "irq":
            on, trigger = args
            if on:
                self.edges.setdefault(obj, 0)
                o.irq(handler=lambda _p, k=obj: self._edge(k), trigger=trigger)
            else:
                self.edges.pop(obj, None)
                o.irq(handler=None)
            return None
        if name == "init":
            if isinstance(o, self._machine.PWM):
                freq, duty, duty_u16 = args
                o.init(freq=freq, duty=duty, duty_u16=duty_u16)
            else:
                mode, pull, value = args
                o.init(mode, pull, value=value)
            return None
        if name in ("writeto", "writeto_mem"):
            data = bytes.fromhex(args[-1])
            if name == "writeto":
                return o.writeto(args[0], data)
            o.writeto_mem(args[0], args[1], data)
            return None
        if name == "readfrom":
            return bytes(o.readfrom(args[0], args[1])).hex()
        if name == "readfrom_mem":
            hexdata = bytes(o.readfrom_mem(args[0], args[1], args[2])).hex()
            dev = o._bus.get(args[0])
            slot = -1
            if hasattr(dev, "peek_mem"):  # reads without side effects: snapshot them
                key = (obj, args[0], args[1], args[2])
                if key not in self.peeks:
                    self.peeks.append(key)
                slot = self.peeks.index(key)
            return [hexdata, slot]
        if name == "scan":
            if isinstance(o, self._onewire.OneWire):
                return [bytes(r).hex() for r in o.scan()]
            return o.scan()
        if name == "read":  # 1-Wire bytes
            buf = bytearray(args[0])
            o.readinto(buf)
            return list(buf)
        if name == "crc8":
            return crc8(bytes.fromhex(args[0]))
        if name in ("atten", "freq", "deinit"):
            return getattr(o, name)(*args)
        raise ValueError(f"no call {name!r} on {type(o).__name__}")

    def _edge(self, obj: int) -> None:
        self.edges[obj] = self.edges.get(obj, 0) + 1

    def _ble_call(self, name: str, args: list[Any]) -> Any:
        b = self.ble
        if b is None:
            raise OSError(errno.ENODEV)
        a = w.unwire(args)
        if name == "active":
            return b.active(*a)
        if name == "config_get":
            return w.wire(b.config(*a))
        if name == "config_set":
            b.config(**a[0])
            return None
        if name == "gatts_register_services":
            bt = _bluetooth()
            services = a[0]
            defs = []
            for svc in services:
                chars = []
                for ch in svc[1]:
                    descs = tuple((bt.UUID(d[0]), d[1]) for d in (ch[2] if len(ch) > 2 else ()))
                    chars.append((bt.UUID(ch[0]), ch[1], descs) if descs else (bt.UUID(ch[0]),
                                                                                 ch[1]))
                defs.append((bt.UUID(svc[0]), tuple(chars)))
            return [list(h) for h in b.gatts_register_services(tuple(defs))]
        if name == "gatts_set_buffer":
            b.gatts_set_buffer(*a)
            return None
        if name == "gatts_read":
            return w.wire(b.gatts_read(a[0]))
        raise ValueError(f"no bluetooth call {name!r}")

    # ---- IRQs and probes ---------------------------------------------------------------
    def queue_ble(self, event: int, data: Any, ask_id: int) -> None:
        written = ""
        if event == _bluetooth()._IRQ_GATTS_WRITE and self.ble is not None:
            attr = self.ble._attrs.get(data[1])
            written = bytes(attr.value).hex() if attr is not None else ""
        self.ble_events.append([event, w.wire(data), ask_id, written])

    def probe(self, expr: str, mode: str = "eval") -> asyncio.Future[Any]:
        """Evaluate ``expr`` (or exec statements) in the running firmware at the next
        tick boundary."""
        probe_id = next(self._probe_ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.probes[probe_id] = fut
        self._probe_queue.append([probe_id, expr, mode])
        return fut

    def close(self) -> None:
        for fut in [*self.asks.values(), *self.probes.values()]:
            if not fut.done():
                fut.cancel()
