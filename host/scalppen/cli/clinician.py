"""``scalppen clinician``: signing keys and signed clearances (rule 22).

On the clinician's computer: ``init`` makes their key, ``show`` prints its
fingerprint, ``sign-clearance`` signs a clearance of one patient's lock on one
toolkit, ``endorse`` vouches for a colleague's key. On the patient's (or the
clinic's) toolkit: ``trust`` pins a key (the first at set-up; later ones with an
endorsement), ``keys`` lists them, ``revoke`` stops trusting one, ``audit`` lists
every clearance and key presented, accepted or refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from scalppen import clinician as keys
from scalppen.clearance_file import to_json
from scalppen.cli.common import JSON_HELP, UsageError, console, handle_errors, print_json, refused
from scalppen.cli.context import options
from scalppen.cli.storage import open_db
from scalppen.policy.clearance_statement import MAX_VALIDITY, Kind, new_statement
from scalppen.policy.errors import ClearanceError
from scalppen.store import list_attempts, list_clinician_keys, revoke_key, toolkit_id
from scalppen.vault import open_vault
from scalppen.workflows.clearing import pin_key

app = typer.Typer(help="Clinician keys and signed clearances (rule 22).", no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}", "choose another --out") from None


@app.command("init")
@handle_errors
def init_cmd(
    name: Annotated[str, typer.Option("--name", help="your name, as patients will see it")],
    out: Annotated[
        Path | None, typer.Option("--out", help="also write the public key file here")
    ] = None,
) -> None:
    """Make this computer's clinician signing key (its private half stays here)."""
    vault = open_vault()
    pub = keys.create(vault, name)
    if out is not None:
        _write(out, pub.to_json())
    _say(f"made a clinician key for {pub.name}")
    _say(f"fingerprint {pub.fingerprint}")
    _say(f"private key kept in the {vault.kind}")
    shown = out if out is not None else keys.identity_file()
    _say(f"public key file: {shown} (give it to the toolkits you clear locks for: "
         f"scalppen clinician trust {shown})")


