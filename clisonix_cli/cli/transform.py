"""``clisonix transform``: run a pipeline of ops over every DICOM stack under IN_DIR."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clisonix_cli.cli._console import (
    emit_json,
    err_console,
    reporting_errors,
    safe,
    say,
)
from clisonix_cli.cli._options import (
    AllowBurnedIn,
    AllowEmpty,
    Backend,
    ConnectTimeout,
    DeidOptions,
    DryRun,
    FailFast,
    FilesFrom,
    FollowOutside,
    FollowSymlinks,
    InDir,
    Jobs,
    JsonFlag,
    KeyFile,
    OpSpecs,
    Overwrite,
    PipelineFile,
    Resume,
    Retries,
    Scheduler,
    SchedulerFile,
    ShardSpec,
    TaskTimeout,
    TlsCaFile,
    TlsCert,
    TlsKey,
)
from clisonix_cli.cli.qc import FailOn
from clisonix_cli.errors import ManifestTamperedError, TaskCancelledError

if TYPE_CHECKING:
    from clisonix_cli.taskarray.execute import RunResult

_SHOWN = 20  # failed tasks / bad files listed one by one on stderr
_CANCELLED = TaskCancelledError.code


def transform(
    in_dir: InDir,
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT_DIR",
            help="Output folder (created; the only place written; not inside IN_DIR).",
            show_default=False,
        ),
    ],
    pipeline: PipelineFile = None,
    op: OpSpecs = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            envvar="CLISONIX_FORMAT",
            help="Output format: nifti, nifti-gz, npy, png (one PNG per 2-D image or "
            "frame; runs the voi display pipeline unless the pipeline maps intensities) "
            "or dicom.",
        ),
    ] = "nifti-gz",
    jobs: Jobs = 0,
    backend: Backend = None,
    scheduler: Scheduler = None,
    scheduler_file: SchedulerFile = None,
    connect_timeout: ConnectTimeout = 10.0,
    retries: Retries = 0,
    task_timeout: TaskTimeout = None,
    shard: ShardSpec = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    json_out: JsonFlag = False,
    fail_fast: FailFast = False,
    gaps: Annotated[
        str,
        typer.Option(
            "--gaps",
            envvar="CLISONIX_GAPS",
            metavar="split|fail|keep",
            help="A series with missing slices: split into its contiguous runs "
            "(default), fail, or keep as one volume with the gap noted in the sidecar.",
        ),
    ] = "split",
    files_from: FilesFrom = None,
    qc: Annotated[
        bool,
        typer.Option(
            "--qc",
            envvar="CLISONIX_QC",
            help="Also measure every series from the pixels being converted and write "
            "qc.json, qc.csv and report.html into OUT_DIR (docs/qc.md).",
        ),
    ] = False,
    qc_baseline: Annotated[
        Path | None,
        typer.Option(
            "--qc-baseline",
            envvar="CLISONIX_QC_BASELINE",
            metavar="QC.json",
            help="With --qc: qc.json of an earlier run (drift, outliers).",
        ),
    ] = None,
    qc_key_file: Annotated[
        Path | None,
        typer.Option(
            "--qc-key-file",
            envvar="CLISONIX_QC_KEY_FILE",
            help="With --qc: key to hash station names (as qc --key-file).",
        ),
    ] = None,
    qc_fail_on: Annotated[
        FailOn,
        typer.Option(
            "--qc-fail-on",
            envvar="CLISONIX_QC_FAIL_ON",
            help="With --qc: exit 1 on warn, fail or drift (as qc --fail-on).",
        ),
    ] = FailOn.fail,
    qc_deidentify: Annotated[
        bool,
        typer.Option(
            "--qc-deidentify",
            envvar="CLISONIX_QC_DEIDENTIFY",
            help="With --qc: leave series descriptions out (as qc --deidentify).",
        ),
    ] = False,
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify",
            envvar="CLISONIX_DEIDENTIFY",
            help="De-identify every output (PS3.15 Basic Profile, keyed UIDs, no "
            "identifier in names, headers, sidecars, manifest or messages); needs "
            "--key-file.",
        ),
    ] = False,
    key_file: KeyFile = None,
    option: DeidOptions = None,
    allow_burned_in: AllowBurnedIn = False,
    follow_symlinks: FollowSymlinks = False,
    follow_symlinks_outside: FollowOutside = False,
    allow_empty: AllowEmpty = False,
    max_decode_ratio: Annotated[
        float,
        typer.Option(
            "--max-decode-ratio",
            envvar="CLISONIX_MAX_DECODE_RATIO",
            metavar="N",
            help="Decoded bytes a compressed file may give per byte of its size (every "
            "file may reach 64 MiB); more fails the file with CLX-E210.",
        ),
    ] = 100.0,
    max_decoded_mib: Annotated[
        int,
        typer.Option(
            "--max-decoded-mib",
            envvar="CLISONIX_MAX_DECODED_MIB",
            metavar="MIB",
            help="Absolute cap on the decoded MiB of one compressed file (CLX-E210).",
        ),
    ] = 8192,
    tls_ca_file: TlsCaFile = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
) -> None:
    """Run a pipeline of ops over every DICOM stack under IN_DIR into OUT_DIR.

    One task per image stack; outputs are written atomically with a manifest record per task
    (OUT_DIR/manifest.jsonl). Exit 0 all tasks ok, 1 some failed (or part of IN_DIR could
    not be read), 2 usage or configuration error (IN_DIR without any DICOM image unless
    --allow-empty), 3 environment error (OUT_DIR not writable or holding a symbolic link
    where clisonix writes, scheduler unreachable or TLS mismatch), 4 internal error (a
    bug).

    Example: clisonix transform scans/ out/ --op rescale --op window:preset=brain --jobs 4
    """
    from clisonix_cli.cli._progress import RunProgress
    from clisonix_cli.qc.run import QcOptions
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.execute import run

    started = time.monotonic()
    if not qc and (qc_baseline or qc_key_file or qc_deidentify):
        say("--qc-baseline, --qc-key-file and --qc-deidentify take effect with --qc",
            style="yellow")  # fmt: skip
    with reporting_errors():
        settings = None
        if deidentify:
            from clisonix_cli.dicom.deid.settings import settings_from

            settings = settings_from(key_file, option, allow_burned_in=allow_burned_in)
            if qc:  # QC files name stations and series: not yet de-identified
                from clisonix_cli.errors import UsageError

                raise UsageError(
                    "--qc cannot be combined with --deidentify yet (its qc.json and "
                    "report.html are not de-identified); run clisonix qc --deidentify "
                    "on the de-identified output instead"
                )
        elif key_file is not None or option or allow_burned_in:
            from clisonix_cli.errors import UsageError

            raise UsageError(
                "--key-file, --option and --allow-burned-in apply to --deidentify; "
                "add --deidentify or drop them"
            )
        config = RunConfig.from_cli(
            in_dir=in_dir,
            out_dir=out_dir,
            ops=op,
            pipeline=pipeline,
            fmt=fmt,
            jobs=jobs,
            backend=backend,
            scheduler=scheduler,
            scheduler_file=scheduler_file,
            retries=retries,
            task_timeout=task_timeout,
            shard=shard,
            resume=resume,
            overwrite=overwrite,
            dry_run=dry_run,
            fail_fast=fail_fast,
            files_from=files_from,
            connect_timeout=connect_timeout,
            gaps=gaps,
            qc=QcOptions(
                baseline=qc_baseline,
                key_file=qc_key_file,
                fail_on=qc_fail_on.value,
                deidentify=qc_deidentify,
            )
            if qc
            else None,
            deid=settings,
            follow_symlinks=follow_symlinks,
            follow_symlinks_outside=follow_symlinks_outside,
            allow_empty=allow_empty,
            max_decode_ratio=max_decode_ratio,
            max_decoded_mib=max_decoded_mib,
            tls_ca_file=tls_ca_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        progress = RunProgress(rich_bar=err_console.is_terminal and not dry_run)
        with progress:
            result = run(config, on_event=progress)
    if json_out:
        emit_json(result.summary())
    elif dry_run:
        _render_plan(result)
    if not dry_run:
        _render_summary(result, time.monotonic() - started)
    raise typer.Exit(result.exit_code)


def _render_plan(result: RunResult) -> None:
    """The plan as a table on stdout (data, so stdout)."""
    from rich.console import Console
    from rich.table import Table

    doc = result.summary()
    table = Table(title=None, show_lines=False)
    for col in ("task", "shard", "study", "series", "stack", "files", "shape", "MiB"):
        table.add_column(col, justify="right" if col in ("files", "MiB") else "left")
    for t in doc["tasks"]:
        table.add_row(
            t["task"],
            str(t["shard"]),
            safe(t["study"]),
            str(t["series_number"]),
            safe(t["stack_key"]),
            str(t["n_files"]),
            "x".join(map(str, t["shape"])),
            f"{t['est_bytes'] / 2**20:.1f}",
        )
    out = Console(soft_wrap=True, highlight=False)
    if not out.is_terminal:  # a pipe or a file: never cut a task id
        out = Console(soft_wrap=True, highlight=False, width=160)
    out.print(table)
    shard = f" in shard {doc['shard']}" if doc["shard"] else ""
    out.print(
        safe(
            f"{doc['n_tasks']} of {doc['n_tasks_total']} task(s){shard}, about "
            f"{doc['est_bytes'] / 2**20:.1f} MiB decoded, format {doc['format']}, "
            f"pipeline {doc['pipeline_sha256'][:12]}; {len(doc['skipped'])} file(s) "
            "set aside by the scan"
        )
    )


def _render_summary(result: RunResult, seconds: float) -> None:
    """Counts, failed tasks and damaged files on stderr (one line each)."""
    c = result.counts()
    # Tasks cancelled by --fail-fast are counted below, not listed: the cause is the task
    # that failed, and a list of every task left undone would bury it.
    failed = [
        r for r in result.failed if (r.get("error") or {}).get("code") != _CANCELLED
    ]
    for rec in failed[:_SHOWN]:
        err = rec.get("error") or {}
        say(f"{err.get('code')}: {err.get('message')}", style="red")
    bad = {id(r) for r in result.bad_files}
    for rec in result.skipped[:_SHOWN]:  # damaged in red, the rest (no image) in yellow
        err = rec.get("error") or {}
        entry = rec["inputs"][0]
        name = entry["file"] if isinstance(entry, dict) else entry  # a token under deid
        say(
            f"{err.get('code')}: {name}: {err.get('message')}",
            style="red" if id(rec) in bad else "yellow",
        )
    for rec in result.records:
        if rec.get("status") == "withheld":
            err = rec.get("error") or {}
            say(f"{err.get('code')}: {err.get('message')}", style="yellow")
    if c["cancelled"]:
        say(
            f"{_CANCELLED}: {c['cancelled']} task(s) not run because --fail-fast stopped "
            "the batch; rerun with --resume to do them",
            style="red",
        )
    hidden = max(0, len(failed) - _SHOWN) + max(0, len(result.skipped) - _SHOWN)
    if hidden:
        say(
            f"... and {hidden} more: see {result.config.out_dir / (result.manifest or '')}"
        )
    if not result.plan.n_total:
        where = "IN_DIR" if result.config.deid is not None else result.config.in_dir
        say(
            f"no convertible image stack found in {where} "
            f"({result.plan.n_files} file(s) looked at); check the folder",
            style="yellow",
        )
    for rel in result.removed_temps:
        say(f"removed stale temporary file {rel}")
    if result.qc is not None:
        q = result.qc["summary"]
        for gid in q["drifted_groups"]:
            say(f"QC drift: scanner group {gid}", style="red")
        say(
            f"QC: {q['pass']} pass, {q['warn']} warn, {q['fail']} fail; report: "
            f"{result.config.out_dir / 'report.html'}",
            style="green" if result.qc["exit_code"] == 0 else "red",
        )
    for rel in result.tampered[:_SHOWN]:
        say(
            f"{ManifestTamperedError.code}: {rel}: a manifest record names this output "
            "outside OUT_DIR or through a symbolic link; not read, its task runs again",
            style="red",
        )
    cancelled = f" ({c['cancelled']} cancelled)" if c["cancelled"] else ""
    manifest = result.config.out_dir / (result.manifest or "")
    withheld = f", {c['withheld']} withheld" if c.get("withheld") else ""
    say(
        f"{c['ok']} ok ({c['resumed']} resumed), {c['failed']} failed{cancelled}{withheld}, "
        f"{c['skipped_files']} file(s) set aside ({c['bad_files']} damaged or "
        f"unsupported) in "
        f"{seconds:.1f} s; manifest: {manifest}",
        style="bold green" if result.exit_code == 0 else "bold red",
    )
