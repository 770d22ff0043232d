"""The frozen description of one ``clisonix transform`` run.

A :class:`RunConfig` is built once from the command line (or by a Python caller), validated
completely, and never changed afterwards. Everything a task needs on a worker travels in
:class:`clisonix_cli.taskarray.task.TaskContext`, which the driver derives from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from clisonix_cli.dicom.limits import DEFAULT_LIMITS, DecodeLimits
from clisonix_cli.errors import ShardSpecError, UsageError
from clisonix_cli.runtime import cpu_cores
from clisonix_cli.taskarray.writers import get_writer

#: ``--gaps`` choices (:data:`clisonix_cli.dicom.series.GAPS`; ``split`` is the default).
GAPS: tuple[str, ...] = ("split", "fail", "keep")
if TYPE_CHECKING:
    from clisonix_cli.dicom.deid.settings import DeidSettings
    from clisonix_cli.qc.run import QcOptions

#: Executors, as given to ``--backend``.
BACKENDS: tuple[str, ...] = ("auto", "loky", "threads", "dask")


@dataclass(frozen=True)
class Shard:
    """One part ``index`` of ``count`` (``--shard I/N``, 0-based: ``0/3``, ``1/3``, ``2/3``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardSpecError(
                f"--shard {self.index}/{self.count}: expected I/N with N >= 1 and "
                f"0 <= I < N (0-based), e.g. --shard 0/{max(self.count, 1)}"
            )

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """Read ``"I/N"``.

        Parameters
        ----------
        spec : str
            Text such as ``"1/4"``.

        Returns
        -------
        Shard

        Raises
        ------
        ShardSpecError
            When the text is not two integers ``I/N`` with ``0 <= I < N``.
        """
        head, sep, tail = spec.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            index, count = int(head), int(tail)
        except ValueError:
            raise ShardSpecError(
                f"--shard {spec!r}: expected I/N, two integers with 0 <= I < N "
                "(0-based), e.g. --shard 0/4 ... --shard 3/4 for a 4-job array"
            ) from None
        return cls(index, count)

    @property
    def label(self) -> str:
        """``"I/N"``."""
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class RunConfig:
    """Every option of one run, validated.

    Parameters
    ----------
    in_dir, out_dir : Path
        Input folder (never modified) and output folder (the only place written).
    op_specs : tuple of str
        ``--op`` values in order; with ``pipeline_file`` the file's ops come first.
    pipeline_file : Path or None
        ``--pipeline FILE.toml``.
    format : str
        One of :func:`~clisonix_cli.taskarray.writers.format_names`.
    jobs : int
        Parallel tasks; 0 means every core (:func:`cpu_cores`).
    backend : str
        One of :data:`BACKENDS`.
    scheduler : str or None
        ``tcp://HOST:PORT`` of a running Dask scheduler (``dask`` backend).
    scheduler_file : Path or None
        A Dask scheduler file (``dask scheduler --scheduler-file``).
    retries : int
        Extra attempts for a task that failed for a reason that can pass (a worker died, a
        write failed, a timeout).
    task_timeout : float or None
        Seconds one task may run; None for no limit.
    shard : Shard or None
        Run only the tasks of this part of the plan.
    resume, overwrite, dry_run, fail_fast : bool
        See ``docs/transform.md``.
    files_from : str or None
        A file listing the input files (``-`` for stdin), instead of walking ``in_dir``.
    connect_timeout : float
        Seconds to wait for a Dask scheduler before giving up (exit 3).
    gaps : str
        What a stack with missing slices becomes: ``split`` (default), ``fail``, ``keep``.
    qc : QcOptions or None
        ``--qc``: measure every series as it is converted and write ``qc.json``,
        ``qc.csv`` and ``report.html`` into OUT_DIR (``docs/qc.md``).
    deid : DeidSettings or None
        ``--deidentify``: the key and options every output is de-identified with.
    follow_symlinks : bool
        Follow links to folders inside IN_DIR.
    follow_symlinks_outside : bool
        Follow links to folders outside IN_DIR too.
    allow_empty : bool
        Accept an IN_DIR without any DICOM image (else exit 2).
    max_decode_ratio : float
        Decoded bytes one compressed file may produce per byte of its size.
    max_decoded_mib : int
        Absolute cap on the decoded MiB of one compressed file.
    tls_ca_file, tls_cert, tls_key : Path or None
        PEM files for a ``tls://`` Dask scheduler.
    """

    in_dir: Path
    out_dir: Path
    op_specs: tuple[str, ...] = ()
    pipeline_file: Path | None = None
    format: str = "nifti-gz"
    jobs: int = 0
    backend: str = "auto"
    scheduler: str | None = None
    scheduler_file: Path | None = None
    retries: int = 0
    task_timeout: float | None = None
    shard: Shard | None = None
    resume: bool = False
    overwrite: bool = False
    dry_run: bool = False
    fail_fast: bool = False
    files_from: str | None = None
    connect_timeout: float = 10.0
    gaps: str = "split"
    qc: QcOptions | None = None
    deid: DeidSettings | None = None
    follow_symlinks: bool = False
    follow_symlinks_outside: bool = False
    allow_empty: bool = False
    max_decode_ratio: float = DEFAULT_LIMITS.max_ratio
    max_decoded_mib: int = DEFAULT_LIMITS.max_bytes >> 20
    tls_ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        get_writer(self.format)  # an unknown format raises, listing the valid ones
        if self.gaps not in GAPS:
            raise UsageError(
                f"--gaps {self.gaps!r}: choose one of {', '.join(GAPS)} (split: each run "
                "of contiguous slices its own stack; fail; keep: one volume, gap noted)"
            )
        if self.backend not in BACKENDS:
            raise UsageError(
                f"--backend {self.backend!r}: unknown backend; "
                f"choose one of {', '.join(BACKENDS)}"
            )
        if self.jobs < 0:
            raise UsageError(
                f"--jobs {self.jobs}: must be >= 0 (0 = every core, {cpu_cores()} here)"
            )
        if self.retries < 0:
            raise UsageError(f"--retries {self.retries}: must be >= 0")
        if self.task_timeout is not None and not self.task_timeout > 0:
            raise UsageError(
                f"--task-timeout {self.task_timeout}: must be > 0 seconds "
                "(leave it out for no limit)"
            )
        if not self.max_decode_ratio >= 1:
            raise UsageError(
                f"--max-decode-ratio {self.max_decode_ratio}: must be >= 1 (decoded bytes "
                "per byte of file)"
            )
        if self.max_decoded_mib < 1:
            raise UsageError(f"--max-decoded-mib {self.max_decoded_mib}: must be >= 1")
        if not self.connect_timeout > 0:
            raise UsageError(
                f"--connect-timeout {self.connect_timeout}: must be > 0 seconds"
            )
        if self.resume and self.overwrite:
            raise UsageError(
                "--resume and --overwrite contradict each other: --resume keeps finished "
                "outputs, --overwrite redoes everything; give one of them"
            )
        if (self.scheduler or self.scheduler_file) and self.backend != "dask":
            raise UsageError(
                f"--scheduler/--scheduler-file need --backend dask, got --backend "
                f"{self.backend}; drop --backend or set it to dask"
            )
        if self.qc is not None and self.shard is not None:
            raise UsageError(
                "--qc with --shard: each job would judge only its part of the batch; "
                "run `clisonix qc IN_DIR` once over the whole input instead"
            )
        if self.scheduler and self.scheduler_file:
            raise UsageError(
                "--scheduler and --scheduler-file both given; give one of them"
            )
        in_abs, out_abs = self.in_dir.resolve(), self.out_dir.resolve()
        if in_abs == out_abs or out_abs.is_relative_to(in_abs):
            raise UsageError(
                f"OUT_DIR {self.out_dir} lies inside IN_DIR {self.in_dir}; clisonix never "
                "writes into the input folder - choose an output folder outside it"
            )
        if in_abs.is_relative_to(out_abs):
            raise UsageError(
                f"IN_DIR {self.in_dir} lies inside OUT_DIR {self.out_dir}; choose an "
                "output folder that does not contain the input"
            )

    @classmethod
    def from_cli(
        cls,
        *,
        in_dir: Path,
        out_dir: Path,
        ops: list[str] | None = None,
        pipeline: Path | None = None,
        fmt: str = "nifti-gz",
        jobs: int = 0,
        backend: str | None = None,
        scheduler: str | None = None,
        scheduler_file: Path | None = None,
        retries: int = 0,
        task_timeout: float | None = None,
        shard: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
        dry_run: bool = False,
        fail_fast: bool = False,
        files_from: str | None = None,
        connect_timeout: float = 10.0,
        gaps: str = "split",
        qc: QcOptions | None = None,
        deid: DeidSettings | None = None,
        follow_symlinks: bool = False,
        follow_symlinks_outside: bool = False,
        allow_empty: bool = False,
        max_decode_ratio: float = DEFAULT_LIMITS.max_ratio,
        max_decoded_mib: int = DEFAULT_LIMITS.max_bytes >> 20,
        tls_ca_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> RunConfig:
        """Build a config from command-line values.

        ``backend`` None means ``dask`` when a scheduler is given, else ``auto``
        (see :func:`clisonix_cli.taskarray.execute.local_backend`).

        Raises
        ------
        UsageError, ShardSpecError
            Invalid or contradictory values (exit 2).
        """
        if backend is None:
            backend = "dask" if (scheduler or scheduler_file) else "auto"
        return cls(
            in_dir=in_dir,
            out_dir=out_dir,
            op_specs=tuple(ops or ()),
            pipeline_file=pipeline,
            format=fmt.strip().lower(),
            jobs=jobs,
            backend=backend.strip().lower(),
            scheduler=scheduler or None,
            scheduler_file=scheduler_file,
            retries=retries,
            task_timeout=task_timeout,
            shard=Shard.parse(shard) if shard else None,
            resume=resume,
            overwrite=overwrite,
            dry_run=dry_run,
            fail_fast=fail_fast,
            files_from=files_from,
            connect_timeout=connect_timeout,
            gaps=gaps.strip().lower(),
            qc=qc,
            deid=deid,
            follow_symlinks=follow_symlinks,
            follow_symlinks_outside=follow_symlinks_outside,
            allow_empty=allow_empty,
            max_decode_ratio=max_decode_ratio,
            max_decoded_mib=max_decoded_mib,
            tls_ca_file=tls_ca_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )

    @property
    def decode_limits(self) -> DecodeLimits:
        """The decoding caps every task of this run applies."""
        return replace(
            DEFAULT_LIMITS,
            max_ratio=float(self.max_decode_ratio),
            max_bytes=int(self.max_decoded_mib) << 20,
        )

    @property
    def effective_jobs(self) -> int:
        """``jobs``, with 0 replaced by the number of cores."""
        return self.jobs if self.jobs > 0 else cpu_cores()
