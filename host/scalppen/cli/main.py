"""Entry point of the ``scalppen`` command line."""

import typer

app = typer.Typer(no_args_is_help=True, help="Scalp microneedling pen toolkit.")


def main() -> None:
    app()
