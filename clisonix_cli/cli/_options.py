"""Options shared by several subcommands, declared once (same flag, env var, help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

InDir = Annotated[
    Path,
    typer.Argument(
        metavar="IN_DIR",
        help="Input folder (read only, never modified).",
        show_default=False,
    ),
]

JsonFlag = Annotated[
    bool,
    typer.Option(
        "--json",
        envvar="CLISONIX_JSON",
        help="Print one machine-readable JSON document on stdout (and nothing else).",
    ),
]

PipelineFile = Annotated[
    Path | None,
    typer.Option(
        "--pipeline",
        envvar="CLISONIX_PIPELINE",
        metavar="FILE.toml",
        help="Pipeline file (docs/pipelines.md); its ops run before any --op.",
    ),
]

FilesFrom = Annotated[
    str | None,
    typer.Option(
        "--files-from",
        envvar="CLISONIX_FILES_FROM",
        metavar="FILE|-",
        help="Read only the files listed in FILE (one path per line, relative to IN_DIR "
        "or absolute inside it); '-' reads the list from standard input.",
    ),
]

Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        envvar="CLISONIX_JOBS",
        help="Tasks running at once (0 = every core).",
    ),
]

Backend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        envvar="CLISONIX_BACKEND",
        help="auto, loky (processes), threads or dask; default auto (threads when no op "
        "runs on uncompressed files, else loky), or dask with a scheduler.",
    ),
]

Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="CLISONIX_SCHEDULER",
        metavar="tcp|tls://HOST:PORT",
        help="Address of a running Dask scheduler (implies --backend dask); tls:// "
        "needs --tls-ca-file, --tls-cert and --tls-key.",
    ),
]

SchedulerFile = Annotated[
    Path | None,
    typer.Option(
        "--scheduler-file",
        envvar="CLISONIX_SCHEDULER_FILE",
        help="Dask scheduler file (dask scheduler --scheduler-file).",
    ),
]

OpSpecs = Annotated[
    list[str] | None,
    typer.Option(
        "--op",
        envvar="CLISONIX_OP",
        metavar="NAME:key=value,...",
        help="One op (repeatable, applied in order); see `clisonix ops`.",
    ),
]

# --- the task-array options of `transform` and `deid` (with Jobs ... SchedulerFile) -------

ConnectTimeout = Annotated[
    float,
    typer.Option(
        "--connect-timeout",
        envvar="CLISONIX_CONNECT_TIMEOUT",
        metavar="SEC",
        help="Seconds to reach the Dask scheduler before giving up (exit 3).",
    ),
]

Retries = Annotated[
    int,
    typer.Option(
        "--retries",
        envvar="CLISONIX_RETRIES",
        help="Extra attempts after a worker death or a failed write.",
    ),
]

TaskTimeout = Annotated[
    float | None,
    typer.Option(
        "--task-timeout",
        envvar="CLISONIX_TASK_TIMEOUT",
        metavar="SEC",
        help="Fail a task that runs longer than this (CLX-E151).",
    ),
]

ShardSpec = Annotated[
    str | None,
    typer.Option(
        "--shard",
        envvar="CLISONIX_SHARD",
        metavar="I/N",
        help="Run only part I of N (0-based; whole studies per part).",
    ),
]

Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        envvar="CLISONIX_RESUME",
        help="Skip tasks whose outputs exist intact for this pipeline.",
    ),
]

Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        envvar="CLISONIX_OVERWRITE",
        help="Write into OUT_DIR even if another pipeline or program wrote it.",
    ),
]

DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        envvar="CLISONIX_DRY_RUN",
        help="Print the plan (tasks, shards, bytes) and write nothing.",
    ),
]

FailFast = Annotated[
    bool,
    typer.Option(
        "--fail-fast",
        envvar="CLISONIX_FAIL_FAST",
        help="Stop at the first failed task; the rest are recorded as cancelled.",
    ),
]

# --- de-identification ---------------------------------------------------------------

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="CLISONIX_DEID_KEY_FILE",
        metavar="FILE",
        help="De-identification key (32+ bytes, not readable by other users); the same "
        "key gives the same new UIDs, pseudonyms and date offsets everywhere.",
    ),
]

DeidOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        envvar="CLISONIX_DEID_OPTION",
        metavar="NAME",
        help="PS3.15 option (repeatable): modified-dates (default), full-dates, "
        "patient-characteristics, device-identity, institution-identity, retain-uids, "
        "safe-private, clean-descriptors, clean-structured-content, clean-graphics; "
        "'basic' for the Basic Profile alone.",
    ),
]

AllowBurnedIn = Annotated[
    bool,
    typer.Option(
        "--allow-burned-in",
        envvar="CLISONIX_ALLOW_BURNED_IN",
        help="Release objects that may carry burned-in text (BurnedInAnnotation YES, or "
        "US/SC/OT without NO); withheld by default.",
    ),
]

TlsCaFile = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca-file",
        envvar="CLISONIX_TLS_CA_FILE",
        metavar="PEM",
        help="CA certificate that signed a tls:// Dask scheduler's certificate.",
    ),
]

TlsCert = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        envvar="CLISONIX_TLS_CERT",
        metavar="PEM",
        help="This client's certificate for a tls:// Dask scheduler.",
    ),
]

TlsKey = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        envvar="CLISONIX_TLS_KEY",
        metavar="PEM",
        help="This client's private key for a tls:// Dask scheduler.",
    ),
]

# --- walking IN_DIR -------------------------------------------------------------------

FollowSymlinks = Annotated[
    bool,
    typer.Option(
        "--follow-symlinks",
        envvar="CLISONIX_FOLLOW_SYMLINKS",
        help="Follow symbolic links to folders inside IN_DIR (loop-safe; links that "
        "leave IN_DIR need --follow-symlinks-outside). Without it they are reported, not "
        "entered.",
    ),
]

FollowOutside = Annotated[
    bool,
    typer.Option(
        "--follow-symlinks-outside",
        envvar="CLISONIX_FOLLOW_SYMLINKS_OUTSIDE",
        help="Also follow links to folders outside IN_DIR (a folder of links to studies "
        "kept elsewhere); implies --follow-symlinks. Still loop-safe.",
    ),
]

AllowEmpty = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        envvar="CLISONIX_ALLOW_EMPTY",
        help="Accept an IN_DIR without any DICOM image (exit 0 instead of 2).",
    ),
]
