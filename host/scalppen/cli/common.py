"""What every command shares: the console, one-line errors, the async runner."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
T = TypeVar("T")


class UsageError(Exception):
    """Bad input from the user, found before anything was touched."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


#: Exit statuses: 0 done, 1 an error, 2 bad input (nothing touched), 3 refused by the
#: safety policy of the host or of the pen (the same prefix, ``refused:``, for both),
#: 130 interrupted.
EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED, EXIT_INTERRUPTED = 1, 2, 3, 130


def refused(lines: list[str]) -> NoReturn:
    """A safety refusal (host policy or pen): ``refused: ...`` lines, exit status 3."""
    for line in lines:
        console.print(f"refused: {line}", markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_REFUSED)


def fail(message: str, hint: str = "", code: int = 1) -> NoReturn:
    """Print one line, ``error: what went wrong (what to do)``, and exit."""
    text = f"error: {message}"
    if hint:
        text += f" ({hint})"
    err_console.print(text, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn every failure into one line and a non-zero exit, never a traceback.

    ``SCALPPEN_DEBUG=1`` shows the traceback for an unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except UsageError as exc:
            fail(str(exc), exc.hint, code=EXIT_USAGE)
        except Exception as exc:
            from scalppen.client import PenRefused

            if isinstance(exc, PenRefused):
                refused([f"the pen: {_one_line(exc)}"])
            if os.environ.get("SCALPPEN_DEBUG"):
                raise
            hint = getattr(exc, "hint", "") or ""
            fail(_one_line(exc), hint)

    return wrapper


def print_json(doc: Any) -> None:
    """``--json``: one JSON document on standard output and nothing else there."""
    import json

    sys.stdout.write(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


#: ``--json`` on read commands: one JSON document on standard output.
JSON_HELP = "print one JSON document instead of the table"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion (commands are synchronous for Typer)."""
    return asyncio.run(coro)


def is_tty() -> bool:
    return sys.stdout.isatty()
