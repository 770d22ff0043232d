"""``clisonix qc``: the task array with a measuring task, and the QC files of a run.

``clisonix qc IN_DIR`` scans and plans like ``transform`` and runs one task per stack on the
same executors (threads, loky processes, Dask); each task reads only the sampled slices of
its stack and returns a record with its ``"qc"`` part. ``transform --qc`` gets the same part
from the pixels it converts. Either way :func:`write_qc` turns the records, in plan order,
into ``qc.json``, ``qc.csv`` and ``report.html``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clisonix_cli.errors import TaskError, UsageError, by_code
from clisonix_cli.fsio import prepare_out_dir
from clisonix_cli.qc.run import (
    Prepared,
    QcOptions,
    failed_part,
    finish,
    prepare,
    task_part,
)
from clisonix_cli.taskarray.collect import Collector, EventHandler, RunLog
from clisonix_cli.taskarray.config import BACKENDS
from clisonix_cli.taskarray.manifest import Record
from clisonix_cli.taskarray.plan import Plan, Task, make_plan
from clisonix_cli.taskarray.task import (
    TaskContext,
    TaskOutcome,
    base_record,
    failed_record,
    worker_name,
)


@dataclass(frozen=True)
class QcRunConfig:
    """Every option of one ``clisonix qc`` run, validated."""

    in_dir: Path
    out_dir: Path
    qc: QcOptions = field(default_factory=QcOptions)
    jobs: int = 0
    backend: str = "auto"
    scheduler: str | None = None
    scheduler_file: Path | None = None
    files_from: str | None = None
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(
                f"--backend {self.backend!r}: unknown backend; "
                f"choose one of {', '.join(BACKENDS)}"
            )
        if self.jobs < 0:
            raise UsageError(f"--jobs {self.jobs}: must be >= 0 (0 = every core)")
        in_abs, out_abs = self.in_dir.resolve(), self.out_dir.resolve()
        if in_abs == out_abs or out_abs.is_relative_to(in_abs):
            raise UsageError(
                f"--out {self.out_dir} lies inside IN_DIR {self.in_dir}; clisonix never "
                "writes into the input folder - choose an output folder outside it"
            )


@dataclass
class QcRunResult:
    """What ``clisonix qc`` did: the plan, the records and the QC document."""

    config: QcRunConfig
    plan: Plan
    records: list[Record]
    doc: dict[str, Any]
    files: dict[str, str]
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when the batch passes ``--fail-on`` and no group drifted, else 1."""
        return int(self.doc["exit_code"])


def qc_task(task: Task, ctx: TaskContext) -> TaskOutcome:
    """Measure one stack (its sampled slices only); the record carries ``"qc"``."""
    start = time.monotonic()
    assert ctx.qc is not None
    part = task_part(Path(ctx.in_dir), task.stack, ctx.qc)
    err = part.get("error")
    if err:
        cls = by_code(str(err.get("code"))) or TaskError
        rec = failed_record(task, ctx, cls(str(err.get("message"))))
    else:
        rec = base_record(task, ctx)
        rec.update(status="ok", error=None)
    rec["qc"] = part
    return TaskOutcome(
        record=rec, seconds=time.monotonic() - start, worker=worker_name()
    )


def write_qc(
    out_dir: Path,
    plan: Plan,
    records: Sequence[Record],
    ctx: TaskContext,
    prepared: Prepared,
    manifest: str | None,
) -> dict[str, Any]:
    """Write the QC files of a run from its records (plan order) and return the document.

    A record without a ``"qc"`` part (its worker died, it timed out or was cancelled) gets
    one here from its header and error.
    """
    from clisonix_cli.qc.assess import Row

    rows = []
    for task, rec in zip(plan.tasks, records, strict=True):
        part = rec.get("qc")
        if part is None:
            err = rec.get("error") or {}
            cls = by_code(str(err.get("code"))) or TaskError
            part = failed_part(
                Path(ctx.in_dir),
                task.stack,
                prepared.task,
                cls(str(err.get("message"))),
            )
        rows.append(
            Row(
                task=task.task_id,
                series_number=task.stack.series_number,
                stack_key=task.stack.stack_key,
                qc=part,
                error=rec.get("error"),
                manifest=manifest,
            )
        )
    skipped = Counter(s.code for s in plan.skipped)
    doc, _ = finish(out_dir, rows, prepared, skipped)
    return doc


