"""Permits: issued only for an allowing decision; the tag is HMAC-SHA256 over the body."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scalppen.policy import (
    AttestationRecord,
    PatientHistory,
    PermitNotAllowedError,
    ScreeningRecord,
    SessionRequest,
    evaluate,
    issue_permit,
    permit_body,
    verify_permit,
)
from scalppen_protocol.messages import PERMIT_BODY_SIZE, Permit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = bytes(range(32))
NONCE = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def allowed_history() -> PatientHistory:
    return PatientHistory(
        screenings=(ScreeningRecord(1, NOW - timedelta(days=1)),),
        attestation=AttestationRecord(at=NOW - timedelta(minutes=1)),
    )


def test_permit_issued_when_allowed_and_its_hmac_verifies() -> None:
    decision = evaluate(allowed_history(), SessionRequest(depth_um=500, duration_s=600), now=NOW)
    permit = issue_permit(decision, KEY, NOW, ttl_s=120, nonce=NONCE)
    assert (permit.max_depth_um, permit.max_duration_s) == (500, 600)
    assert permit.issued_at == int(NOW.timestamp())
    assert permit.expires_at == permit.issued_at + 120
    body = permit_body(500, 600, permit.issued_at, permit.expires_at, NONCE)
    assert permit.tag == hmac.new(KEY, body, hashlib.sha256).digest()
    assert verify_permit(permit, KEY)
    assert not verify_permit(permit, bytes(32))
    assert not verify_permit(replace(permit, max_depth_um=1500), KEY)


def test_permit_body_is_byte_identical_to_the_protocol_message() -> None:
    decision = evaluate(allowed_history(), now=NOW)
    permit = issue_permit(decision, KEY, NOW, nonce=NONCE)
    wire = Permit.build(permit.as_dict())
    assert wire[:PERMIT_BODY_SIZE] == permit.body()
    assert wire[PERMIT_BODY_SIZE:] == permit.tag
    parsed = Permit.parse(wire)
    assert parsed.max_depth_um == permit.max_depth_um


def test_no_permit_when_refused() -> None:
    decision = evaluate(replace(allowed_history(), attestation=None), now=NOW)
    assert not decision.allowed
    with pytest.raises(PermitNotAllowedError) as info:
        issue_permit(decision, KEY, NOW)
    assert info.value.refusals and info.value.refusals[0].rule == 19


def test_no_permit_for_a_stale_decision() -> None:
    decision = evaluate(allowed_history(), now=NOW)
    with pytest.raises(PermitNotAllowedError):
        issue_permit(decision, KEY, NOW + timedelta(minutes=6))
    with pytest.raises(PermitNotAllowedError):
        issue_permit(decision, KEY, NOW - timedelta(seconds=1))


def test_random_nonces_differ_and_bad_inputs_are_rejected() -> None:
    decision = evaluate(allowed_history(), now=NOW)
    a = issue_permit(decision, KEY, NOW)
    b = issue_permit(decision, KEY, NOW)
    assert a.nonce != b.nonce and len(a.nonce) == 8
    with pytest.raises(ValueError):
        issue_permit(decision, b"short", NOW)
    with pytest.raises(ValueError):
        issue_permit(decision, KEY, NOW, ttl_s=0)
    with pytest.raises(ValueError):
        issue_permit(decision, KEY, NOW, nonce=b"1234")
