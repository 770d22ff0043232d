"""``clisonix bench``: time the transform core and the whole job; size hardware.

Rich tables go to stdout on a terminal; ``--json`` prints the same figures as one JSON
document instead. Progress lines go to stderr. Heavy rooms are imported inside the command.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from clisonix_cli.cli._bench_tables import render
from clisonix_cli.cli._console import emit_json, err_console, reporting_errors, say
from clisonix_cli.cli._options import JsonFlag, OpSpecs, PipelineFile


def _split(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def bench(
    pipeline: PipelineFile = None,
    op: OpSpecs = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            envvar="CLISONIX_DATA",
            exists=True,
            file_okay=False,
            help="Your DICOM folder instead of the synthetic CT workload (read only).",
        ),
    ] = None,
    ops: Annotated[
        list[str] | None,
        typer.Option(
            "--ops",
            envvar="CLISONIX_OPS",
            help="Ops of the per-op suite, comma-separated (default: every op).",
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            "--repeats",
            envvar="CLISONIX_REPEATS",
            min=1,
            help="Timed calls per figure after one warm-up (default 5, 3 with --quick).",
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            "--size",
            envvar="CLISONIX_SIZE",
            help="Slices (512x512) of the per-op volume: a number or small (16), "
            "medium (64, default), large (256); 4 with --quick.",
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            envvar="CLISONIX_QUICK",
            help="A short run: 4 slices, 3 repeats, 4 small series, 0.25 s per gated figure.",
        ),
    ] = False,
    suite: Annotated[
        list[str] | None,
        typer.Option(
            "--suite",
            envvar="CLISONIX_SUITE",
            help="Run only these suites (comma-separated or repeated): memory, ops, e2e, "
            "scan, stages, compile, peak, peers.",
        ),
    ] = None,
    peers: Annotated[
        bool,
        typer.Option(
            "--peers",
            envvar="CLISONIX_PEERS",
            help="Also time whole jobs against dcm2niix and a SimpleITK pipeline, "
            "process vs process, when installed.",
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            envvar="CLISONIX_TARGET",
            help="Target rate, e.g. 10M/h, 50k/h, 1000/s: cores needed (extrapolated).",
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            envvar="CLISONIX_COMPARE",
            dir_okay=False,
            help="An earlier --output/--json document: print what moved; exit 1 when a "
            "figure got worse beyond --threshold and significantly (noise is not flagged).",
        ),
    ] = None,
    threshold: Annotated[
        str,
        typer.Option(
            "--threshold",
            envvar="CLISONIX_THRESHOLD",
            help="Relative change that counts as a regression for --compare (it must "
            "also be statistically significant).",
        ),
    ] = "10%",
    min_time: Annotated[
        float | None,
        typer.Option(
            "--min-time",
            envvar="CLISONIX_MIN_TIME",
            min=0.0,
            help="Seconds of timed calls per gated figure, at least (default 1, "
            "0.25 with --quick): short calls are repeated until they add up to it.",
        ),
    ] = None,
    json_out: JsonFlag = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            envvar="CLISONIX_OUTPUT",
            dir_okay=False,
            help="Also write the JSON document to this file.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            envvar="CLISONIX_PLOT",
            dir_okay=False,
            help="Draw throughput vs jobs, per-op speed-ups over the strongest reference "
            "and the whole-job rows into a PNG.",
        ),
    ] = None,
) -> None:
    """Time every op (numba vs reference), the whole transform job, scan, compile, memory.

    Without options it synthesizes a CT workload of 512x512 slices in a temporary folder
    (removed afterwards), so it works on a fresh install.

    Example: clisonix bench --quick --ops window,rescale --target 10M/h --output run.json
    """
    with reporting_errors():
        from clisonix_cli.bench import compare as cmp
        from clisonix_cli.bench import workload as wl
        from clisonix_cli.bench.run import BenchConfig, run_bench, select_suites
        from clisonix_cli.bench.sizing import parse_rate

        slices, label = wl.parse_size(size, quick=quick)
        limit = cmp.parse_threshold(threshold)
        if target is not None:
            parse_rate(target)  # fail before an expensive run
        old = cmp.load_document(compare) if compare is not None else None
        suites = select_suites(_split(suite), peers=peers)
        op_names = _split(ops) or None
        cfg = BenchConfig(
            quick=quick,
            slices=slices,
            size_label=label,
            repeats=repeats if repeats is not None else (3 if quick else 5),
            ops=tuple(op_names) if op_names else None,
            op_specs=tuple(op or ()),
            pipeline_file=pipeline,
            data=data,
            suites=suites,
            target=target,
            min_time_s=min_time,
        )
        doc = run_bench(cfg, progress=lambda msg: say(f"bench: {msg}", style="dim"))
        regressions = 0
        if old is not None:
            doc["comparison"] = cmp.comparison_section(old, doc, threshold=limit)
            regressions = doc["comparison"]["regressions"]
        if output is not None:
            from clisonix_cli.fsio import atomic_write_bytes

            atomic_write_bytes(
                output, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
            )
        if plot is not None:
            from clisonix_cli.bench.report import write_plot

            write_plot(doc, plot)
        if json_out:
            emit_json(doc)
        else:
            out = Console()
            # on a pipe or file there is no width to respect: keep tables whole
            render(doc, out if out.is_terminal else Console(width=150))
        for section, message in sorted(doc["notes"].items()):
            say(f"bench: note: {section}: {message}", style="dim")
        for section, message in sorted(doc["errors"].items()):
            err_console.print(
                escape(f"bench: {section} not measured: {message}"), style="yellow"
            )
        if regressions:
            err_console.print(
                escape(
                    f"bench: {regressions} figure(s) worse than {compare} by more than "
                    f"{threshold}, significantly (see the comparison table)"
                ),
                style="bold red",
            )
            raise typer.Exit(1)
        if doc["errors"]:  # the run finished, but some figures could not be measured
            raise typer.Exit(1)
