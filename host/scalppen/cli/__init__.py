"""The ``scalppen`` command line (Typer), one module per command group."""
