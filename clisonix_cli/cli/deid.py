"""``clisonix deid``: de-identified DICOM copies of every object under IN_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clisonix_cli.cli._console import emit_json, reporting_errors, say
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
    Jobs,
    JsonFlag,
    KeyFile,
    Overwrite,
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
from clisonix_cli.errors import UsageError

if TYPE_CHECKING:
    from clisonix_cli.taskarray.deid import DeidResult

_SHOWN = 20


def deid(
    in_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="IN_DIR",
            help="Input folder (read only, never modified).",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="OUT_DIR",
            help="Output folder (created; the only place written; not inside IN_DIR).",
            show_default=False,
        ),
    ] = None,
    key_file: KeyFile = None,
    new_key: Annotated[
        Path | None,
        typer.Option(
            "--new-key",
            metavar="FILE",
            help="Write a new random key to FILE (mode 0600, never overwritten) and exit.",
        ),
    ] = None,
    option: DeidOptions = None,
    allow_burned_in: AllowBurnedIn = False,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            envvar="CLISONIX_DEID_MAPPING",
            metavar="FILE",
            help="Also write originals -> new identifiers to FILE (outside OUT_DIR and "
            "IN_DIR; with --shard I/N the name gets .shard-I-of-N).",
        ),
    ] = None,
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
    files_from: FilesFrom = None,
    follow_symlinks: FollowSymlinks = False,
    follow_symlinks_outside: FollowOutside = False,
    allow_empty: AllowEmpty = False,
    tls_ca_file: TlsCaFile = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
) -> None:
    """Write a de-identified DICOM copy of every DICOM object under IN_DIR into OUT_DIR.

    PS3.15 Basic Profile with the chosen options; UIDs, pseudonyms and date offsets are
    keyed (HMAC of the original), so shards and later runs with the same key agree.
    Pixel data are copied byte for byte. Objects that may show burned-in text,
    encapsulated documents and free text that cannot be cleaned are withheld with a
    reason. Exit 0 all tasks ok, 1 some failed or damaged files, 2 usage error (a missing
    or unsafe key), 3 environment error, 4 internal error.

    Example: clisonix deid export/ release/ --key-file ~/.clisonix.key --jobs 4
    """
    from clisonix_cli.cli._console import err_console
    from clisonix_cli.cli._progress import RunProgress

    with reporting_errors():
        if new_key is not None:
            _write_key(new_key, in_dir, out_dir)
            return
        if in_dir is None or out_dir is None:
            raise UsageError(
                "give IN_DIR and OUT_DIR (or --new-key FILE to make a key); see "
                "'clisonix deid --help'"
            )
        from clisonix_cli.dicom.deid.settings import settings_from
        from clisonix_cli.taskarray.config import RunConfig
        from clisonix_cli.taskarray.deid import DeidConfig, run_deid

        settings = settings_from(key_file, option, allow_burned_in=allow_burned_in)
        run = RunConfig.from_cli(
            in_dir=in_dir, out_dir=out_dir, fmt="dicom", jobs=jobs, backend=backend,
            scheduler=scheduler, scheduler_file=scheduler_file, retries=retries,
            task_timeout=task_timeout, shard=shard, resume=resume, overwrite=overwrite,
            dry_run=dry_run, fail_fast=fail_fast, files_from=files_from,
            connect_timeout=connect_timeout, deid=settings,
            follow_symlinks=follow_symlinks,
            follow_symlinks_outside=follow_symlinks_outside, allow_empty=allow_empty,
            tls_ca_file=tls_ca_file,
            tls_cert=tls_cert, tls_key=tls_key,
        )  # fmt: skip
        config = DeidConfig(run=run, mapping=mapping)
        progress = RunProgress(rich_bar=err_console.is_terminal and not dry_run)
        with progress:
            result = run_deid(config, on_event=progress)
    if json_out:
        emit_json(result.summary())
    _render(result)
    raise typer.Exit(result.exit_code)


def _write_key(path: Path, in_dir: Path | None, out_dir: Path | None) -> None:
    from clisonix_cli.dicom.deid.keys import write_new_key

    if in_dir is not None or out_dir is not None:
        raise UsageError(
            "--new-key FILE writes a key and exits: give no IN_DIR/OUT_DIR"
        )
    key = write_new_key(path)
    say(
        f"wrote a new key to {path} (mode 600, fingerprint {key.fingerprint}); keep it safe"
    )


def _render(result: DeidResult) -> None:
    """Counts, failed tasks and damaged files on stderr (tokens only, never paths)."""
    doc = result.summary()
    c = doc["counts"]
    if result.config.run.dry_run:
        say(
            f"dry run: {c['tasks']} of {c['tasks_total']} series task(s), "
            f"{c['files_seen']} file(s) looked at ({c['not_dicom']} not DICOM, "
            f"{c['damaged']} damaged); nothing written"
        )
        return
    for rec in result.failed[:_SHOWN]:
        err = rec.get("error") or {}
        say(f"{err.get('code')}: {err.get('message')}", style="red")
    for item in doc["skipped"][:_SHOWN]:
        say(f"{item.get('code')}: {item['file']}: {item.get('message')}", style="red")
    files = result.file_counts()
    withheld = sorted((k, n) for k, n in files.items() if k.startswith("CLX-"))
    if withheld:
        say(
            "withheld (not released): "
            + ", ".join(f"{n} x {code}" for code, n in withheld)
            + f"; reasons per file in {result.report}",
            style="yellow",
        )
    say(
        f"{c['written']} file(s) written, {c['withheld']} withheld, "
        f"{c['failed_files']} failed, {c['damaged']} damaged, {c['not_dicom']} not "
        f"DICOM; {c['ok']} task(s) ok ({c['resumed']} resumed), {c['failed']} failed; "
        f"manifest: {result.config.run.out_dir / (result.manifest or '')}",
        style="bold green" if result.exit_code == 0 else "bold red",
    )
