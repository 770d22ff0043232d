"""Run a whole ``transform`` job: validate, scan, plan, resume, execute, record, summarize.

Order of checks (nothing is read or written before the cheaper checks pass):

1. the pipeline is validated (exit 2 on any error, before the input is even listed);
2. OUT_DIR is created and probed for writing (exit 3), then checked for runs of another
   pipeline (exit 2); a Dask scheduler is reached and its workers' version checked (exit 3);
3. IN_DIR is scanned and the plan made (``--dry-run`` stops here and writes nothing);
4. tasks run on the chosen executor; each finished task appends its manifest record;
5. the manifest part is rewritten in plan order and the result summarized.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clisonix_cli import __version__, runtime
from clisonix_cli.errors import (
    ClisonixError,
    DuplicateInstanceError,
    LinkedFolderNote,
    NoPixelDataError,
)
from clisonix_cli.fsio import check_no_links, confined, prepare_out_dir
from clisonix_cli.taskarray.collect import Collector, Event, EventHandler, RunLog
from clisonix_cli.taskarray.config import RunConfig
from clisonix_cli.taskarray.manifest import (
    STATE_DIR,
    ManifestWriter,
    Record,
    manifest_name,
    read_manifest,
    read_records,
    skipped_record,
    write_compacted,
)
from clisonix_cli.taskarray.plan import Plan, Task, make_plan, plan_document
from clisonix_cli.taskarray.resume import (
    check_output_dir,
    is_done,
    record_identity,
    remove_stale_temps,
    run_identity,
    tampered_outputs,
    write_identity,
)
from clisonix_cli.taskarray.task import TaskContext, TaskOutcome, run_task

if TYPE_CHECKING:
    from clisonix_cli.dicom.model import ScanResult, Skipped
    from clisonix_cli.qc.run import Prepared
    from clisonix_cli.transforms.pipeline import Pipeline

#: Scan codes that set a file aside without making the run fail: objects that are not
#: images by design (structured reports, CLX-E102), duplicate instances (CLX-E122: same
#: SOP Instance UID as a file that is kept and converted, so no data is lost) and links to
#: folders that were not followed (CLX-E217: reported, the user's choice).
#: Every other skipped DICOM file counts as a failure (exit 1).
INFORMATIONAL_SKIP_CODES: frozenset[str] = frozenset(
    {NoPixelDataError.code, DuplicateInstanceError.code, LinkedFolderNote.code}
)

TaskFn = Callable[[Task, TaskContext], TaskOutcome]


@dataclass
class RunResult:
    """Everything a run did, in plan order (no timings: see :attr:`timings`)."""

    config: RunConfig
    plan: Plan
    pipeline: list[dict[str, Any]]
    pipeline_sha256: str
    records: list[Record] = field(default_factory=list)
    skipped: list[Record] = field(default_factory=list)
    resumed: frozenset[str] = frozenset()
    removed_temps: list[str] = field(default_factory=list)
    #: ``--resume``: recorded output paths that leave OUT_DIR or pass a link (never read)
    tampered: list[str] = field(default_factory=list)
    manifest: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    qc: dict[str, Any] | None = None

    @property
    def failed(self) -> list[Record]:
        """Records of tasks that failed (cancelled ones included)."""
        return [r for r in self.records if r.get("status") == "failed"]

    @property
    def bad_files(self) -> list[Record]:
        """Skipped-file records of damaged, unreadable or unconvertible files (exit 1)."""
        return [
            r
            for r in self.skipped
            if (r.get("error") or {}).get("code") not in INFORMATIONAL_SKIP_CODES
        ]

    @property
    def exit_code(self) -> int:
        """0 when every task succeeded, no file was damaged and (``--qc``) the QC verdict
        passes ``--qc-fail-on``; else 1."""
        if self.config.dry_run:
            return 0
        qc_failed = self.qc is not None and self.qc.get("exit_code") == 1
        return 1 if self.failed or self.bad_files or qc_failed else 0

    def counts(self) -> dict[str, int]:
        """Task and file counts for the summary."""
        codes = [(r.get("error") or {}).get("code") for r in self.failed]
        return {
            "planned": len(self.plan.tasks),
            "ok": sum(1 for r in self.records if r.get("status") == "ok"),
            "resumed": len(self.resumed),
            "failed": len(self.failed),
            "withheld": sum(1 for r in self.records if r.get("status") == "withheld"),
            "cancelled": sum(1 for c in codes if c == "CLX-E152"),
            "skipped_files": len(self.skipped),
            "bad_files": len(self.bad_files),
        }

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document: deterministic for the same inputs and folder state."""
        doc = self._summary()
        if self.qc is not None:
            doc["qc"] = {
                "summary": self.qc["summary"],
                "exit_code": self.qc["exit_code"],
                "files": ["qc.json", "qc.csv", "report.html"],
            }
        return doc

    def _summary(self) -> dict[str, Any]:
        if self.config.dry_run:
            return plan_document(
                self.plan,
                fmt=self.config.format,
                pipeline=self.pipeline,
                pipeline_sha256=self.pipeline_sha256,
                deid=self.config.deid,
            )
        return {
            "exit_code": self.exit_code,
            "format": self.config.format,
            "pipeline_sha256": self.pipeline_sha256,
            "shard": self.config.shard.label if self.config.shard else None,
            "manifest": self.manifest,
            "counts": self.counts(),
            "tasks": [
                {
                    "task": r["task"],
                    "status": r["status"],
                    "resumed": r["task"] in self.resumed,
                    "series_number": r.get("series_number"),
                    "stack_key": r.get("stack_key"),
                    "error": r.get("error"),
                    "outputs": [o["path"] for o in r.get("outputs") or []],
                }
                for r in self.records
            ],
            "skipped": [
                {"path": _input_name(r["inputs"][0]), **(r.get("error") or {})}
                for r in self.skipped
            ],
        }


