"""``clisonix qc``: per-series quality metrics, header consistency and drift, as files."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from clisonix_cli.cli._console import emit_json, err_console, reporting_errors, say
from clisonix_cli.cli._options import (
    Backend,
    FilesFrom,
    InDir,
    Jobs,
    JsonFlag,
    Scheduler,
    SchedulerFile,
)

_SHOWN = 20


class FailOn(StrEnum):
    """What makes ``clisonix qc`` exit 1 (a drifted group always does)."""

    warn = "warn"
    fail = "fail"
    drift = "drift"


BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        envvar="CLISONIX_QC_BASELINE",
        metavar="QC.json",
        help="qc.json of an earlier run: drift and outliers are judged against it.",
    ),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="CLISONIX_QC_KEY_FILE",
        help="Key (32+ bytes, mode 600) to hash station names into scanner groups; "
        "without it stations are left out.",
    ),
]
FailOnOpt = Annotated[
    FailOn,
    typer.Option(
        "--fail-on",
        envvar="CLISONIX_QC_FAIL_ON",
        help="Exit 1 on: warn (any warn or fail), fail (any fail), drift (only drift).",
    ),
]


def qc(
    in_dir: InDir,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            envvar="CLISONIX_QC_OUT",
            help="Folder for qc.json, qc.csv and report.html (created; not inside "
            "IN_DIR).",
        ),
    ] = Path("qc"),
    baseline: BaselineOpt = None,
    key_file: KeyFileOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify",
            envvar="CLISONIX_QC_DEIDENTIFY",
            help="Leave series descriptions out of qc.json, qc.csv and the report.",
        ),
    ] = False,
    jobs: Jobs = 0,
    backend: Backend = None,
    scheduler: Scheduler = None,
    scheduler_file: SchedulerFile = None,
    files_from: FilesFrom = None,
    json_out: JsonFlag = False,
) -> None:
    """Measure every image stack under IN_DIR, check headers and drift, write a report.

    Writes OUT/qc.json (one record per series), OUT/qc.csv and OUT/report.html. Exit 0: no
    series at the --fail-on level and no drifted group; 1: some; 2 usage or configuration
    error; 3 environment error.

    Example: clisonix qc scans/ --out qc/ --baseline last-month/qc.json
    """
    from clisonix_cli.cli._progress import RunProgress
    from clisonix_cli.qc.run import QcOptions
    from clisonix_cli.taskarray.qcrun import QcRunConfig, run_qc

    started = time.monotonic()
    with reporting_errors():
        config = QcRunConfig(
            in_dir=in_dir,
            out_dir=out,
            qc=QcOptions(
                baseline=baseline,
                key_file=key_file,
                fail_on=fail_on.value,
                deidentify=deidentify,
            ),
            jobs=jobs,
            backend=(backend or ("dask" if scheduler or scheduler_file else "auto"))
            .strip()
            .lower(),
            scheduler=scheduler,
            scheduler_file=scheduler_file,
            files_from=files_from,
        )
        progress = RunProgress(rich_bar=err_console.is_terminal)
        with progress:
            result = run_qc(config, on_event=progress)
    doc = result.doc
    if json_out:
        emit_json(doc)
    s = doc["summary"]
    failing = [x for x in doc["series"] if x["status"] != "pass"]
    for x in failing[:_SHOWN]:
        codes = ", ".join(dict.fromkeys(r["code"] for r in x["reasons"]))
        say(f"{x['status']}: {x['task']} ({x['modality']}): {codes}",
            style="red" if x["status"] == "fail" else "yellow")  # fmt: skip
    if len(failing) > _SHOWN:
        say(f"... and {len(failing) - _SHOWN} more: see {out / 'qc.json'}")
    for gid in s["drifted_groups"]:
        say(f"drift: scanner group {gid} (see {out / 'report.html'})", style="red")
    say(
        f"{s['series']} series: {s['pass']} pass, {s['warn']} warn, {s['fail']} fail; "
        f"{len(s['drifted_groups'])} of {s['groups']} group(s) drifted in "
        f"{time.monotonic() - started:.1f} s; report: {out / 'report.html'}",
        style="bold green" if result.exit_code == 0 else "bold red",
    )
    raise typer.Exit(result.exit_code)