@app.command("show")
@handle_errors
def show_cmd(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """This computer's clinician key: name, fingerprint, public key file."""
    vault = open_vault()
    pub, _ = keys.load(vault)
    doc = {"name": pub.name, "fingerprint": pub.fingerprint,
           "public_key_file": str(keys.identity_file()), "kept_in": vault.kind}
    if as_json:
        print_json(doc)
        return
    for label, value in doc.items():
        _say(f"{label.replace('_', ' ')}: {value}")


@app.command("sign-clearance")
@handle_errors
def sign_clearance_cmd(
    lock_id: Annotated[str, typer.Argument(metavar="LOCK_ID", help="the lock to clear")],
    profile: Annotated[str, typer.Option("--profile", help="the patient's profile name")] = "",
    toolkit: Annotated[
        str, typer.Option("--toolkit", help="the patient's toolkit id (scalppen clear shows it)")
    ] = "",
    reason: Annotated[str, typer.Option("--reason", help="why the lock can be lifted")] = "",
    valid_days: Annotated[
        float, typer.Option("--valid-days", help=f"usable for this long (at most "
                                                 f"{MAX_VALIDITY.days} days)")
    ] = 7.0,
    out: Annotated[Path | None, typer.Option("--out", help="clearance file to write")] = None,
) -> None:
    """Sign a clearance of one lock, for one patient, on one toolkit."""
    if not toolkit.strip():
        raise UsageError("a clearance names the toolkit it is for",
                         "pass --toolkit ID (the patient's `scalppen clear` prints it)")
    pub, private = keys.load(open_vault())
    try:
        stmt = new_statement(
            Kind.CLEARANCE, public_key=pub.public_key, toolkit=toolkit, subject=lock_id,
            profile=profile, clinician=pub.name, reason=reason,
            issued=_now(), valid_for=timedelta(days=valid_days),
        )
    except ClearanceError as exc:
        raise UsageError(str(exc)) from None
    signed = keys.sign(private, stmt)
    path = out or Path(f"clearance-{lock_id.replace(':', '-')}.json")
    _write(path, to_json(signed, pub.fingerprint))
    _say(f"signed a clearance of {stmt.subject} for {stmt.profile or 'the pen'} on toolkit "
         f"{stmt.toolkit}, usable until {stmt.expires:%Y-%m-%d %H:%M} UTC")
    _say(f"file: {path}")
    _say("text (paste or read it out):")
    _say(signed.text())


@app.command("endorse")
@handle_errors
def endorse_cmd(
    key_file: Annotated[Path, typer.Argument(metavar="FILE", help="the colleague's key file")],
    toolkit: Annotated[str, typer.Option("--toolkit", help="the toolkit that will trust it")],
    reason: Annotated[str, typer.Option("--reason", help="why")] = "colleague at this clinic",
    out: Annotated[Path | None, typer.Option("--out", help="endorsement file to write")] = None,
) -> None:
    """Vouch for a colleague's key, so a toolkit that trusts yours can trust theirs."""
    other = keys.read_public_file(key_file)
    pub, private = keys.load(open_vault())
    try:
        stmt = new_statement(
            Kind.ENDORSEMENT, public_key=pub.public_key, toolkit=toolkit,
            subject=other.fingerprint, profile=other.name, clinician=pub.name, reason=reason,
            issued=_now(),
        )
    except ClearanceError as exc:
        raise UsageError(str(exc)) from None
    signed = keys.sign(private, stmt)
    path = out or Path(f"endorsement-{other.fingerprint[:9]}.json")
    _write(path, to_json(signed, pub.fingerprint))
    _say(f"endorsed {other.name}'s key {other.fingerprint} for toolkit {stmt.toolkit}")
    _say(f"file: {path}")


@app.command("trust")
@handle_errors
def trust_cmd(
    ctx: typer.Context,
    key_file: Annotated[Path, typer.Argument(metavar="FILE", help="the clinician's key file")],
    endorsement: Annotated[
        str | None,
        typer.Option("--endorsement", help="FILE or TEXT: a trusted clinician's endorsement "
                     "(needed for every key after the first)"),
    ] = None,
    fingerprint_given: Annotated[
        str | None, typer.Option("--fingerprint", help="confirm without a prompt: the "
                                 "fingerprint the clinician told you")
    ] = None,
) -> None:
    """Pin a clinician's key on this toolkit, after comparing its fingerprint."""
    pub = keys.read_public_file(key_file)
    _say(f"clinician: {pub.name}")
    _say(f"fingerprint: {pub.fingerprint}")
    if fingerprint_given is not None:
        if _norm(fingerprint_given) != _norm(pub.fingerprint):
            raise UsageError("the fingerprint given does not match the key file: not trusted",
                             "ask the clinician for the right file")
    elif not typer.confirm("Is this the fingerprint the clinician gave you?", default=False):
        raise UsageError("not trusted", "compare the fingerprint with the clinician's")
    with open_db(ctx) as db:
        try:
            key = pin_key(db, pub, endorsement=endorsement, now=options(ctx).now())
        except ClearanceError as exc:
            refused([f"key not trusted: {exc}"])
    how = f"endorsed by {key.endorsed_by}" if key.endorsed_by else "pinned at set-up"
    _say(f"trusted {key.name}'s key {key.fingerprint} ({how})")


def _norm(fp: str) -> str:
    return "".join(c for c in fp.lower() if c in "0123456789abcdef")


@app.command("keys")
@handle_errors
def keys_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False
) -> None:
    """The clinician keys this toolkit trusts (and those it no longer does)."""
    with open_db(ctx) as db:
        known = list_clinician_keys(db)
        here = toolkit_id(db)
    if as_json:
        print_json({"toolkit": here, "keys": [
            {"name": k.name, "fingerprint": k.fingerprint, "trusted_at": k.trusted_at,
             "endorsed_by": k.endorsed_by, "revoked_at": k.revoked_at} for k in known]})
        return
    _say(f"toolkit id: {here}")
    if not known:
        _say("no clinician key is trusted yet: scalppen clinician trust FILE")
        return
    table = Table(title="Clinician keys")
    for header in ("name", "fingerprint", "trusted", "how", "revoked"):
        table.add_column(header, overflow="fold")
    for k in known:
        table.add_row(Text(k.name), k.fingerprint, f"{k.trusted_at:%Y-%m-%d}",
                      f"endorsed by {k.endorsed_by[:9]}" if k.endorsed_by else "set-up",
                      f"{k.revoked_at:%Y-%m-%d}" if k.revoked_at else "")
    console.print(table)


@app.command("revoke")
@handle_errors
def revoke_cmd(
    ctx: typer.Context,
    fp: Annotated[str, typer.Argument(metavar="FINGERPRINT", help="the key to stop trusting")],
) -> None:
    """Stop trusting a clinician key: it signs nothing more, what it cleared locks again."""
    with open_db(ctx) as db:
        match = [k for k in list_clinician_keys(db) if _norm(k.fingerprint) == _norm(fp)]
        if not match:
            raise UsageError(f"no clinician key {fp} here", "see scalppen clinician keys")
        key = revoke_key(db, match[0].fingerprint, at=options(ctx).now())
    _say(f"revoked {key.name}'s key {key.fingerprint}: locks it cleared hold again")


@app.command("audit")
@handle_errors
def audit_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False
) -> None:
    """Every clearance and key presented here, accepted or refused, and why."""
    with open_db(ctx) as db:
        rows = list_attempts(db)
    if as_json:
        print_json([{"at": a.at, "lock": a.lock_id, "accepted": a.accepted, "detail": a.detail,
                     "key": a.key_fingerprint, "clearance_id": a.clearance_id} for a in rows])
        return
    if not rows:
        _say("no clearance has been presented here")
        return
    table = Table(title="Clearances presented")
    for header in ("when (UTC)", "lock or key", "outcome", "detail"):
        table.add_column(header, overflow="fold")
    for a in rows:
        table.add_row(f"{a.at:%Y-%m-%d %H:%M}", a.lock_id,
                      "accepted" if a.accepted else "refused", Text(a.detail))
    console.print(table)


def _now() -> datetime:
    return datetime.now(UTC)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="clinician")

