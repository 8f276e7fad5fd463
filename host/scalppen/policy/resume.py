"""Resuming a paused session under its permit (issue 14 item 5; docs/sessions.md).

A session stopped in its first 30 s of needling (a slip, an accidental Ctrl-C)
pauses on the pen instead of ending; so does one whose contact or link was lost.
The pen keeps it open for 10 minutes, then ends it and counts it (rule 6). Within
that window the host that issued its permit may bind it to the new link with a
permit of the same limits, signed again: no new decision, because the session is
the same one. The pen takes the lower of the old and the new limits, and the
needling time already spent counts against them.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from scalppen.policy.errors import PermitNotAllowedError
from scalppen.policy.history import require_aware
from scalppen.policy.permits import (
    KEY_SIZE,
    NO_PATIENT,
    NONCE_SIZE,
    PermitFields,
    sign_permit,
)

# the pen's window for a START: a resume permit never outlives it
from scalppen_protocol.codes import PAUSE_WINDOW_S


def resume_permit(
    *, original_depth_um: int, original_duration_s: int, resume_left_s: int, key: bytes,
    now: datetime, nonce: bytes | None = None, patient: bytes = NO_PATIENT,
) -> PermitFields:
    """The permit that binds a paused session to this link: the session's own limits,
    valid only while the pen still holds the session open.

    Args:
        original_depth_um, original_duration_s: the limits of the permit the session
            started under (this host issued it).
        resume_left_s: what the pen's STATUS says is left of its window.
        key: the pen's permit key.
        now: the current time (timezone-aware).
        nonce: 8 bytes, random by default.
        patient: the session's patient reference (a clinic pen goes on only for them).

    Raises:
        PermitNotAllowedError: the pen holds no paused session open, or the window is
            longer than the pen's own (a STATUS that cannot be).
    """
    require_aware(now)
    if resume_left_s <= 0:
        raise PermitNotAllowedError("no permit: the pen holds no paused session to resume")
    if resume_left_s > PAUSE_WINDOW_S:
        raise PermitNotAllowedError(
            f"no permit: the pen says {resume_left_s} s are left to resume, more than its "
            f"{PAUSE_WINDOW_S} s window")
    if original_depth_um <= 0 or original_duration_s <= 0:
        raise PermitNotAllowedError("no permit: the session's permit allows no depth or time")
    if len(key) != KEY_SIZE:
        raise ValueError(f"the permit key must be {KEY_SIZE} bytes")
    issued = int(now.timestamp())
    return sign_permit(key, original_depth_um, original_duration_s, issued,
                       issued + resume_left_s, nonce or secrets.token_bytes(NONCE_SIZE), patient)
