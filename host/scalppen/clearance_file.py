"""A signed clearance as it travels: a small JSON file, or its short text form.

The file repeats the statement's fields in words for whoever opens it, next to the
signed text that alone counts; a file whose words differ from what was signed has
been altered and is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from scalppen.policy.clearance_statement import TEXT_PREFIX, Signed, from_text
from scalppen.policy.errors import ClearanceError

FORMAT: Final = "scalppen-clearance/1"
MAX_FILE: Final = 16384


def to_json(signed: Signed, fingerprint: str) -> str:
    """The file form."""
    s = signed.statement
    return json.dumps(
        {
            "format": FORMAT,
            "kind": s.kind.name.lower(),
            "lock": s.subject,
            "profile": s.profile,
            "toolkit": s.toolkit,
            "clinician": s.clinician,
            "key": fingerprint,
            "reason": s.reason,
            "issued": s.issued.isoformat(),
            "expires": s.expires.isoformat(),
            "clearance": signed.text(),
        },
        indent=2,
        ensure_ascii=False,
    ) + "\n"


def _from_json(path: Path, raw: bytes) -> Signed:
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ValueError
        signed = from_text(str(data["clearance"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ClearanceError(f"{path} is not a clearance file ({FORMAT})") from None
    s = signed.statement
    shown = {
        "kind": s.kind.name.lower(), "lock": s.subject, "profile": s.profile,
        "toolkit": s.toolkit, "clinician": s.clinician, "reason": s.reason,
        "issued": s.issued.isoformat(), "expires": s.expires.isoformat(),
    }
    for field, value in shown.items():
        if field in data and data[field] != value:
            raise ClearanceError(
                f"{path} was altered: its {field} says {data[field]!r}, the signed "
                f"clearance says {value!r}"
            )
    return signed


def read_presented(value: str) -> tuple[Signed, str]:
    """A clearance given on the command line, as a file or as its text.

    Returns:
        The signed statement and what was presented (for the record).

    Raises:
        ClearanceError: neither a readable clearance file nor a clearance text.
    """
    text = value.strip()
    if not text.upper().startswith(TEXT_PREFIX):
        path = Path(text).expanduser()
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_FILE + 1)
        except OSError as exc:
            raise ClearanceError(
                f"{text!r} is neither a clearance text ({TEXT_PREFIX}-...) nor a file that "
                f"can be read ({exc.strerror})"
            ) from None
        if len(raw) > MAX_FILE:
            raise ClearanceError(f"{path} is too large to be a clearance file")
        signed = _from_json(path, raw)
        return signed, signed.text()
    return from_text(text), text
