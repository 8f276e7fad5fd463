"""Tags the permit key puts on requests other than ARM: SET_TIME and LOG_ACK.

HMAC-SHA256 over a domain prefix (``codes.TIME_TAG_PREFIX``,
``codes.LOG_ACK_TAG_PREFIX``) and the message's body as the wire packs it, so a
tag made for one message never fits another. The firmware computes the same in
``pen/permit.py``; the golden vectors pin both.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from scalppen_protocol.codes import LOG_ACK_TAG_PREFIX, TIME_TAG_PREFIX
from scalppen_protocol.messages import TimeBody

NONCE_SIZE = 8


def _tag(key: bytes, prefix: bytes, body: bytes) -> bytes:
    if len(key) != 32:
        raise ValueError(f"a permit key has 32 bytes, not {len(key)}")
    return hmac.new(key, prefix + body, hashlib.sha256).digest()


def time_tag(key: bytes, unix: int, nonce: bytes) -> bytes:
    """The tag of SET_TIME(unix, nonce)."""
    return _tag(key, TIME_TAG_PREFIX, bytes(TimeBody.build({"unix": unix, "nonce": nonce})))


def log_ack_tag(key: bytes, up_to_seq: int) -> bytes:
    """The tag of LOG_ACK(up_to_seq)."""
    return _tag(key, LOG_ACK_TAG_PREFIX, int(up_to_seq).to_bytes(4, "little"))


def set_time_fields(key: bytes, unix: int, nonce: bytes | None = None) -> dict[str, Any]:
    """SET_TIME's fields: ``unix``, a fresh random nonce and the key's tag."""
    nonce = os.urandom(NONCE_SIZE) if nonce is None else bytes(nonce)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return {"unix": int(unix), "nonce": nonce, "tag": time_tag(key, int(unix), nonce)}


def log_ack_fields(key: bytes, up_to_seq: int) -> dict[str, Any]:
    """LOG_ACK's fields."""
    return {"up_to_seq": int(up_to_seq), "tag": log_ack_tag(key, up_to_seq)}
