"""``clisonix verify``: re-check every output in OUT_DIR against its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clisonix_cli.cli._console import emit_json, reporting_errors, say
from clisonix_cli.cli._options import JsonFlag


def verify(
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT_DIR", help="OUT_DIR of a transform run (with its manifest)."
        ),
    ],
    json_out: JsonFlag = False,
) -> None:
    """Re-hash every output against the merged manifest: missing, changed, extra files.

    A recorded path that leaves OUT_DIR or passes a symbolic link is reported as tampered
    (CLX-E218) and never read. Exit 0 when every output matches, 1 when any file is
    missing, changed, extra or tampered,
    2 when OUT_DIR holds no manifest, 4 on an internal error (a bug).

    Example: clisonix verify out/ --json
    """
    from clisonix_cli.taskarray.verify import verify as run_verify

    with reporting_errors():
        report = run_verify(out_dir)
    if json_out:
        emit_json(report.document())
    for problem in report.problems():
        say(problem.one_line(), style="red")
    say(
        f"{report.checked} output(s) checked from {', '.join(report.manifests)}: "
        f"{len(report.missing)} missing, {len(report.changed)} changed, "
        f"{len(report.extra)} extra, {len(report.tampered)} tampered",
        style="bold green" if report.ok else "bold red",
    )
    raise typer.Exit(report.exit_code)
