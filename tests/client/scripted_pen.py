"""A scripted pen for the client tests, speaking through the FIRMWARE codec.

It decodes requests with ``pen.wire`` (the generated MicroPython codec) and
answers with frames built by ``pen.wire`` too, so the host's construct codec is
checked against the firmware's on every exchange. Transport glue (loopback, pty,
fake BLE backend) lives in the tests; :meth:`ScriptedPen.handle` is pure.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

from pen import wire  # noqa: E402

from scalppen.transports.loopback import LoopbackTransport  # noqa: E402

LIMITS: dict[str, int] = {
    "abs_depth_um": 2500, "ceiling_um": 2000, "grid_um": 250, "min_depth_um": 250,
    "depth_tol_um": 150, "rate_min_sps": 80, "rate_max_sps": 150, "session_cap_s": 1800,
    "session_warn_s": 1200, "battery_reserve_pct": 20, "speed_levels": 5,
    "standalone_depth_um": 500, "standalone_s": 600, "patient_slots": 0,
}

STATUS: dict[str, int] = {
    "state": wire.S_IDLE, "fault": 0, "clock": 1_795_000_000, "depth_set_um": 500,
    "depth_actual_um": 500, "speed_level": 2, "elapsed_ms": 0, "strokes": 0,
    "battery_pct": 81, "charging": 0, "contact": 1, "cartridge": 1, "permit_depth_um": 0,
    "permit_s": 0, "last_session_end": 0, "last_session_depth_um": 0, "lockout_until": 0, "resume_left_s": 0,
}

WEAR: dict[str, Any] = {
    "cartridge": 1, "cart_id": bytes.fromhex("2d00000a1b2c3d4e"), "needles": 12,
    "strokes_used": 70200, "strokes_rated": 100000, "first_use": 1795000000,
    "expiry": 1850000000, "cart_state": 1, "hp_strokes": 702000, "hp_punctures": 8424000,
    "hp_sessions": 10, "hp_run_s": 6000, "hp_first_session": 1790000000,
}

Reply = tuple[int, int, dict[str, Any]]
Script = Callable[[int, dict[str, Any]], list[Reply] | None]


def make_record(seq: int) -> dict[str, int]:
    """A plausible log record numbered ``seq``."""
    return {"seq": seq, "time": 1_795_000_000 + seq, "kind": 1 + seq % 14, "flags": 0,
            "code": 0, "depth_um": 500, "a": seq * 3, "b": seq * 7}


class ScriptedPen:
    """Answers requests like a pen, with knobs for the failure cases.

    Attributes:
        log_first: oldest record held (older ones "rotated out").
        log_last: newest record (``log_first - 1`` when empty).
        missing: seqs left out of pages (a damaged log).
        silent: request type -> how many of them to ignore (-1: all).
        nacks: request type -> (error, detail) answered instead.
        hold: request types whose answers are kept in :attr:`held`.
        scripts: request type -> callable(seq, fields) returning replies or None.
        received: every decoded request, as (type, seq, fields).
        counts: requests per type.
        proto_version: what INFO reports.
    """

    def __init__(self) -> None:
        self.log_first = 1
        self.log_last = 0
        self.missing: set[int] = set()
        self.silent: dict[int, int] = {}
        self.nacks: dict[int, tuple[int, int]] = {}
        self.hold: set[int] = set()
        self.held: list[bytes] = []
        self.scripts: dict[int, Script] = {}
        self.received: list[tuple[int, int, dict[str, Any]]] = []
        self.counts: Counter[int] = Counter()
        self.proto_version = wire.PROTOCOL_VERSION
        self.hello_seen = False
        self.status = dict(STATUS)
        self.event_seq = 1000
        self.errors: list[Exception] = []

    # -- pure part ---------------------------------------------------------------

    def handle(self, frame: bytes) -> list[bytes]:
        """Decode one request frame; return the answer frames to send now."""
        try:
            msg_type, seq, fields = wire.decode(frame)
        except wire.WireError as exc:
            self.errors.append(exc)
            return []
        self.received.append((msg_type, seq, fields))
        self.counts[msg_type] += 1
        left = self.silent.get(msg_type, 0)
        if left:
            self.silent[msg_type] = left - 1 if left > 0 else left
            return []
        replies = self._answer(msg_type, seq, fields)
        out = [wire.encode(t, s, f) for t, s, f in replies]
        if msg_type in self.hold:
            self.held.extend(out)
            return []
        return out

    def _answer(self, msg_type: int, seq: int, fields: dict[str, Any]) -> list[Reply]:
        script = self.scripts.get(msg_type)
        if script is not None:
            scripted = script(seq, fields)
            if scripted is not None:
                return scripted
        if msg_type in self.nacks:
            error, detail = self.nacks[msg_type]
            return [(wire.T_NACK, seq, {"req_type": msg_type, "error": error, "detail": detail})]
        if msg_type == wire.T_HELLO:
            self.hello_seen = True
            return [(wire.T_INFO, seq, self.info())]
        if msg_type == wire.T_GET_STATUS:
            return [(wire.T_STATUS, seq, dict(self.status))]
        if msg_type == wire.T_GET_WEAR:
            return [(wire.T_WEAR, seq, dict(WEAR))]
        if msg_type == wire.T_LOG_READ:
            return [(wire.T_LOG_PAGE, seq, self.page(fields["from_seq"], fields["max_records"]))]
        return [(wire.T_ACK, seq, {"req_type": msg_type})]

    def info(self) -> dict[str, Any]:
        return {
            "proto_version": self.proto_version, "caps": 0x3F, "max_frame": wire.MAX_FRAME,
            "model": "SP-1", "serial": "SP1-000042", "fw_version": "1.0.0", "hw_rev": "B", "profile": "development",
            "key_set": 0, "limits": dict(LIMITS), "update": 0, "update_version": "",
        }

    def page(self, from_seq: int, max_records: int) -> dict[str, Any]:
        start = max(from_seq, self.log_first)
        seqs = [s for s in range(start, self.log_last + 1) if s not in self.missing]
        return {
            "first_seq": self.log_first,
            "last_seq": self.log_last,
            "records": [make_record(s) for s in seqs[:max_records]],
        }

    def event(self, msg_type: int, fields: dict[str, Any]) -> bytes:
        """An event frame (numbered by the pen's own counter)."""
        self.event_seq += 1
        return wire.encode(msg_type, self.event_seq, fields)


async def serve_loopback(pen: ScriptedPen, end: LoopbackTransport) -> None:
    """Answer requests arriving at ``end`` until the link goes down."""
    await end.connect()
    while True:
        try:
            frame = await end.recv_frame()
        except Exception:
            return
        for out in pen.handle(frame):
            await end.send_frame(out)
        await asyncio.sleep(0)


def run(coro: Any, timeout: float = 10.0) -> Any:
    """Run ``coro`` to completion on a fresh event loop, bounded by ``timeout``."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
