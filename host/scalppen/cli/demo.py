"""``scalppen demo``: the whole story against the embedded virtual pen."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from scalppen.cli.common import console, handle_errors, run


@handle_errors
def demo_cmd(
    out: Path = typer.Option(None, "--out", help="keep the demo's files here (default: temp)"),
    speed: float = typer.Option(120.0, "--speed", min=1, max=2000,
                                help="virtual seconds per real second during the session"),
) -> None:
    """Pair a virtual pen, screen, run a 0.5 mm session, sync, read wear, hit the lockout."""
    from scalppen.demo import run_demo

    def say(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)

    home = out or Path(tempfile.mkdtemp(prefix="scalppen-demo-"))
    console.print(f"scalppen demo (files in {home})", style="bold")
    result = run(run_demo(home, say, speed=speed))
    console.print(f"demo finished; open the report: {result.report}", style="bold green",
                  markup=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