def _input_name(entry: Any) -> str:
    """A record's input: a path, or the token of a de-identifying run."""
    return str(entry["file"]) if isinstance(entry, dict) else str(entry)


def load_pipeline(config: RunConfig) -> Pipeline:
    """Validate the pipeline of a run (``--pipeline`` file and ``--op`` specs).

    Raises
    ------
    PipelineError
        Any problem in the specs (exit 2).
    """
    from clisonix_cli.transforms.pipeline import Pipeline

    pipeline = Pipeline.from_cli(list(config.op_specs), config.pipeline_file)
    if config.format == "png" and not any(
        s.op.family == "intensity" for s in pipeline.steps
    ):
        # PNG holds display values: the DICOM display pipeline runs first unless the
        # pipeline maps intensities itself (recorded in the canonical pipeline and hash)
        pipeline = Pipeline.from_steps(
            [("voi", {}), *((s.op.name, dict(s.params)) for s in pipeline.steps)]
        )
    return pipeline


def run_sha256(pipeline: Pipeline, gaps: str) -> str:
    """The pipeline hash a run records: the pipeline's own, or with a ``--gaps`` choice
    other than the default folded in (so default runs keep the hashes they had)."""
    if gaps == "split":
        return pipeline.sha256
    import hashlib

    return hashlib.sha256(
        pipeline.canonical_json() + f"|gaps={gaps}".encode()
    ).hexdigest()


def scan_input(config: RunConfig) -> ScanResult:
    """Scan IN_DIR (or the ``--files-from`` list), as ``clisonix scan`` does.

    Raises
    ------
    UsageError
        A listed file lies outside IN_DIR.
    EmptyInputError
        No DICOM image at all, without ``--allow-empty`` (exit 2).
    InputUnreadableError
        IN_DIR or the list cannot be read (exit 3).
    """
    from clisonix_cli.dicom.discover import input_files, require_images
    from clisonix_cli.dicom.index import scan

    files = input_files(config.in_dir, config.files_from)
    result = scan(
        config.in_dir,
        files=files,
        gaps=config.gaps,
        follow_symlinks=config.follow_symlinks,
        follow_outside=config.follow_symlinks_outside,
    )
    require_images(result, allow_empty=config.allow_empty)
    return result


