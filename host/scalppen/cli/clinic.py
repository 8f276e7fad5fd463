"""Commands on the database only: profiles, screening, adverse events, clearances, lockouts.

``profile add|list|assign-pen``, ``screen`` (rule 17), ``adverse`` (rule 18), ``clear``
(rule 22), ``lockouts`` (rules 6, 7, 16, 17, 18) and ``report``. None of them talks
to a pen. Arguments are checked before the database is opened.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.table import Table
from rich.text import Text

from scalppen import paths
from scalppen.cli.common import (
    EXIT_REFUSED,
    JSON_HELP,
    UsageError,
    console,
    handle_errors,
    print_json,
    refused,
)
from scalppen.cli.context import options
from scalppen.cli.storage import open_db, parse_time, pen_spec, resolve_pen, resolve_profile
from scalppen.holds import Hold, holds_for
from scalppen.holds import when as _when
from scalppen.policy import (
    CONTRAINDICATIONS,
    LOCKING_ADVERSE_KINDS,
    RULE_TITLES,
    AdverseKind,
    Lock,
    PatientHistory,
    PolicyConfig,
    find_locks,
    validate_clearance,
)
from scalppen.policy.clearance import rule_of_lock
from scalppen.policy.errors import ClearanceError
from scalppen.policy.rules import CLINICIAN_CLEARABLE_RULES, FIRMWARE_RULES
from scalppen.policy.screening import LABELS, MIN_AGE
from scalppen.store import (
    NotFoundError,
    Pen,
    Profile,
    Store,
    add_profile,
    assign_profile,
    clearance_records,
    get_pen,
    get_session,
    handpiece_record,
    list_adverse_events,
    list_pens,
    list_profiles,
    list_screenings,
    list_sessions,
    load_history,
    record_attempt,
    record_screening,
    report_adverse_event,
    toolkit_id,
    upsert_pen,
)
from scalppen.workflows.clearing import present_clearance

#: Roles a profile can be created with from the command line.
PROFILE_ROLES: Final = ("patient", "clinician")
#: Answers accepted for a screening question.
YES: Final = frozenset({"yes", "y", "true", "1"})
NO: Final = frozenset({"no", "n", "false", "0"})
#: Lock ids the policy sets (``policy.screening``, ``policy.adverse``, ``policy.service``).
LOCK_ID_FORMS: Final = "17:screening:N, 18:adverse:N or 16:service:SERIAL:TIME"
_SCREENING_LOCK: Final = re.compile(r"17:screening:(\d+)")
_ADVERSE_LOCK: Final = re.compile(r"18:adverse:(\d+)")
_SERVICE_LOCK: Final = re.compile(r"16:service:(.+):(\d+)")
#: Refusals ``lockouts`` leaves out: checked when a session starts, not a lockout.

profile_app = typer.Typer(help="Patient and clinician profiles.", no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


def _clear_hint(lock_id: str) -> str:
    return (f"a clinician signs a clearance (scalppen clear {lock_id} says how), then: "
            f"scalppen clear {lock_id} --clearance FILE|TEXT")


# ---------------------------------------------------------------------------- profiles


@profile_app.command("add")
@handle_errors
def profile_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="the person's name")],
    birth_year: Annotated[
        int | None,
        typer.Option("--birth-year", help="year of birth (screening refuses anyone under 22)"),
    ] = None,
    role: Annotated[str, typer.Option("--role", help="patient or clinician")] = "patient",
) -> None:
    """Add a patient or clinician profile."""
    if not name.strip():
        raise UsageError("a profile needs a name", "e.g. scalppen profile add 'Ann Smith'")
    role = role.strip().lower()
    if role not in PROFILE_ROLES:
        raise UsageError(f"unknown role {role!r}", f"choose one of {', '.join(PROFILE_ROLES)}")
    this_year = datetime.now().year
    if birth_year is not None and not this_year - 130 <= birth_year <= this_year:
        raise UsageError(
            f"--birth-year {birth_year} is not a plausible year of birth",
            f"give a year between {this_year - 130} and {this_year}",
        )
    with open_db(ctx) as db:
        prof = add_profile(db, name, role=role, birth_year=birth_year)
    born = f", born {prof.birth_year}" if prof.birth_year is not None else ""
    _say(f"added profile {prof.id}: {prof.name} ({prof.role}{born})")
    if prof.role != "clinician":
        _say(f"next: scalppen screen --profile {prof.id}")


def _screening_text(db: Store, prof: Profile) -> str:
    done = list_screenings(db, prof.id)
    if not done:
        return "none yet"
    last = done[-1]
    return f"{last.result} ({last.at:%Y-%m-%d})"


@profile_app.command("list")
@handle_errors
def profile_list(ctx: typer.Context) -> None:
    """List the profiles, with their latest screening and the pens they own."""
    with open_db(ctx) as db:
        profiles = list_profiles(db)
        if not profiles:
            _say("no profiles yet: add one with scalppen profile add NAME")
            return
        pens = list_pens(db)
        table = Table(title="Profiles")
        for header in ("id", "name", "role", "born", "latest screening", "pens"):
            table.add_column(header, overflow="fold")
        for prof in profiles:
            owned = ", ".join(p.serial for p in pens if p.owner_profile_id == prof.id)
            table.add_row(
                str(prof.id),
                Text(prof.name),
                prof.role,
                "" if prof.birth_year is None else str(prof.birth_year),
                "" if prof.role == "clinician" else _screening_text(db, prof),
                Text(owned),
            )
    console.print(table)


@profile_app.command("assign-pen")
@handle_errors
def profile_assign_pen(
    ctx: typer.Context,
    serial: Annotated[
        str, typer.Argument(metavar="SERIAL", help="the pen's serial number (or Bluetooth address)")
    ],
    profile: Annotated[
        str, typer.Argument(metavar="PROFILE", help="the owner's profile id or name")
    ],
) -> None:
    """Make a profile the owner of a known pen.

    The pen's sessions that belong to no profile yet are given to the owner, so the
    interval between sessions (rule 6) counts them.
    """
    if not serial.strip() or not profile.strip():
        raise UsageError(
            "give the pen's serial and a profile", "scalppen profile assign-pen SERIAL ID"
        )
    with open_db(ctx) as db:
        pen = resolve_pen(db, serial)
        prof = resolve_profile(db, profile)
        if prof.role == "clinician":
            raise UsageError(
                f"{prof.name} is a clinician profile", "a pen belongs to the patient who uses it"
            )
        with db.transaction():
            upsert_pen(
                db,
                pen.serial,
                model=pen.model,
                fw_version=pen.fw_version,
                hw_rev=pen.hw_rev,
                owner_profile_id=prof.id,
            )
            loose = [s for s in list_sessions(db, pen_serial=pen.serial) if s.profile_id is None]
            for session in loose:
                assign_profile(db, session.id, prof.id)
    before = pen.owner_profile_id
    was = f" (was profile {before})" if before not in (None, prof.id) else ""
    n = len(loose)
    moved = f"; {n} earlier session{'s' if n > 1 else ''} of the pen now count for it" if n else ""
    _say(f"pen {pen.serial} belongs to profile {prof.id} {prof.name}{was}{moved}")


# ---------------------------------------------------------------------------- screening


def parse_answers(text: str) -> dict[str, bool]:
    """``key=yes,key=no`` from ``--answers`` (keys of ``CONTRAINDICATIONS``; ``-`` or ``_``).

    Raises:
        UsageError: an unknown question, a value other than yes or no, or a repeat.
    """
    answers: dict[str, bool] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        value = value.strip().lower()
        if not sep or not key:
            raise UsageError(
                f"--answers item {item.strip()!r} is not key=yes or key=no",
                "e.g. --answers pregnancy=no,anticoagulants=yes",
            )
        if key not in CONTRAINDICATIONS:
            raise UsageError(
                f"unknown screening question {key!r}",
                f"the questions are {', '.join(CONTRAINDICATIONS)}",
            )
        if value not in YES | NO:
            raise UsageError(f"answer {key}={value!r} is not yes or no", "use yes or no")
        answer = value in YES
        if answers.get(key, answer) != answer:
            raise UsageError(f"{key} is answered both yes and no", "answer each question once")
        answers[key] = answer
    return answers


def _interactive() -> bool:
    """True if questions can be asked (standard input is a terminal)."""
    return sys.stdin.isatty()


def _ask(missing: list[str], name: str) -> dict[str, bool]:
    _say(f"Contraindication screening for {name} (rule 17): answer each question yes or no.")
    return {key: typer.confirm(CONTRAINDICATIONS[key], default=None) for key in missing}


def _check_answerable(missing: list[str], some_given: bool) -> None:
    """UsageError when answers are missing and there is no terminal to ask them."""
    if not missing or _interactive():
        return
    if some_given:
        raise UsageError(
            f"the screening needs every answer; missing: {', '.join(missing)}",
            "add them to --answers, or pass --all-no to answer the rest no",
        )
    raise UsageError(
        "the screening needs answers and there is no terminal to ask them",
        "pass --answers key=yes|no,... for every question, or --all-no",
    )


@handle_errors
def screen_cmd(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option("--profile", help="profile id or name")] = None,
    answers: Annotated[
        str | None,
        typer.Option(
            "--answers",
            help=f"answers without prompts: key=yes|no,... (keys: {', '.join(CONTRAINDICATIONS)})",
        ),
    ] = None,
    all_no: Annotated[
        bool, typer.Option("--all-no", help="answer no to every question not given in --answers")
    ] = False,
) -> None:
    """Contraindication screening (rule 17): needed before the first session and every 30 days.

    Any yes locks sessions until a clinician clears it (`scalppen clear`).
    """
    given = parse_answers(answers) if answers else {}
    if all_no:
        given = {key: given.get(key, False) for key in CONTRAINDICATIONS}
    now = options(ctx).now()
    # what only a terminal could still answer (the age may come from the profile)
    _check_answerable([k for k in CONTRAINDICATIONS if k not in given and k != "under_22"],
                      bool(answers))
    with open_db(ctx) as db:
        prof = resolve_profile(db, profile)
        if prof.role == "clinician":
            raise UsageError(f"{prof.name} is a clinician profile", "screen the patient's profile")
        if prof.birth_year is not None and "under_22" not in given:
            # the profile knows the age: the question would only invite a wrong answer
            given["under_22"] = now.year - prof.birth_year < MIN_AGE
        missing = [key for key in CONTRAINDICATIONS if key not in given]
        _check_answerable(missing, bool(answers))
        if missing:
            given |= _ask(missing, prof.name)
        rec = record_screening(db, prof.id, given, now=now)
    if not rec.positives:
        until = rec.at + PolicyConfig().screening_valid
        _say(
            f"screening {rec.id} recorded for {prof.name}: no contraindications; "
            f"valid until {until:%Y-%m-%d}"
        )
        return
    from scalppen.policy import screening_lock_id

    found = ", ".join(LABELS.get(p, p) for p in rec.positives)
    lock_id = screening_lock_id(rec.id)
    _say(f"screening {rec.id} recorded for {prof.name}: contraindicated ({found})")
    _say(f"sessions are locked until a clinician clears it: lock {lock_id}")
    _say(_clear_hint(lock_id))


# ---------------------------------------------------------------------------- adverse events

_KIND_WORDS: Final = {
    AdverseKind.OOZING: "oozing",
    AdverseKind.EXTREME_HEAT: "extreme heat",
    AdverseKind.PUS: "pus",
    AdverseKind.REDNESS: "redness",
    AdverseKind.BRUISING: "bruising",
    AdverseKind.OTHER: "an adverse event",
}


def parse_adverse_kind(text: str) -> AdverseKind:
    """An adverse-event kind (``extreme-heat`` and ``extreme_heat`` both work).

    Raises:
        UsageError: not a known kind.
    """
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return AdverseKind(key)
    except ValueError:
        names = ", ".join(k.value.replace("_", "-") for k in AdverseKind)
        raise UsageError(f"unknown adverse event {text!r}", f"choose one of {names}") from None


@handle_errors
def adverse_cmd(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="oozing, extreme-heat, pus (these lock sessions), redness, bruising, other",
        ),
    ],
    profile: Annotated[str | None, typer.Option("--profile", help="profile id or name")] = None,
    notes: Annotated[str, typer.Option("--notes", help="what was seen, where, how bad")] = "",
    session: Annotated[
        int | None, typer.Option("--session", min=1, help="the session it followed (its id)")
    ] = None,
) -> None:
    """Report an adverse event (rule 18): oozing, extreme heat or pus lock all sessions."""
    akind = parse_adverse_kind(kind)
    with open_db(ctx) as db:
        owner = None
        if session is not None:
            owner = get_session(db, session).profile_id
        if profile is None and owner is not None:
            prof = resolve_profile(db, str(owner))
        else:
            prof = resolve_profile(db, profile)
        if owner is not None and owner != prof.id:
            raise UsageError(
                f"session {session} belongs to profile {owner}, not {prof.id} {prof.name}",
                "check --session and --profile",
            )
        event = report_adverse_event(db, prof.id, akind, notes=notes, session_id=session)
    words = _KIND_WORDS[akind]
    if akind in LOCKING_ADVERSE_KINDS:
        from scalppen.policy import adverse_lock_id

        lock_id = adverse_lock_id(event.id)
        _say(f"reported {words} for {prof.name} (event {event.id}): seek medical attention")
        _say(f"all sessions are locked until a clinician clears it: lock {lock_id}")
        _say(_clear_hint(lock_id))
    else:
        _say(
            f"logged {words} for {prof.name} (event {event.id}); it does not lock sessions. "
            "If it gets worse, or oozing, extreme heat or pus appear, stop and report it."
        )


# ---------------------------------------------------------------------------- clearance


@dataclass(frozen=True)
class _Found:
    lock: Lock
    profile: Profile | None
    serial: str | None


def _locks_of(db: Store, prof: Profile | None, serial: str | None, now: datetime) -> list[Lock]:
    if prof is not None:
        return find_locks(load_history(db, prof.id, pen_serial=serial), now)
    assert serial is not None
    history = PatientHistory(
        handpiece=handpiece_record(db, serial), clearances=clearance_records(db, None)
    )
    return find_locks(history, now)


def _find_lock(db: Store, lock_id: str, now: datetime) -> _Found:
    """The lock named ``lock_id`` and the profile it holds (None for a pen's service lock).

    Raises:
        NotFoundError: no such lock.
    """
    prof: Profile | None = None
    serial: str | None = None
    if m := _SCREENING_LOCK.fullmatch(lock_id):
        owners = [s.profile_id for s in list_screenings(db) if s.id == int(m[1])]
        if not owners:
            raise NotFoundError(f"no screening {m[1]}, so no lock {lock_id}")
        prof = resolve_profile(db, str(owners[0]))
    elif m := _ADVERSE_LOCK.fullmatch(lock_id):
        owners = [e.profile_id for e in list_adverse_events(db) if e.id == int(m[1])]
        if not owners:
            raise NotFoundError(f"no adverse event {m[1]}, so no lock {lock_id}")
        prof = resolve_profile(db, str(owners[0]))
    elif m := _SERVICE_LOCK.fullmatch(lock_id):
        serial = get_pen(db, m[1]).serial
    for lock in _locks_of(db, prof, serial, now):
        if lock.lock_id == lock_id:
            return _Found(lock, prof, serial)
    raise NotFoundError(f"no lock {lock_id} holds now: see `scalppen lockouts`")


@handle_errors
def clear_cmd(
    ctx: typer.Context,
    lock_id: Annotated[
        str, typer.Argument(metavar="LOCK_ID", help=f"the lock to clear ({LOCK_ID_FORMS})")
    ],
    clearance: Annotated[
        str | None,
        typer.Option("--clearance", help="FILE or TEXT: the clearance a trusted clinician "
                     "signed for this lock (scalppen clinician sign-clearance)"),
    ] = None,
    clinician: Annotated[str, typer.Option("--clinician", hidden=True)] = "",
    reason: Annotated[str, typer.Option("--reason", hidden=True)] = "",
    role: Annotated[str, typer.Option("--role", hidden=True)] = "",
) -> None:
    """Clear a HOST lock (rule 22) with a clearance signed by a trusted clinician.

    Without --clearance, prints what the clinician needs to sign one. Every clearance
    presented is recorded, accepted or refused (scalppen clinician audit). Firmware
    limits cannot be overridden at all.
    """
    lock_id = lock_id.strip()
    now = options(ctx).now()
    rule = rule_of_lock(lock_id)  # a malformed id is refused before anything else
    if clinician or reason or role:
        raise UsageError(
            "a typed name no longer clears a lock: a clearance is signed by the clinician",
            f"ask them for one, then: scalppen clear {lock_id} --clearance FILE|TEXT",
        )
    if rule in FIRMWARE_RULES or rule not in CLINICIAN_CLEARABLE_RULES:
        validate_clearance(lock_id, clinician_name="-", role="clinician", reason="-", at=now,
                           signed_by="-")
    if not any(p.fullmatch(lock_id) for p in (_SCREENING_LOCK, _ADVERSE_LOCK, _SERVICE_LOCK)):
        raise UsageError(f"{lock_id!r} is not a lock id", f"expected {LOCK_ID_FORMS}")
    with open_db(ctx) as db:
        try:
            found = _find_lock(db, lock_id, now)
            if found.lock.cleared:
                raise UsageError(f"lock {lock_id} is already cleared", "see `scalppen lockouts`")
        except (NotFoundError, UsageError) as exc:
            if clearance is not None:  # what was presented is recorded, whatever became of it
                record_attempt(db, lock_id=lock_id, accepted=False, detail=str(exc),
                               presented=clearance, at=now)
            raise
        prof = found.profile
        if clearance is None:
            _say(f"lock {lock_id} needs a clearance signed by a clinician this toolkit trusts")
            _say(f"the clinician signs one with: {_sign_command(db, lock_id, prof)}")
            _say(f"then: scalppen clear {lock_id} --clearance FILE|TEXT")
            raise typer.Exit(EXIT_REFUSED)
        try:
            accepted = present_clearance(db, clearance, lock_id=lock_id, profile=prof, now=now)
        except ClearanceError as exc:
            refused([f"clearance not accepted: {exc}"])
        still = [k.lock_id for k in _locks_of(db, prof, found.serial, now) if not k.cleared]
    whose = f" for {prof.name}" if prof else ""
    title = RULE_TITLES.get(found.lock.rule, f"rule {found.lock.rule}")
    key = accepted.key
    _say(f"cleared lock {lock_id} ({title}){whose}: signed by {key.name} "
         f"(key {key.fingerprint}), reason: {accepted.clearance.reason}")
    if still:
        _say(f"still locked by: {', '.join(still)}")


def _sign_command(db: Store, lock_id: str, prof: Profile | None) -> str:
    import shlex

    who = f" --profile {shlex.quote(prof.name)}" if prof else ""
    return (f"scalppen clinician sign-clearance {lock_id}{who} --toolkit {toolkit_id(db)} "
            "--reason TEXT")


# ---------------------------------------------------------------------------- lockouts


@handle_errors
def lockouts_cmd(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", help="profile id or name (default: all)")
    ] = None,
    pen: Annotated[
        str | None, typer.Option("--pen", help="the pen in hand, for its service life")
    ] = None,
    now_text: Annotated[
        str | None,
        typer.Option(
            "--now", help="check at this ISO 8601 time instead of now (UTC without an offset)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show what holds sessions back: locks, waits between sessions, the minoxidil hold."""
    now = parse_time(now_text) if now_text else options(ctx).now().astimezone()
    spec = pen_spec(ctx, pen)
    with open_db(ctx) as db:
        pen_obj: Pen | None = resolve_pen(db, spec) if spec else None
        if profile is not None:
            profiles = [resolve_profile(db, profile)]
        else:
            profiles = [p for p in list_profiles(db) if p.role != "clinician"]
        if not profiles:
            _say("no patient profiles yet: add one with scalppen profile add NAME")
            return
        pens = list_pens(db)
        rows: list[Hold] = []
        for prof in profiles:
            if pen_obj is not None:
                serials: list[str | None] = [pen_obj.serial]
            else:
                serials = [p.serial for p in pens if p.owner_profile_id == prof.id] or [None]
            for serial in serials:
                for row in holds_for(db, prof, serial, now):
                    if row not in rows:
                        rows.append(row)
    names = ", ".join(p.name for p in profiles)
    if as_json:
        print_json({"at": now.isoformat(), "profiles": [p.name for p in profiles],
                    "locks": [{"profile": r.who, "rule": r.rule, "why": r.reason,
                               "since": r.since.isoformat() if r.since else None,
                               "lifts": r.lifts, "lock_id": r.lock_id or None}
                              for r in sorted(rows, key=lambda r: (r.who, r.rule))]})
        return
    if not rows:
        _say(f"no locks or waits for {names} at {_when(now, now)}")
        return
    several = len({row.who for row in rows}) > 1
    table = Table(title=f"Lockouts at {_when(now, now)}")
    if several:
        table.add_column("profile", overflow="fold")
    table.add_column("rule", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    table.add_column("lifts", overflow="fold", max_width=22)
    with_ids = any(row.lock_id for row in rows)
    if with_ids:
        table.add_column("lock id", overflow="fold")
    for row in sorted(rows, key=lambda r: (r.who, r.rule)):
        cells = [Text(str(row.rule)), Text(row.reason), Text(row.lifts)]
        cells += [Text(row.lock_id)] if with_ids else []
        table.add_row(*([Text(row.who)] if several else []), *cells)
    console.print(table)
    if with_ids:
        ids = ", ".join(dict.fromkeys(row.lock_id for row in rows if row.lock_id))
        _say(_clear_hint("LOCK_ID") + f" (locks: {ids})")


# ---------------------------------------------------------------------------- report


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "profile"


@handle_errors
def report_cmd(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", help="profile id or name (default: all)")
    ] = None,
    pen: Annotated[
        str | None, typer.Option("--pen", help="one pen's serial (default: every pen)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="the HTML file to write (default: in SCALPPEN_HOME/reports)"),
    ] = None,
    now_text: Annotated[
        str | None,
        typer.Option(
            "--now", help="report at this ISO 8601 time instead of now (UTC without an offset)"
        ),
    ] = None,
    room: Annotated[
        str | None, typer.Option("--room", help="only what was done in this room (clinic)")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="only what this user did (clinic)")
    ] = None,
) -> None:
    """Write the HTML report: sessions, wear, lockouts, clearances, permits and more.

    With --room or --user, only what was done in that room or by that user (clinic).
    """
    # the policy's clock, as `lockouts` reads it (a sim's virtual time when the pen is one)
    now = parse_time(now_text) if now_text else options(ctx).now()
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a directory", f"give a file, e.g. {out / 'report.html'}")
    spec = pen_spec(ctx, pen)
    from scalppen.report import write_report

    with open_db(ctx) as db:
        prof = resolve_profile(db, profile) if profile is not None else None
        serial = resolve_pen(db, spec).serial if spec else None
        try:
            if out is None:
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
                who = _slug(prof.name) if prof else "all"
                out = paths.reports_dir() / f"report-{who}-{stamp}.html"
            path = write_report(db, out, profile_id=prof.id if prof else None,
                                pen_serial=serial, now=now, room=room, user=user)
        except OSError as exc:
            raise UsageError(f"cannot write the report to {exc.filename or out} "
                             f"({exc.strerror or exc})", "choose a writable place with --out"
                             ) from None
    _say(f"report written to {path}")


def register(app: typer.Typer) -> None:
    """Add ``profile``, ``screen``, ``adverse``, ``clear``, ``lockouts`` and ``report``."""
    app.add_typer(profile_app, name="profile")
    app.command("screen")(screen_cmd)
    app.command("adverse")(adverse_cmd)
    app.command("clear")(clear_cmd)
    app.command("lockouts")(lockouts_cmd)
    app.command("report")(report_cmd)
