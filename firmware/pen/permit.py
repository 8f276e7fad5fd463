# Session permits (rule 20): HMAC-SHA256 over the 20 packed permit bytes with the
# key set at pairing, one-time nonce, expiry against the pen's clock, limits
# within the firmware's hard limits. MicroPython has no hmac module: HMAC is
# written out over hashlib.sha256 (RFC 2104).
import binascii
import hashlib
import struct

from pen import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]  # CPython fallback
        return x

BODY_FMT = "<HHII8s8s"
BLOCK = const(64)
MAX_SKEW_S = const(300)  # a permit issued this far in the pen's future is refused
MAX_WINDOW_S = const(7200)  # a decision is for now: longer validity is refused
_NOBODY = bytes(8)  # a permit's patient reference that names nobody


def _xor(key, pad):
    out = bytearray(BLOCK)
    for i in range(BLOCK):
        out[i] = key[i] ^ pad
    return out


def hmac_sha256(key, msg):
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(BLOCK - len(key))
    inner = hashlib.sha256(_xor(key, 0x36))
    inner.update(msg)
    outer = hashlib.sha256(_xor(key, 0x5C))
    outer.update(inner.digest())
    return outer.digest()


def equal(a, b):
    # Constant-time compare: the time does not depend on where a and b differ.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def body(p):
    return struct.pack(BODY_FMT, p["max_depth_um"], p["max_duration_s"], p["issued_at"],
                       p["expires_at"], p["nonce"], p["patient"])


def nonce_hex(nonce):
    return binascii.hexlify(nonce).decode()


def sign(key, p):
    return hmac_sha256(key, body(p))


def time_tag(key, unix, nonce):
    # SET_TIME's tag (the host's scalppen_protocol.auth.time_tag).
    return hmac_sha256(key, wire.TIME_TAG_PREFIX + struct.pack("<I8s", unix, nonce))


def ack_tag(key, up_to_seq):
    # LOG_ACK's tag.
    return hmac_sha256(key, wire.LOG_ACK_TAG_PREFIX + struct.pack("<I", up_to_seq))


def check_time(f, key, used):
    # -> error code for a SET_TIME (0 = authentic and fresh). f: the decoded fields;
    # used: container of the hex nonces of recent SET_TIMEs.
    if not key:
        return wire.E_PERMIT_NO_KEY
    if not equal(time_tag(key, f["unix"], f["nonce"]), f["tag"]):
        return wire.E_PERMIT_BAD_TAG
    if nonce_hex(f["nonce"]) in used:
        return wire.E_PERMIT_REPLAYED
    if f["unix"] == 0:
        return wire.E_MALFORMED
    return 0


def check_ack(f, key):
    # -> error code for a LOG_ACK (0 = authentic). A replay is harmless: the
    # acknowledged floor never goes back.
    if not key:
        return wire.E_PERMIT_NO_KEY
    if not equal(ack_tag(key, f["up_to_seq"]), f["tag"]):
        return wire.E_PERMIT_BAD_TAG
    return 0


def check(p, key, now, used, nonce_floor, board):
    # -> error code (0 = valid). p: the decoded ARM fields; key: bytes or None;
    # now: pen clock (0 = unset); used: container of used nonces (hex str);
    # nonce_floor: permits issued at or before it are older than the remembered
    # nonces and are refused as replays.
    if not key:
        return wire.E_PERMIT_NO_KEY
    if not equal(sign(key, p), p["tag"]):
        return wire.E_PERMIT_BAD_TAG
    if nonce_hex(p["nonce"]) in used or (nonce_floor and p["issued_at"] <= nonce_floor):
        return wire.E_PERMIT_REPLAYED
    if now == 0:
        return wire.E_PERMIT_CLOCK_UNSET
    if p["expires_at"] <= now or p["expires_at"] <= p["issued_at"]:
        return wire.E_PERMIT_EXPIRED
    if p["issued_at"] > now + MAX_SKEW_S:
        return wire.E_PERMIT_NOT_YET_VALID
    d = p["max_depth_um"]
    s = p["max_duration_s"]
    if d > board.ceiling_um or d > board.abs_depth_um or d < board.min_depth_um:
        return wire.E_PERMIT_OVER_LIMIT
    if s > board.session_cap_s or s <= 0:
        return wire.E_PERMIT_OVER_LIMIT
    if p["expires_at"] - p["issued_at"] > MAX_WINDOW_S:
        return wire.E_PERMIT_OVER_LIMIT
    if board.patient_slots and p["patient"] == _NOBODY:
        return wire.E_PERMIT_NO_PATIENT  # a clinic pen keeps rule 6 by the patient
    return 0