@contextlib.contextmanager
def _dask_session(config: RunConfig, jobs: int) -> Iterator[Any]:
    if config.backend != "dask" or config.dry_run:
        yield None
        return
    from clisonix_cli.taskarray.remote import TlsFiles, dask_client

    tls = TlsFiles(config.tls_ca_file, config.tls_cert, config.tls_key)
    with dask_client(
        scheduler=config.scheduler,
        scheduler_file=config.scheduler_file,
        jobs=jobs,
        connect_timeout=config.connect_timeout,
        tls=tls,
    ) as client:
        yield client


def run(
    config: RunConfig, *, on_event: EventHandler | None = None, fn: TaskFn = run_task
) -> RunResult:
    """Run (or with ``dry_run`` only plan) a transform job.

    Parameters
    ----------
    config : RunConfig
    on_event : callable or None
        Receives :class:`~clisonix_cli.taskarray.collect.Event` objects (progress).
    fn : callable
        The task function (picklable for process executors); tests substitute a trivial
        one, or one that kills its worker for chosen tasks.

    Returns
    -------
    RunResult

    Raises
    ------
    UsageError
        Bad pipeline, options, or an OUT_DIR of another run (exit 2).
    EnvironmentProblem
        IN_DIR unreadable, OUT_DIR not writable, scheduler unreachable, worker version
        (exit 3). An OUT_DIR this call created is removed again when the run stops
        before writing anything in it.
    """
    clock = time.monotonic()
    pipeline = load_pipeline(config)
    qc = _prepare_qc(config)  # key and baseline checked before anything is written
    canonical: list[dict[str, Any]] = pipeline.canonical()
    sha: str = run_sha256(pipeline, config.gaps)
    identity = run_identity(
        sha, config.format, config.deid.sha256() if config.deid is not None else None
    )
    with opened_out_dir(config, identity) as merged:
        return _run_in(config, pipeline, canonical, sha, identity, merged, clock, fn,
                       on_event, qc)  # fmt: skip


@contextlib.contextmanager
def opened_out_dir(
    config: RunConfig, identity: dict[str, str]
) -> Iterator[dict[str, Record]]:
    """OUT_DIR made ready for a run (``transform``, ``deid``); yields its manifest records.

    Created and proven writable, no symbolic link where the driver writes (manifest, run
    log, ``.clisonix/``), its manifest read and checked against ``identity``; every write
    in the block is confined below it (:func:`clisonix_cli.fsio.confined`). With
    ``dry_run`` nothing is created or read. An OUT_DIR this call created is removed again
    when the run stops with a :class:`ClisonixError` before writing anything in it.
    """
    out_dir = config.out_dir
    merged: dict[str, Record] = {}
    created = not config.dry_run and not out_dir.exists()
    if not config.dry_run:
        prepare_out_dir(out_dir)
    try:
        if not config.dry_run:
            check_no_links(out_dir, [manifest_name(config.shard), STATE_DIR])
            merged = read_manifest(out_dir)
            check_output_dir(out_dir, identity, merged, overwrite=config.overwrite)
        with confined(out_dir):  # no write below OUT_DIR follows a symbolic link
            yield merged
    except ClisonixError:
        if created:  # the run stopped before it wrote anything: leave no empty OUT_DIR
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise


