"""The ``clisonix`` Typer application: registers one module per subcommand.

Command modules import only typer/rich at module level; the heavy rooms (numba, pydicom,
scikit-image, joblib) are imported inside the commands so that ``clisonix --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from clisonix_cli import __version__

app = typer.Typer(
    name="clisonix",
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
    app()
