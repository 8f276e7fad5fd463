"""The bridge's message layout between the twin (a MicroPython process) and CPython.

One message each way per control tick. All integers little-endian.

Twin -> CPython::

    u32 body_len | u8 kind | u32 arg | u32 ops_len | ops | tail

``kind``: :data:`K_HELLO` (once, at connect), :data:`K_SYNC` (the firmware sleeps
``arg`` ms: apply the ops, advance virtual time, answer with a snapshot) or
:data:`K_CALL` (apply the ops, then call the model: ``tail`` is the JSON
``[object_id, method, args]``). ``ops`` is a run of outputs queued since the last
message, each ``u8 op`` then its fields (see ``OP_*``).

CPython -> twin::

    u32 body_len | u32 ticks_ms | u32 ticks_us | i64 epoch_us
    | u8 n | n x u8 pin level | u8 n | n x (i32 uv, u16 code) ADC
    | u8 n | n x u8 1-Wire presence | u8 n | n x (u16 pin object, u16 rising edges)
    | u8 n | n x (u8 I2C object, u8 address, u8 acks) | u8 n | n x (u8 len, data) peeks
    | JSON tail (absent when empty): {"ble": [...], "uart": {...}, "result": ..., "error": ...}

The MicroPython side of this layout is ``mpy/_twin.py``; a test keeps its
constants equal to the ones here.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

K_HELLO: Final = 1
K_SYNC: Final = 2
K_CALL: Final = 3

OP_PIN: Final = 1  # u8 obj, u8 level
OP_PWM: Final = 2  # u8 obj, u16 duty_u16
OP_WDT_FEED: Final = 3
OP_NOTIFY: Final = 4  # u16 conn, u16 value handle, u16 len, data
OP_UART: Final = 5  # u8 obj, u16 len, data
OP_OW_WRITE: Final = 6  # u8 obj, u16 len, data
OP_OW_RESET: Final = 7  # u8 obj
OP_JSON: Final = 8  # u16 len, JSON [name, args]
OP_I2C_WRITE: Final = 9  # u8 obj, u8 addr, u16 len, data (memaddr first for writeto_mem)
OP_I2C_READ: Final = 10  # u8 obj, u8 addr, u8 memaddr, u8 n (a read served from a peek)

HEAD: Final = struct.Struct("<IBII")
SNAP: Final = struct.Struct("<IIq")


def encode_reply(
    ticks_ms: int,
    ticks_us: int,
    epoch_us: int,
    levels: bytes,
    adc: list[tuple[int, int]],
    present: bytes,
    edges: list[tuple[int, int]],
    tail: dict[str, Any] | None,
    acks: list[tuple[int, int, int]] = (),  # type: ignore[assignment]
    peeks: list[bytes | None] = (),  # type: ignore[assignment]
) -> bytes:
    parts = [SNAP.pack(ticks_ms, ticks_us, epoch_us), bytes((len(levels),)), levels,
             bytes((len(adc),))]
    parts.extend(struct.pack("<iH", uv, code) for uv, code in adc)
    parts.append(bytes((len(present),)))
    parts.append(present)
    parts.append(bytes((len(edges),)))
    parts.extend(struct.pack("<HH", obj, n) for obj, n in edges)
    parts.append(bytes((len(acks),)))
    parts.extend(bytes(a) for a in acks)
    parts.append(bytes((len(peeks),)))
    for data in peeks:
        parts.append(b"\xff" if data is None else bytes((len(data),)) + data)
    if tail:
        parts.append(json.dumps(tail, separators=(",", ":")).encode())
    body = b"".join(parts)
    return struct.pack("<I", len(body)) + body


def decode_ops(ops: bytes) -> list[tuple[Any, ...]]:
    """The ops of one message, in order, as tuples ``(op, *fields)``."""
    out: list[tuple[Any, ...]] = []
    p = 0
    n = len(ops)
    while p < n:
        op = ops[p]
        p += 1
        if op == OP_PIN:
            out.append((op, ops[p], ops[p + 1]))
            p += 2
        elif op == OP_PWM:
            out.append((op, ops[p], struct.unpack_from("<H", ops, p + 1)[0]))
            p += 3
        elif op == OP_WDT_FEED:
            out.append((op,))
        elif op == OP_NOTIFY:
            conn, handle, size = struct.unpack_from("<HHH", ops, p)
            p += 6
            out.append((op, conn, handle, bytes(ops[p:p + size])))
            p += size
        elif op in (OP_UART, OP_OW_WRITE):
            obj, size = struct.unpack_from("<BH", ops, p)
            p += 3
            out.append((op, obj, bytes(ops[p:p + size])))
            p += size
        elif op == OP_OW_RESET:
            out.append((op, ops[p]))
            p += 1
        elif op == OP_I2C_WRITE:
            obj, addr, size = struct.unpack_from("<BBH", ops, p)
            p += 4
            out.append((op, obj, addr, bytes(ops[p:p + size])))
            p += size
        elif op == OP_I2C_READ:
            out.append((op, ops[p], ops[p + 1], ops[p + 2], ops[p + 3]))
            p += 4
        elif op == OP_JSON:
            size = struct.unpack_from("<H", ops, p)[0]
            p += 2
            out.append((op, json.loads(ops[p:p + size])))
            p += size
        else:
            raise ValueError(f"unknown bridge op {op} at byte {p - 1}")
    return out


def wire(value: Any) -> Any:
    """A value for the twin: bytes become ``{"bytes": hex}``, tuples lists."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (tuple, list)):
        return [wire(v) for v in value]
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    return value


def unwire(value: Any) -> Any:
    """A value from the twin: ``{"bytes": hex}`` becomes bytes, lists tuples."""
    if isinstance(value, dict):
        if set(value) == {"bytes"}:
            return bytes.fromhex(value["bytes"])
        return {k: unwire(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(unwire(v) for v in value)
    return value