def _run_in(
    config: RunConfig,
    pipeline: Pipeline,
    canonical: list[dict[str, Any]],
    sha: str,
    identity: dict[str, str],
    merged: dict[str, Record],
    clock: float,
    fn: TaskFn,
    on_event: EventHandler | None,
    qc: Prepared | None = None,
) -> RunResult:
    """The part of :func:`run` after the cheap checks: scan, plan, execute, record."""
    out_dir = config.out_dir
    part = manifest_name(config.shard)
    jobs = config.effective_jobs
    with _dask_session(config, jobs) as client:
        t_scan = time.monotonic()
        scan = scan_input(config)
        t_plan = time.monotonic()
        plan = make_plan(scan, shard=config.shard, deid=config.deid)
        timings = {
            "check_s": t_scan - clock,
            "scan_s": t_plan - t_scan,
            "plan_s": time.monotonic() - t_plan,
        }
        result = RunResult(
            config=config, plan=plan, pipeline=canonical, pipeline_sha256=sha,
            timings=timings,
        )  # fmt: skip
        if config.dry_run:
            return result
        result.manifest = part
        result.removed_temps = remove_stale_temps(out_dir, plan.tasks, part)
        if config.overwrite:
            _drop_foreign_records(out_dir / part, identity)
        write_identity(out_dir, identity, canonical)
        if config.resume:
            result.tampered = tampered_outputs(merged.values(), out_dir)
        resumed = frozenset(
            t.task_id
            for t in plan.tasks
            if config.resume
            and is_done(merged.get(t.task_id), identity, out_dir)
            and (qc is None or "qc" in merged[t.task_id])  # --qc: measured before
        )
        todo = [t for t in plan.tasks if t.task_id not in resumed]
        decode = decode_workers(config, todo, jobs)  # before auto is resolved
        config = replace(config, backend=local_backend(config, todo, len(canonical)))
        if qc is not None and todo and config.backend == "threads":
            from clisonix_cli.taskarray.qcrun import warm_in_background

            warm_in_background()  # tasks measure in this process: load the kernels now
        ctx = TaskContext(
            in_dir=str(config.in_dir.resolve()),
            out_dir=str(out_dir.resolve()),
            fmt=config.format,
            pipeline=pipeline,
            pipeline_canonical=canonical,
            pipeline_sha256=sha,
            task_timeout=config.task_timeout,
            limit_blas=config.backend != "threads",
            gaps=config.gaps,
            decode_workers=decode if config.backend == "threads" else 0,
            qc=qc.task if qc is not None else None,
            deid=config.deid,
            decode_limits=config.decode_limits,
        )
        runlog = RunLog(out_dir / STATE_DIR / part.replace("manifest", "run-log", 1))
        t_run = time.monotonic()
        try:
            with ManifestWriter(out_dir / part) as writer:
                for s in plan.skipped:
                    writer.append(_skipped(s, config))
                collector = Collector(
                    ctx, len(todo), writer, runlog, on_event, config.fail_fast
                )
                runlog.write(
                    "start", version=__version__, backend=config.backend, jobs=jobs,
                    tasks=len(todo), resumed=len(resumed),
                    shard=config.shard.label if config.shard else None, manifest=part,
                )  # fmt: skip
                collector.emit(Event("start", 0, len(todo)))
                _execute(config, client, todo, ctx, collector, jobs, fn)
            write_compacted(out_dir / part, read_records(out_dir / part))
            timings["run_s"] = time.monotonic() - t_run
            runlog.write("end", **{k: round(v, 4) for k, v in timings.items()})
        finally:
            runlog.close()
    final = read_manifest(out_dir)
    result.resumed = resumed
    result.records = [
        collector.records.get(t.task_id) or final[t.task_id] for t in plan.tasks
    ]
    result.skipped = [_skipped(s, config) for s in plan.skipped]
    if qc is not None:
        from clisonix_cli.taskarray.qcrun import write_qc

        result.qc = write_qc(out_dir, plan, result.records, ctx, qc, part)
    collector.emit(Event("end", len(collector.records), len(todo)))
    return result