def run_qc(config: QcRunConfig, *, on_event: EventHandler | None = None) -> QcRunResult:
    """Run ``clisonix qc``: check the options, scan, measure every stack, write the files.

    Raises
    ------
    UsageError, QcKeyError, BaselineError, BaselineKeyMismatchError
        Exit 2, before anything is read or written.
    EnvironmentProblem
        IN_DIR unreadable, OUT not writable, scheduler unreachable (exit 3).
    """
    from clisonix_cli.runtime import cpu_cores
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.execute import _dask_session, _execute, scan_input
    from clisonix_cli.transforms.pipeline import Pipeline

    clock = time.monotonic()
    prepared = prepare(config.qc)
    prepare_out_dir(config.out_dir)
    jobs = config.jobs if config.jobs > 0 else cpu_cores()
    # The executors take a transform RunConfig; a measuring run converts nothing.
    run_config = RunConfig(
        in_dir=config.in_dir, out_dir=config.out_dir, jobs=jobs,
        backend=config.backend, scheduler=config.scheduler,
        scheduler_file=config.scheduler_file, files_from=config.files_from,
        connect_timeout=config.connect_timeout,
    )  # fmt: skip
    with _dask_session(run_config, jobs) as client:
        plan = make_plan(scan_input(run_config))
        pipeline = Pipeline.from_cli([], None)
        ctx = TaskContext(
            in_dir=str(config.in_dir.resolve()),
            out_dir=str(config.out_dir.resolve()),
            fmt=run_config.format,
            pipeline=pipeline,
            pipeline_canonical=[],
            pipeline_sha256=pipeline.sha256,
            qc=prepared.task,
        )
        todo = list(plan.tasks)
        backend = _backend(config, todo)
        if backend == "threads" and todo:
            warm_in_background()  # tasks measure in this process: load the kernels now
        ctx = replace(ctx, limit_blas=backend != "threads")
        collector = Collector(ctx, len(todo), None, RunLog(None), on_event)
        _execute(replace(run_config, backend=backend), client, todo, ctx,
                 collector, jobs, qc_task)  # fmt: skip
    records = [collector.records[t.task_id] for t in plan.tasks]
    doc = write_qc(config.out_dir, plan, records, collector.ctx, prepared, None)
    from clisonix_cli.qc.document import FILES

    files = {name: str(config.out_dir / name) for name in FILES}
    return QcRunResult(config, plan, records, doc, files, time.monotonic() - clock)


def warm_in_background() -> None:
    """Load the QC kernels (numba's import and first cache load, 1-1.5 s of CPU) in a
    daemon thread, when the tasks run as threads of this process: the load overlaps the
    first tasks' reads. Process backends load them in each worker, so the driver does
    not (it never measures: it would load numba for nothing)."""
    import threading

    from clisonix_cli.qc.measure import warm

    kinds = {"ct", "mr", "xr"}
    threading.Thread(target=warm, args=(kinds,), daemon=True, name="qc-warm").start()


def _backend(config: QcRunConfig, tasks: Sequence[Task]) -> str:
    """``auto``: threads when every stack is native (numpy reads, numba kernels without
    the GIL), else loky processes (decoders hold the GIL; a crashing one takes down only
    its worker)."""
    if config.backend != "auto":
        return config.backend
    from clisonix_cli.dicom.syntax import NATIVE_SYNTAXES

    native = all(t.stack.transfer_syntax in NATIVE_SYNTAXES for t in tasks)
    return "threads" if native else "loky"
