"""The ``clisonix`` Typer application: registers one module per subcommand.

Command modules import only typer/rich at module level; the heavy rooms (numba, pydicom,
scikit-image, joblib) are imported inside the commands so that ``clisonix --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from clisonix_cli import __version__, runtime
from clisonix_cli.errors import AbortedError, ClisonixError, UsageError

#: Set to 1 to let an unexpected exception end with its Python traceback (for bug reports).
DEBUG_ENV = "CLISONIX_DEBUG"


def _click_kind(exc: BaseException) -> str | None:
    """Name the Click exception family of ``exc`` (Typer may vendor its own Click copy)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    for kind in ("NoArgsIsHelpError", "UsageError", "ClickException", "Abort"):
        if kind in names:
            return kind
    return None


def _fail(error: ClisonixError) -> NoReturn:
    from clisonix_cli.cli._console import err_console, safe

    err_console.print(safe(error.one_line()), style="bold red")
    sys.exit(error.exit_code)


class OneLineErrors(TyperGroup):
    """The root group: every error leaves as one ``CLX-E...`` line on stderr, never a traceback.

    Click's usage errors (unknown option, bad value, missing argument) become ``CLX-E001``
    with exit code 2; a :class:`~clisonix_cli.errors.ClisonixError` that escaped a command
    prints its own line and exit code; an abort (end of input) is ``CLX-E002``, exit code 1;
    any other exception is a bug, reported as one ``CLX-E000`` line with exit code 4
    (``CLISONIX_DEBUG=1`` shows the traceback instead).
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, exit with the documented code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except ClisonixError as exc:
            _fail(exc)
        except Exception as exc:
            kind = _click_kind(exc)
            if kind == "NoArgsIsHelpError":  # bare `clisonix`: the help text, as before
                exc.show()  # type: ignore[attr-defined]
                sys.exit(int(getattr(exc, "exit_code", 2)))
            if kind in ("UsageError", "ClickException"):
                ctx = getattr(exc, "ctx", None)
                hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
                message = exc.format_message().rstrip(". ")  # type: ignore[attr-defined]
                _fail(UsageError(f"{message}{hint}"))
            if kind == "Abort":
                _fail(AbortedError("aborted (end of input or interrupted)"))
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            _fail(
                ClisonixError(
                    f"unexpected internal error ({type(exc).__name__}: {exc}); this is a "
                    f"bug - rerun with {DEBUG_ENV}=1 for the traceback and report it"
                )
            )
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="clisonix",
    cls=OneLineErrors,
    help="Turn folders of DICOM studies into analysis-ready data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold patient data
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clisonix {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Turn folders of DICOM studies into analysis-ready data."""


def _register() -> None:
    # One module per subcommand; each exposes a function named like the command.
    from clisonix_cli.cli import commands

    for name, func in commands.COMMANDS:
        app.command(name)(func)


_register()


def main() -> None:
    """Console-script entry point."""
    runtime.apply_process_policy()  # inherited by every process the command starts
    app()
