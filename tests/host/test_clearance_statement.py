"""Rule 22's signed statement: every way a clearance can be forged, altered, expired,
replayed or aimed elsewhere is refused with one line saying which."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.host.clinicians import Clinician

from scalppen.policy.clearance_statement import (
    MAX_VALIDITY,
    Expected,
    Kind,
    Signed,
    TrustedKey,
    check_fresh,
    check_statement,
    decode,
    from_text,
    key_id,
    new_statement,
)
from scalppen.policy.errors import ClearanceError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOOLKIT = "0123456789abcdef"
LOCK = "18:adverse:3"
DR = Clinician("Dr Lee")


def trusted(*docs: Clinician, revoked: bool = False) -> dict[bytes, TrustedKey]:
    return {key_id(d.pub.public_key): TrustedKey(d.pub.fingerprint, d.pub.name,
                                                 d.pub.public_key, revoked) for d in docs}


def expect(lock: str = LOCK, profile: str = "Ann", toolkit: str = TOOLKIT) -> Expected:
    return Expected(Kind.CLEARANCE, lock, profile, toolkit)


def signed(**kw: object) -> Signed:
    args: dict[str, object] = {"profile": "Ann", "toolkit": TOOLKIT, "issued": NOW}
    args.update(kw)
    return DR.sign(LOCK, **args)  # type: ignore[arg-type]


def judge(s: Signed, *, keys: dict[bytes, TrustedKey] | None = None,
          expected: Expected | None = None, now: datetime = NOW,
          used: dict[str, datetime] | None = None) -> TrustedKey:
    key = check_statement(s, trusted=trusted(DR) if keys is None else keys,
                          expected=expected or expect())
    check_fresh(s.statement, now=now, used_ids=used or {})
    return key


def test_a_good_clearance_is_accepted_and_names_its_signer() -> None:
    key = judge(signed(reason="healed, seen in clinic"), now=NOW + timedelta(hours=1))
    assert key.name == "Dr Lee" and key.fingerprint == DR.pub.fingerprint


def test_text_form_round_trips_and_survives_being_read_out() -> None:
    s = signed()
    text = s.text()
    assert text.startswith("SPC1-") and all(len(g) <= 5 for g in text.split("-")[1:])
    assert from_text(text) == s
    # typed back in lower case, without dashes, with spaces, O for 0 and l for 1
    body = text[len("SPC1-"):]
    typed = "spc1 " + body.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert from_text(typed) == s


def test_a_clearance_signed_by_an_untrusted_key_is_refused() -> None:
    patient = Clinician("Dr Lee")  # the patient's own key, with the clinician's name
    forged = patient.sign(LOCK, profile="Ann", toolkit=TOOLKIT, issued=NOW)
    with pytest.raises(ClearanceError, match=r"^signed by a key this toolkit does not trust"):
        judge(forged)


def test_an_altered_clearance_is_refused() -> None:
    s = signed(reason="needs review")
    record = s.record.replace(b"needs review", b"all is fine!")
    altered = decode(record + s.signature)
    assert altered.statement.reason == "all is fine!"
    with pytest.raises(ClearanceError, match="altered or forged"):
        judge(altered)


def test_a_signature_lifted_onto_a_forged_record_is_refused() -> None:
    mine = signed(reason="for 18:adverse:3")
    other = DR.sign("18:adverse:4", profile="Ann", toolkit=TOOLKIT, issued=NOW)
    spliced = decode(other.record + mine.signature)
    with pytest.raises(ClearanceError, match="altered or forged"):
        judge(spliced, expected=expect("18:adverse:4"))


@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_refused(position: int, bit: int) -> None:
    blob = bytearray(signed().blob)
    blob[position % len(blob)] ^= 1 << bit
    with pytest.raises(ClearanceError):
        judge(decode(bytes(blob)))


@pytest.mark.parametrize(
    ("expected", "words"),
    [
        (expect(lock="18:adverse:4"), "made for lock 18:adverse:3, not 18:adverse:4"),
        (expect(profile="Bo"), "made for profile 'Ann', not 'Bo'"),
        (expect(toolkit="fedcba9876543210"), "made for another toolkit"),
        (Expected(Kind.ENDORSEMENT, LOCK, "Ann", TOOLKIT), "this is a clearance, not"),
    ],
)
def test_a_clearance_cannot_be_used_for_another_lock_profile_or_toolkit(
    expected: Expected, words: str
) -> None:
    with pytest.raises(ClearanceError, match=words):
        judge(signed(), expected=expected)


def test_profile_names_compare_without_case() -> None:
    judge(signed(profile="ann"), expected=expect(profile="ANN"))


def test_an_expired_clearance_is_refused() -> None:
    s = signed(valid_for=timedelta(days=1))
    judge(s, now=NOW + timedelta(hours=23))
    with pytest.raises(ClearanceError, match=r"^expired on 2026-03-02 12:00 UTC"):
        judge(s, now=NOW + timedelta(days=1))


def test_a_clearance_from_the_future_is_refused_beyond_clock_skew() -> None:
    s = signed()
    judge(s, now=NOW - timedelta(minutes=4))
    with pytest.raises(ClearanceError, match="issued in the future"):
        judge(s, now=NOW - timedelta(minutes=6))


def test_a_used_clearance_is_refused() -> None:
    s = signed()
    with pytest.raises(ClearanceError, match="already used on 2026-03-01 13:00 UTC"):
        judge(s, used={s.statement.id_text: NOW + timedelta(hours=1)})


def test_a_revoked_key_signs_nothing() -> None:
    with pytest.raises(ClearanceError, match="which was revoked"):
        judge(signed(), keys=trusted(DR, revoked=True))


def test_a_name_other_than_the_trusted_one_is_refused() -> None:
    impostor_name = Clinician("Dr Lee")
    impostor_name.private = DR.private  # the same key, signing under another name
    impostor_name.pub = type(DR.pub)("Prof Who", DR.pub.public_key)
    s = impostor_name.sign(LOCK, profile="Ann", toolkit=TOOLKIT, issued=NOW)
    with pytest.raises(ClearanceError, match="signed as 'Prof Who'"):
        judge(s)


def test_validity_is_bounded_when_signing_and_when_judging() -> None:
    with pytest.raises(ClearanceError, match="1 minute to 30 days"):
        signed(valid_for=MAX_VALIDITY + timedelta(days=1))
    stmt = new_statement(Kind.CLEARANCE, public_key=DR.pub.public_key, toolkit=TOOLKIT,
                         subject=LOCK, profile="Ann", clinician="Dr Lee", reason="x", issued=NOW)
    long_lived = type(stmt)(**{**stmt.__dict__, "expires": NOW + timedelta(days=365)})
    from scalppen.clinician import sign

    with pytest.raises(ClearanceError, match="more than 30 days"):
        judge(sign(DR.private, long_lived))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hello", "starts with SPC1-"),
        ("SPC1-!!!!", "not in it"),
        ("SPC1-AAAAA", "too short"),
        ("SPC1-" + "Z" * 200, "not a clearance"),
    ],
)
def test_garbage_text_is_one_clear_line(text: str, words: str) -> None:
    with pytest.raises(ClearanceError, match=words):
        from_text(text)


def test_a_cut_short_text_is_refused() -> None:
    text = signed().text()
    with pytest.raises(ClearanceError):
        judge(from_text(text[:-7]))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("toolkit", "xyz", "not a toolkit id"),
        ("reason", " ", "needs a reason"),
        ("profile", "", "names the patient's profile"),
        ("reason", "x" * 201, "longer than 200 bytes"),
    ],
)
def test_signing_refuses_what_the_clinician_gets_wrong(field: str, value: str, words: str) -> None:
    with pytest.raises(ClearanceError, match=words):
        signed(**{field: value})
