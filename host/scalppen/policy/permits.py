"""Session permits: the host signs what the decision allows (rule 20 on the pen).

A permit is ``max_depth_um`` u16, ``max_duration_s`` u16, ``issued_at`` u32,
``expires_at`` u32 (Unix seconds), ``nonce`` 8 bytes, ``patient`` 8 bytes (the
patient's opaque reference for a clinic pen's rule 6; zero: nobody), then ``tag`` =
HMAC-SHA256(key, the 28 packed bytes before it). Those bytes are the protocol's
``PermitBody`` (``scalppen_protocol.messages``); :func:`permit_body` builds them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from construct import ConstructError

from scalppen.policy.decision import Decision
from scalppen.policy.errors import PermitNotAllowedError
from scalppen.policy.history import require_aware
from scalppen_protocol.messages import PERMIT_BODY_SIZE, PermitBody

BODY_SIZE: Final = PERMIT_BODY_SIZE
NONCE_SIZE: Final = 8
PATIENT_REF_SIZE: Final = 8
#: The patient reference of a permit that names nobody (a home pen's rule 6 is per pen).
NO_PATIENT: Final = bytes(PATIENT_REF_SIZE)
KEY_SIZE: Final = 32
TAG_SIZE: Final = 32
DEFAULT_TTL_S: Final = 300
MAX_TTL_S: Final = 3600
#: A decision older than this is stale: evaluate again before issuing.
MAX_DECISION_AGE_S: Final = 300


@dataclass(frozen=True)
class PermitFields:
    """The fields of a permit, ready for the protocol's ``Permit`` message."""

    max_depth_um: int
    max_duration_s: int
    issued_at: int
    expires_at: int
    nonce: bytes
    tag: bytes
    patient: bytes = NO_PATIENT

    def as_dict(self) -> dict[str, Any]:
        """The fields as a mapping (what ``Permit.build`` takes)."""
        return {
            "max_depth_um": self.max_depth_um,
            "max_duration_s": self.max_duration_s,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "nonce": self.nonce,
            "patient": self.patient,
            "tag": self.tag,
        }

    def body(self) -> bytes:
        """The signed bytes of this permit."""
        return permit_body(
            self.max_depth_um, self.max_duration_s, self.issued_at, self.expires_at, self.nonce,
            self.patient,
        )


def permit_body(
    max_depth_um: int, max_duration_s: int, issued_at: int, expires_at: int, nonce: bytes,
    patient: bytes = NO_PATIENT,
) -> bytes:
    """Pack the fields the tag covers, exactly as the wire carries them.

    Raises:
        ValueError: a field does not fit its wire type.
    """
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    if len(patient) != PATIENT_REF_SIZE:
        raise ValueError(f"a patient reference has {PATIENT_REF_SIZE} bytes")
    try:
        return bytes(PermitBody.build({
            "max_depth_um": max_depth_um, "max_duration_s": max_duration_s,
            "issued_at": issued_at, "expires_at": expires_at, "nonce": nonce,
            "patient": patient,
        }))
    except ConstructError as exc:
        raise ValueError(f"permit field out of range: {exc}") from exc


def permit_tag(key: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 of a permit body."""
    return hmac.new(key, body, hashlib.sha256).digest()


def sign_permit(
    key: bytes, max_depth_um: int, max_duration_s: int, issued_at: int, expires_at: int,
    nonce: bytes, patient: bytes = NO_PATIENT,
) -> PermitFields:
    """The permit with these fields, signed with ``key``: the mechanism alone, no
    policy (:func:`issue_permit` decides what to sign)."""
    body = permit_body(max_depth_um, max_duration_s, issued_at, expires_at, nonce, patient)
    return PermitFields(max_depth_um, max_duration_s, issued_at, expires_at, nonce,
                        permit_tag(key, body), patient)


def verify_permit(fields: PermitFields, key: bytes) -> bool:
    """True if the permit's tag matches its fields under ``key`` (constant time)."""
    return hmac.compare_digest(permit_tag(key, fields.body()), fields.tag)


def issue_permit(
    decision: Decision,
    key: bytes,
    now: datetime,
    ttl_s: int = DEFAULT_TTL_S,
    nonce: bytes | None = None,
    patient: bytes = NO_PATIENT,
) -> PermitFields:
    """Sign a permit for what an allowing decision permits.

    Args:
        decision: a fresh decision from :func:`scalppen.policy.evaluate`.
        key: the pen's 32-byte permit key (set at pairing).
        now: the current time (timezone-aware); becomes ``issued_at``.
        ttl_s: seconds until the permit expires unused (1-3600).
        nonce: 8 bytes, random by default (tests pass their own).
        patient: the patient's 8-byte reference (a clinic pen keeps rule 6 by it).

    Returns:
        The permit fields with their tag.

    Raises:
        PermitNotAllowedError: the decision refuses, or is stale.
        ValueError: bad key, ttl or nonce.
    """
    require_aware(now)
    if not decision.allowed or decision.refusals:
        raise PermitNotAllowedError(
            "no permit: the session is not allowed ("
            + "; ".join(f"rule {r.rule}: {r.reason}" for r in decision.refusals)
            + ")",
            decision.refusals,
        )
    age = (now - decision.evaluated_at).total_seconds()
    if not 0 <= age <= MAX_DECISION_AGE_S:
        raise PermitNotAllowedError("no permit: the decision is stale, check the rules again")
    if decision.max_depth_um <= 0 or decision.max_duration_s <= 0:
        raise PermitNotAllowedError("no permit: the decision permits no depth or no time")
    if len(key) != KEY_SIZE:
        raise ValueError(f"the permit key must be {KEY_SIZE} bytes")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be 1..{MAX_TTL_S}")
    nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
    issued_at = int(now.timestamp())
    expires_at = issued_at + ttl_s
    return sign_permit(key, decision.max_depth_um, decision.max_duration_s, issued_at,
                       expires_at, nonce, patient)
