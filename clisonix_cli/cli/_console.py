"""The one stderr console, and the mapping of errors to one-line messages and exit codes.

Text that comes from the input (header values, file names) can hold terminal escape
sequences: every line printed for a person goes through :func:`printable`, which shows
control characters as visible escapes (``\x1b``) instead of sending them to the terminal.
JSON on stdout is left exact (``json.dumps`` escapes them its own way).
"""

from __future__ import annotations

import json
import re
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

# C0 and C1 controls (ESC, CR, BS, BEL, CSI...), DEL, and the Unicode line separators and
# bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters written as visible escapes (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def safe(text: object) -> str:
    """Text from the input, ready for a Rich console: controls escaped, no markup."""
    return escape(printable(str(text)))


def say(message: str, *, style: str | None = None) -> None:
    """Print a plain line on stderr (controls escaped, no markup)."""
    err_console.print(safe(message), style=style)


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
        err_console.print(safe(exc.one_line()), style="bold red")
        raise typer.Exit(exc.exit_code) from None
