"""The report's rule 22 part: which clinician keys this toolkit trusts, and who signed
what: every clearance and key presented, accepted or refused, with the reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalppen.report import ReportData


def clearances_html(data: ReportData) -> str:
    """Two tables: the trusted clinician keys, and the clearances presented."""
    from scalppen.report import _table, _when
    from scalppen.report_audit import made_by, stamped

    names = {k.fingerprint: k.name for k in data.clinician_keys}
    keys = _table(
        "Clinician keys this toolkit trusts (rule 22)",
        ["clinician", "key fingerprint", "trusted", "how", "revoked"],
        [
            (
                k.name,
                k.fingerprint,
                _when(k.trusted_at),
                f"endorsed by {names.get(k.endorsed_by, k.endorsed_by)}" if k.endorsed_by
                else "pinned at set-up",
                _when(k.revoked_at) if k.revoked_at else "",
            )
            for k in data.clinician_keys
        ],
        css="clinician-keys",
        empty="None: no lock can be cleared on this toolkit.",
    )
    presented = _table(
        "Clearances presented (rule 22): who signed what, accepted or refused",
        ["at", "lock or key", "outcome", "signed by", "detail",
         *(["room, user"] if stamped(data.clearance_attempts) else [])],
        [
            (
                _when(a.at),
                a.lock_id,
                "accepted" if a.accepted else "REFUSED",
                f"{names[a.key_fingerprint]} ({a.key_fingerprint})"
                if a.key_fingerprint in names else "no trusted key",
                a.detail,
                *([made_by(a)] if stamped(data.clearance_attempts) else []),
            )
            for a in data.clearance_attempts
        ],
        css="clearance-attempts",
        empty="None presented.",
    )
    return keys + presented