def _prepare_qc(config: RunConfig) -> Prepared | None:
    """``--qc``: read the station key and the baseline (exit 2 before any work)."""
    if config.qc is None or config.dry_run:
        return None
    from clisonix_cli.qc.run import prepare

    return prepare(config.qc)


def _skipped(s: Skipped, config: RunConfig) -> Record:
    """The manifest record of a file the scan set aside (path tokenized under deid)."""
    rec = skipped_record(s)
    if config.deid is None:
        return rec
    from clisonix_cli.taskarray.deid_records import deidentified_skipped

    return deidentified_skipped(rec, config.deid, s.others)


def local_backend(config: RunConfig, tasks: list[Task], pipeline_steps: int) -> str:
    """Resolve ``--backend auto``: threads for one task or a pure conversion of native
    files, else loky.

    Pure conversion of uncompressed files is reading and writing bytes, which releases the
    GIL: threads skip the worker start-up (numba/numpy imports) and the pickling, and share
    one process's memory (measured: 0.4-0.7 s less wall time and 140 MiB less peak memory on
    8 CT series). A single task runs in this process too, whatever its pipeline: a worker
    pool for one task only adds a process start and the imports again (0.4-0.5 s of CPU);
    its compressed slices are decoded in worker processes (:func:`decode_workers`), so a
    crashing native decoder still takes down only a worker. Decoders of compressed syntaxes
    hold the GIL, so several such tasks run in loky processes, and so do pipelines over
    several series. Outputs are byte-identical either way.
    """
    if config.backend != "auto":
        return config.backend
    from clisonix_cli.dicom.syntax import NATIVE_SYNTAXES  # read with numpy, no decoder
    from clisonix_cli.taskarray.writers import get_writer

    if len(tasks) == 1:
        return "threads"
    native = all(t.stack.transfer_syntax in NATIVE_SYNTAXES for t in tasks)
    if pipeline_steps == 0 and native and get_writer(config.format).streams:
        return "threads"
    return "loky"


def decode_workers(config: RunConfig, todo: list[Task], jobs: int) -> int:
    """Worker processes a task running in the driver decodes its compressed files on.

    ``--backend auto`` runs a single task in the driver (:func:`local_backend`); the whole
    ``--jobs`` budget then goes to decoding its slices, several at once and out of the
    driver's process. Several tasks in threads (``--backend threads`` chosen by the user)
    decode in their own thread, as they always did.
    """
    if config.backend != "auto" or len(todo) != 1:
        return 0
    return max(1, jobs)


def _execute(
    config: RunConfig,
    client: Any,
    todo: list[Task],
    ctx: TaskContext,
    collector: Collector,
    jobs: int,
    fn: TaskFn,
) -> None:
    if not todo:
        return
    if config.backend == "dask":
        from clisonix_cli.taskarray.remote import host_threads, run_dask

        ctx = replace(ctx, host_threads=host_threads(client))
        collector.ctx = ctx
        run_dask(client, todo, ctx, collector, retries=config.retries, fn=fn)
        return
    from clisonix_cli.taskarray.local import run_local

    jobs = max(1, min(jobs, len(todo)))
    if config.backend == "threads":
        # numba's thread count is per calling thread: each task thread gets its share.
        ctx = replace(ctx, numba_threads=runtime.threads_per_worker(jobs))
        collector.ctx = ctx
        with runtime.one_blas_thread():
            run_local(
                todo, ctx, collector, backend="threads", jobs=jobs,
                retries=config.retries, task_timeout=config.task_timeout, fn=fn,
            )  # fmt: skip
        return
    run_local(
        todo, ctx, collector, backend="loky", jobs=jobs,
        retries=config.retries, task_timeout=config.task_timeout, fn=fn,
    )  # fmt: skip


def _drop_foreign_records(part: Path, identity: dict[str, str]) -> None:
    """``--overwrite``: forget this part's records of another pipeline or format."""
    if not part.exists():
        return
    keep = [r for r in read_records(part) if record_identity(r) in (None, identity)]
    write_compacted(part, keep)
