"""``scan``, ``pair``, ``status``, ``wear``: the pen itself."""

from __future__ import annotations

import asyncio
import re
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime

import typer
from rich.table import Table

from scalppen import store as S
from scalppen.cli.common import (
    JSON_HELP,
    UsageError,
    console,
    fail,
    handle_errors,
    print_json,
    run,
)
from scalppen.cli.connect import connected_pen, pen_serial, radio_for, target_for
from scalppen.cli.context import options
from scalppen.cli.storage import open_db
from scalppen.refusals import describe
from scalppen.results import update_text
from scalppen.transports.base import WrongPasskey
from scalppen.workflows.pairing import pair_pen

_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f-]{36}$")


def _when(unix: int) -> str:
    if not unix:
        return "-"
    return datetime.fromtimestamp(unix, UTC).astimezone().strftime("%Y-%m-%d %H:%M")


@handle_errors
def scan_cmd(
    ctx: typer.Context,
    timeout: float = typer.Option(5.0, "--timeout", min=0.5, max=60, help="seconds to listen"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List pens advertising nearby (exit status 1 when none is found)."""
    opts = options(ctx)

    async def go() -> None:
        async with radio_for(opts) as radio:
            with console.status("scanning...") if not as_json else nullcontext():
                found = await radio.scan(timeout)
        if as_json:
            print_json({"pens": [{"name": f.name, "address": f.address, "rssi": f.rssi}
                                 for f in found]})
        if not found:
            fail(f"no pen found in {timeout:g} s",
                 "press its button (an idle pen sleeps and does not advertise), bring it closer "
                 "(a pen connected to another computer does not advertise either), or listen "
                 "longer with --timeout")
        if as_json:
            return
        table = Table("name", "address", "signal")
        for f in found:
            table.add_row(f.name, f.address, f"{f.rssi} dBm" if f.rssi is not None else "-")
        console.print(table)

    run(go())


#: Passkeys a user may type before ``pair`` gives up.
PASSKEY_TRIES = 3


@handle_errors
def pair_cmd(
    ctx: typer.Context,
    address: str = typer.Argument(None, help="the pen's address (default: scan and choose)"),
    passkey: str = typer.Option(None, "--passkey", help="the 6 digits the pen shows"),
    profile: int = typer.Option(None, "--owner", help="profile id of the pen's owner"),
) -> None:
    """Pair with a pen: type the passkey it shows; it gets a permit key from this computer."""
    opts = options(ctx)
    if address is not None and not _ADDRESS.match(address):
        raise UsageError(f"{address!r} is not a Bluetooth address", "e.g. C0:5C:A1:00:00:01")
    if passkey is not None and not re.fullmatch(r"\d{6}", passkey):
        raise UsageError("the passkey is 6 digits", "type the number on the pen's display")

    async def ask() -> str:
        if passkey is not None:
            return passkey
        return await asyncio.to_thread(
            typer.prompt, "Passkey shown on the pen (6 digits)"
        )

    # Typed at the prompt: three tries (the pen shows a new passkey each time and
    # backs off only after its third failure, firmware/pen/pairing.py); given with
    # --passkey: one.
    tries = 1 if passkey is not None else PASSKEY_TRIES

    async def go() -> None:
        with open_db(ctx) as db:
            async with radio_for(opts) as radio:
                target = address
                if target is None:
                    with console.status("scanning..."):
                        found = await radio.scan(5.0)
                    if not found:
                        raise UsageError("no pen found", "press the pen's button (an idle "
                                         "pen sleeps) and bring it closer")
                    target = found[0].address
                    console.print(f"pairing with {found[0].name} ({target})")
                for attempt in range(1, tries + 1):
                    try:
                        paired = await pair_pen(radio, db, target, ask, opts.now, profile)
                        break
                    except WrongPasskey:
                        if attempt == tries:
                            raise
                        left = tries - attempt
                        console.print(f"wrong passkey: try again ({left} "
                                      f"{'try' if left == 1 else 'tries'} left), with the new "
                                      "number the pen shows")
        info = paired.info
        console.print(
            f"paired with {info.model} {info.serial} (firmware {info.fw_version}); "
            f"permit key {'set' if paired.new_key else 'kept'}"
        )
        if paired.revoked:
            console.print(
                f"the pen forgot the bonds of {len(paired.revoked)} other computer(s): "
                + ", ".join(paired.revoked) + " (they must pair again, in the pen's window)")
        elif paired.new_key:
            console.print("no other computer was bonded with the pen")

    run(go())


@handle_errors
def status_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show the pen's state, depth, battery, cartridge and lockout."""
    opts = options(ctx)

    async def go() -> None:
        with open_db(ctx) as db:
            target = target_for(db, opts)
        async with connected_pen(opts, target) as pen:
            st = await pen.status()
            info = pen.info
        assert info is not None
        if as_json:
            doc = {k: getattr(st, k) for k in st.__dataclass_fields__}
            doc["state"] = getattr(st.state, "name", str(st.state)).lower()
            doc["fault"] = describe(st.fault) if st.fault else None
            print_json({"pen": {"model": info.model, "serial": info.serial,
                                "firmware": info.fw_version, "profile": info.profile,
                                "last_update": {
                                    "outcome": getattr(info.update, "name",
                                                       str(info.update)).lower(),
                                    "version": info.update_version}},
                        "status": doc})
            return
        table = Table(show_header=False, box=None)
        rows = [
            ("pen", f"{info.model} {info.serial}, firmware {info.fw_version}"),
            ("last update", update_text(info.update, info.update_version)),
            ("state", getattr(st.state, "name", str(st.state)).lower()),
            ("fault", "none" if not st.fault else describe(st.fault)),
            ("depth", f"set {st.depth_set_um / 1000:.2f} mm, "
                      f"actual {st.depth_actual_um / 1000:.2f} mm"),
            ("battery", f"{st.battery_pct} %" + (" (charging)" if st.charging else "")),
            ("cartridge", "inserted" if st.cartridge else "none"),
            ("skin contact", "yes" if st.contact else "no"),
            ("pen clock", _when(st.clock) if st.clock else "not set"),
            ("last session", f"{_when(st.last_session_end)} at "
                             f"{st.last_session_depth_um / 1000:.2f} mm"
             if st.last_session_end else "-"),
            ("lockout until", _when(st.lockout_until)),
        ]
        for k, v in rows:
            table.add_row(k, v)
        console.print(table)

    run(go())


@handle_errors
def wear_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Read the cartridge's and the handpiece's wear, and store it."""
    opts = options(ctx)

    async def go() -> None:
        with open_db(ctx) as db:
            target = target_for(db, opts)
            async with connected_pen(opts, target) as pen:
                wear = await pen.wear()
                serial = pen_serial(target, pen)
            S.record_wear(db, serial, asdict(wear), at=opts.now())
        if as_json:
            doc = asdict(wear)
            doc["cart_id"] = bytes(doc["cart_id"]).hex()
            print_json({"pen": serial, **doc})
            return
        show_wear(asdict(wear))

    run(go())


def show_wear(w: dict[str, object]) -> None:
    table = Table(show_header=False, box=None)
    if w["cartridge"]:
        used, rated = int(w["strokes_used"]), int(w["strokes_rated"])  # type: ignore[call-overload]
        share = used / rated if rated else 0.0
        table.add_row("cartridge", f"{bytes(w['cart_id']).hex()}, {w['needles']} needles")  # type: ignore[call-overload]
        table.add_row("strokes", f"{used:,} of {rated:,} rated ({share:.0%})")
        table.add_row("first use", _when(int(w["first_use"])))  # type: ignore[call-overload]
        table.add_row("expires", _when(int(w["expiry"])))  # type: ignore[call-overload]
    else:
        table.add_row("cartridge", "none inserted")
    table.add_row("handpiece strokes", f"{w['hp_strokes']:,}")
    table.add_row("punctures", f"{w['hp_punctures']:,}")
    table.add_row("sessions", str(w["hp_sessions"]))
    table.add_row("first session", _when(int(w["hp_first_session"])))  # type: ignore[call-overload]
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_cmd)
    app.command("pair")(pair_cmd)
    app.command("status")(status_cmd)
    app.command("wear")(wear_cmd)
