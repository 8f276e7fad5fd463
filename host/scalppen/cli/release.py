"""`scalppen release`: the manufacturer's release key for signed updates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalppen.cli.common import UsageError, console, handle_errors

app = typer.Typer(help="The release key that signs firmware updates.", no_args_is_help=True)


@app.command("keygen")
@handle_errors
def keygen_cmd(
    out: Annotated[Path, typer.Option(
        "--out", help="the private key file to write (owner-only; FILE.pub gets the public "
        "key)")],
) -> None:
    """Make a release key (Ed25519): `scalppen build --sign FILE` signs images with it."""
    from scalppen.release import ReleaseKeyError, key_id, keygen

    try:
        public = keygen(out)
    except ReleaseKeyError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"release key {key_id(public).hex()} written to {out} (keep it off the "
                  f"laptops that treat patients); public key in {out}.pub")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="release")
