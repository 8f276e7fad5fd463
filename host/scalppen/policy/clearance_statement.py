"""Rule 22's signed statement: a clinician's clearance of one lock, for one patient on
one toolkit, valid for a while, signed with the clinician's Ed25519 key.

The statement is a small binary record (``construct``) followed by the 64-byte
signature over a domain tag and the record. Its text form is that blob in
Crockford base32, in dash-separated groups of five: it can be pasted, or read out
(no I/O/L/O confusions, case does not matter). ``check_statement`` is the whole
judgement, pure: everything it needs is passed in.

A key endorsement has the same form: a trusted clinician vouches for another
clinician's key (its fingerprint in the lock field), so that keys are added after
set-up only by someone already trusted.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Final

from construct import Bytes, Const, ConstructError, Int8ub, Int32ub, PascalString, Struct
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from scalppen.policy.errors import ClearanceError

#: Signatures are made over this tag and the record, so no other signed thing of
#: this key (now or later) can pass for a clearance.
DOMAIN: Final = b"scalppen clearance v1\x00"
TEXT_PREFIX: Final = "SPC1"
SIGNATURE_SIZE: Final = 64
KEY_ID_SIZE: Final = 8
#: The clinician's clock and the patient's may differ by this much.
CLOCK_SKEW: Final = timedelta(minutes=5)
#: How long a clearance stays usable by default, and at most.
DEFAULT_VALIDITY: Final = timedelta(days=7)
MAX_VALIDITY: Final = timedelta(days=30)
MAX_TEXT: Final = 200  # bytes of each text field (its length is one byte)
#: Crockford's base32 alphabet; what is read out as these letters decodes the same.
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READ_AS: Final = {"O": "0", "I": "1", "L": "1"}


class Kind(IntEnum):
    CLEARANCE = 1
    ENDORSEMENT = 2


_RECORD = Struct(
    "magic" / Const(b"SPC"),
    "version" / Const(1, Int8ub),
    "kind" / Int8ub,
    "clearance_id" / Bytes(8),
    "key_id" / Bytes(KEY_ID_SIZE),
    "toolkit" / Bytes(8),
    "issued" / Int32ub,
    "expires" / Int32ub,
    "subject" / PascalString(Int8ub, "utf8"),
    "profile" / PascalString(Int8ub, "utf8"),
    "clinician" / PascalString(Int8ub, "utf8"),
    "reason" / PascalString(Int8ub, "utf8"),
)


def fingerprint(public_key: bytes) -> str:
    """A key's fingerprint: 128 bits of its SHA-256, in eight groups of four hex digits."""
    digest = hashlib.sha256(public_key).hexdigest()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def key_id(public_key: bytes) -> bytes:
    """The first bytes of the key's SHA-256: how a statement names its signer."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class Statement:
    """What a clinician signs.

    Attributes:
        kind: a clearance of a lock, or an endorsement of another key.
        clearance_id: 8 random bytes; a toolkit accepts each id once.
        key_id: the signer's key id.
        toolkit: the 16-hex-digit id of the toolkit it is for.
        issued, expires: when it was signed and when it stops being usable (UTC).
        subject: the lock id (``18:adverse:3``), or the endorsed key's fingerprint.
        profile: the patient's profile name ("" for an endorsement).
        clinician: the signer's name, as their key is trusted.
        reason: why.
    """

    kind: Kind
    clearance_id: bytes
    key_id: bytes
    toolkit: str
    issued: datetime
    expires: datetime
    subject: str
    profile: str
    clinician: str
    reason: str

    @property
    def id_text(self) -> str:
        return self.clearance_id.hex()

    def encode(self) -> bytes:
        for name in ("subject", "profile", "clinician", "reason"):
            if len(getattr(self, name).encode()) > MAX_TEXT:
                raise ClearanceError(f"the {name} is longer than {MAX_TEXT} bytes")
        return bytes(
            _RECORD.build(
                {
                    "kind": int(self.kind),
                    "clearance_id": self.clearance_id,
                    "key_id": self.key_id,
                    "toolkit": bytes.fromhex(self.toolkit),
                    "issued": int(self.issued.timestamp()),
                    "expires": int(self.expires.timestamp()),
                    "subject": self.subject,
                    "profile": self.profile,
                    "clinician": self.clinician,
                    "reason": self.reason,
                }
            )
        )


def new_statement(
    kind: Kind,
    *,
    public_key: bytes,
    toolkit: str,
    subject: str,
    profile: str,
    clinician: str,
    reason: str,
    issued: datetime,
    valid_for: timedelta = DEFAULT_VALIDITY,
) -> Statement:
    """A statement to sign, checked for what the signer can get wrong.

    Raises:
        ClearanceError: a field is empty, too long, or the validity is out of range.
    """
    toolkit = toolkit.strip().lower().replace("-", "")
    if len(toolkit) != 16 or any(c not in "0123456789abcdef" for c in toolkit):
        raise ClearanceError(f"{toolkit!r} is not a toolkit id (16 hex digits)")
    if not timedelta(minutes=1) <= valid_for <= MAX_VALIDITY:
        raise ClearanceError(f"a clearance is valid for 1 minute to {MAX_VALIDITY.days} days")
    for name, value in (("lock", subject), ("clinician", clinician), ("reason", reason)):
        if not value.strip():
            raise ClearanceError(f"a clearance needs a {name}")
    if kind is Kind.CLEARANCE and not profile.strip() and not subject.startswith("16:"):
        raise ClearanceError("a clearance names the patient's profile (all but a pen's "
                             "service lock, 16:service:...)")
    issued = issued.astimezone(UTC).replace(microsecond=0)
    stmt = Statement(
        kind=kind,
        clearance_id=os.urandom(8),
        key_id=key_id(public_key),
        toolkit=toolkit,
        issued=issued,
        expires=issued + valid_for,
        subject=subject.strip(),
        profile=profile.strip(),
        clinician=clinician.strip(),
        reason=reason.strip(),
    )
    stmt.encode()  # lengths
    return stmt


@dataclass(frozen=True)
class Signed:
    """A statement with its signature, as it travels."""

    statement: Statement
    record: bytes
    signature: bytes

    @property
    def blob(self) -> bytes:
        return self.record + self.signature

    def text(self) -> str:
        """The short text form: ``SPC1-XXXXX-XXXXX-...``."""
        b32 = base64.b32encode(self.blob).decode().rstrip("=")
        crock = b32.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET))
        return "-".join([TEXT_PREFIX, *(crock[i : i + 5] for i in range(0, len(crock), 5))])


def signed_message(record: bytes) -> bytes:
    return DOMAIN + record


def decode(blob: bytes) -> Signed:
    """Split and parse a signed blob (the signature is not checked here).

    Raises:
        ClearanceError: not a clearance, or damaged.
    """
    if len(blob) <= SIGNATURE_SIZE:
        raise ClearanceError("this is not a clearance: too short")
    record, signature = blob[:-SIGNATURE_SIZE], blob[-SIGNATURE_SIZE:]
    try:
        raw = _RECORD.parse(record)
        kind = Kind(raw.kind)
    except (ConstructError, ValueError, UnicodeDecodeError):
        raise ClearanceError("this is not a clearance, or it is damaged") from None
    stmt = Statement(
        kind=kind,
        clearance_id=bytes(raw.clearance_id),
        key_id=bytes(raw.key_id),
        toolkit=bytes(raw.toolkit).hex(),
        issued=datetime.fromtimestamp(raw.issued, UTC),
        expires=datetime.fromtimestamp(raw.expires, UTC),
        subject=raw.subject,
        profile=raw.profile,
        clinician=raw.clinician,
        reason=raw.reason,
    )
    if stmt.encode() != record:  # trailing bytes or a non-canonical field
        raise ClearanceError("this is not a clearance, or it is damaged")
    return Signed(stmt, record, signature)


def from_text(text: str) -> Signed:
    """Parse the text form (spaces, dashes, case and O/I/L misreadings tolerated).

    Raises:
        ClearanceError: not a clearance text, mistyped or cut short.
    """
    compact = "".join(text.split()).replace("-", "").upper()
    if not compact.startswith(TEXT_PREFIX):
        raise ClearanceError(f"a clearance text starts with {TEXT_PREFIX}-")
    body = "".join(_READ_AS.get(c, c) for c in compact[len(TEXT_PREFIX) :])
    if any(c not in _ALPHABET for c in body):
        raise ClearanceError("the clearance text has characters that are not in it: mistyped?")
    b32 = body.translate(str.maketrans(_ALPHABET, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    try:
        blob = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    except ValueError:
        raise ClearanceError("the clearance text is cut short or mistyped") from None
    return decode(blob)


@dataclass(frozen=True)
class TrustedKey:
    """A clinician key this toolkit trusts."""

    fingerprint: str
    name: str
    public_key: bytes
    revoked: bool = False


@dataclass(frozen=True)
class Expected:
    """What the statement must be about: the lock (or key), the profile, the toolkit."""

    kind: Kind
    subject: str
    profile: str
    toolkit: str


def check_statement(
    signed: Signed, *, trusted: Mapping[bytes, TrustedKey], expected: Expected
) -> TrustedKey:
    """Judge who signed a statement and what it is for; return the signing key.

    Checked when a clearance is presented and again each time a stored one is used
    (so a row written into the database by hand, or whose key was revoked since,
    lifts nothing).

    Args:
        signed: the statement and its signature.
        trusted: the trusted keys by key id (revoked ones included, to say so).
        expected: what it must be for.

    Raises:
        ClearanceError: with one line saying why it is refused.
    """
    stmt = signed.statement
    key = trusted.get(stmt.key_id)
    if key is None:
        raise ClearanceError(
            f"signed by a key this toolkit does not trust (key id {stmt.key_id.hex()})"
        )
    if key.revoked:
        raise ClearanceError(f"signed by {key.name}'s key {key.fingerprint}, which was revoked")
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(
            signed.signature, signed_message(signed.record)
        )
    except InvalidSignature:
        raise ClearanceError(
            f"the signature does not match: the clearance was altered or forged "
            f"(it claims {key.name}'s key)"
        ) from None
    if stmt.kind is not expected.kind:
        raise ClearanceError(f"this is a {stmt.kind.name.lower()}, not a "
                             f"{expected.kind.name.lower()}")
    if stmt.toolkit != expected.toolkit:
        raise ClearanceError(
            f"made for another toolkit ({stmt.toolkit}), not this one ({expected.toolkit})"
        )
    if stmt.subject != expected.subject:
        what = "lock" if stmt.kind is Kind.CLEARANCE else "key"
        raise ClearanceError(f"made for {what} {stmt.subject}, not {expected.subject}")
    if stmt.profile.casefold() != expected.profile.strip().casefold():
        raise ClearanceError(f"made for profile {stmt.profile!r}, not {expected.profile!r}")
    if stmt.clinician.casefold() != key.name.casefold():
        raise ClearanceError(
            f"signed as {stmt.clinician!r}, but this key is trusted as {key.name!r}"
        )
    if stmt.expires - stmt.issued > MAX_VALIDITY:
        raise ClearanceError(f"valid for more than {MAX_VALIDITY.days} days: not accepted")
    return key


def check_fresh(stmt: Statement, *, now: datetime, used_ids: Mapping[str, datetime]) -> None:
    """When presented: issued by now, not expired, and not used before here.

    Args:
        stmt: the statement.
        now: the toolkit's time.
        used_ids: statement ids already accepted here, with when.

    Raises:
        ClearanceError: with one line saying why it is refused.
    """
    if stmt.issued - CLOCK_SKEW > now:
        raise ClearanceError(f"issued in the future ({stmt.issued:%Y-%m-%d %H:%M} UTC): "
                             "check this computer's clock")
    if stmt.expires <= now:
        raise ClearanceError(f"expired on {stmt.expires:%Y-%m-%d %H:%M} UTC: ask for a new one")
    used = used_ids.get(stmt.id_text)
    if used is not None:
        raise ClearanceError(f"already used on {used:%Y-%m-%d %H:%M} UTC: a clearance "
                             "works once")
