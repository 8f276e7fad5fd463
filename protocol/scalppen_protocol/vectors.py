"""Golden vectors: message fields and their exact bytes, as JSON in ``protocol/vectors/``.

Both codecs (host construct, firmware generated) are checked against these files.
Bytes values are written as ``{"hex": "..."}``. Regenerate with
``python -m scalppen_protocol.vectors`` only when the protocol version changes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path
from typing import Any

from scalppen_protocol.codec import encode_frame
from scalppen_protocol.codes import LOG_ACK_TAG_PREFIX, TIME_TAG_PREFIX, MsgType

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"

_LIMITS = {
    "abs_depth_um": 2500, "ceiling_um": 1500, "grid_um": 250, "min_depth_um": 250,
    "depth_tol_um": 150, "rate_min_sps": 100, "rate_max_sps": 150, "session_cap_s": 900,
    "session_warn_s": 600, "battery_reserve_pct": 20, "speed_levels": 4,
    "standalone_depth_um": 500, "standalone_s": 600, "patient_slots": 0,
}
#: The permit key of the set_key vector: the set_time and log_ack tags are real.
_KEY = bytes(range(100, 132))
_TIME_NONCE = bytes.fromhex("8899aabbccddeeff")


def _tag(prefix: bytes, body: bytes) -> bytes:
    return hmac.new(_KEY, prefix + body, hashlib.sha256).digest()


_RECORD = {"seq": 41, "time": 1795000000, "kind": 6, "flags": 0, "code": 0,
           "depth_um": 500, "a": 600000, "b": 70200}

#: (name, type, seq, fields)
CASES: list[tuple[str, MsgType, int, dict[str, Any]]] = [
    ("hello", MsgType.HELLO, 1, {"proto_version": 2, "caps": 0x003F}),
    ("info", MsgType.INFO, 1, {
        "proto_version": 2, "caps": 0x003F, "max_frame": 4096, "model": "ScalpPen S3",
        "serial": "SP3-000123", "fw_version": "0.1.0", "hw_rev": "B", "profile": "development",
        "key_set": 1,
        "limits": _LIMITS, "update": 3, "update_version": "0.2.0"}),
    ("get_status", MsgType.GET_STATUS, 2, {}),
    ("status", MsgType.STATUS, 2, {
        "state": 2, "fault": 0, "clock": 1795000000, "depth_set_um": 500,
        "depth_actual_um": 495, "speed_level": 1, "elapsed_ms": 61000, "strokes": 7137,
        "battery_pct": 81, "charging": 0, "contact": 1, "cartridge": 1,
        "permit_depth_um": 500, "permit_s": 900, "last_session_end": 1794700000,
        "last_session_depth_um": 500, "lockout_until": 0, "resume_left_s": 0}),
    ("set_time", MsgType.SET_TIME, 3, {
        "unix": 1795000000, "nonce": _TIME_NONCE,
        "tag": _tag(TIME_TAG_PREFIX, struct.pack("<I8s", 1795000000, _TIME_NONCE))}),
    ("arm", MsgType.ARM, 4, {
        "max_depth_um": 500, "max_duration_s": 900, "issued_at": 1795000000,
        "expires_at": 1795000300, "nonce": bytes.fromhex("0011223344556677"),
        "patient": bytes(8), "tag": bytes(range(32))}),
    ("set_depth", MsgType.SET_DEPTH, 5, {"depth_um": 750}),
    ("set_speed", MsgType.SET_SPEED, 6, {"level": 2}),
    ("start", MsgType.START, 7, {}),
    ("stop", MsgType.STOP, 8, {}),
    ("log_read", MsgType.LOG_READ, 9, {"from_seq": 40, "max_records": 160}),
    ("log_page", MsgType.LOG_PAGE, 9, {"first_seq": 1, "last_seq": 42, "records": [
        _RECORD, dict(_RECORD, seq=42, kind=7, code=0x60, a=0, b=0)]}),
    ("log_page_empty", MsgType.LOG_PAGE, 10, {"first_seq": 1, "last_seq": 0, "records": []}),
    ("get_wear", MsgType.GET_WEAR, 11, {}),
    ("wear", MsgType.WEAR, 11, {
        "cartridge": 1, "cart_id": bytes.fromhex("2d00000a1b2c3d4e"), "needles": 12,
        "strokes_used": 70200, "strokes_rated": 100000, "first_use": 1795000000,
        "expiry": 1850000000, "cart_state": 1, "hp_strokes": 702000, "hp_punctures": 8424000,
        "hp_sessions": 10, "hp_run_s": 6000, "hp_first_session": 1790000000}),
    ("set_key", MsgType.SET_KEY, 12, {"key": _KEY}),
    ("log_ack", MsgType.LOG_ACK, 13, {
        "up_to_seq": 42, "tag": _tag(LOG_ACK_TAG_PREFIX, struct.pack("<I", 42))}),
    ("ack", MsgType.ACK, 5, {"req_type": 5}),
    ("nack_interval", MsgType.NACK, 7, {"req_type": 7, "error": 0x58, "detail": 1795259200}),
    ("telemetry", MsgType.EV_TELEMETRY, 300, {
        "elapsed_ms": 30500, "strokes": 3568, "depth_um": 505, "rate_x10": 1171,
        "motor_ma": 240, "temp_c10": -15, "battery_pct": 80, "contact": 1, "state": 2}),
    ("cartridge_event", MsgType.EV_CARTRIDGE, 301, {
        "inserted": 1, "cart_id": bytes.fromhex("2d00000a1b2c3d4e"), "cart_state": 0}),
    ("fault_event", MsgType.EV_FAULT, 302, {"code": 0x60, "state": 5, "lockout": 0}),
    ("notice_event", MsgType.EV_NOTICE, 303, {"code": 1, "value": 600}),
]


def to_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def load() -> list[dict[str, Any]]:
    """All vectors, fields decoded (bytes as bytes)."""
    out = []
    for path in sorted(VECTOR_DIR.glob("*.json")):
        raw = json.loads(path.read_text())
        raw["fields"] = from_json(raw["fields"])
        raw["frame"] = bytes.fromhex(raw["frame"])
        out.append(raw)
    return out


def main() -> int:
    VECTOR_DIR.mkdir(exist_ok=True)
    for name, mt, seq, fields in CASES:
        doc = {"name": name, "type": int(mt), "type_name": mt.name, "seq": seq,
               "fields": to_json(fields), "frame": encode_frame(mt, seq, fields).hex()}
        (VECTOR_DIR / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {len(CASES)} vectors to {VECTOR_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
