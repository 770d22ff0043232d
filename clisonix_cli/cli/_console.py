"""The one stderr console, and the mapping of errors to one-line messages and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from clisonix_cli.errors import ClisonixError

# stdout carries data and --json; progress, warnings and errors go here.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def say(message: str, *, style: str | None = None) -> None:
    """Print a plain (escaped) line on stderr."""
    err_console.print(escape(message), style=style)


def emit_json(doc: Any) -> None:
    """Write one JSON document on stdout (sorted keys, so the same data gives the same bytes)."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn a :class:`ClisonixError` into ``CLX-Exxx: message`` on stderr and its exit code."""
    try:
        yield
    except ClisonixError as exc:
        err_console.print(escape(exc.one_line()), style="bold red")
        raise typer.Exit(exc.exit_code) from None
