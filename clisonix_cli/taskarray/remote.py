"""Remote executor: Dask distributed, driven through its own futures API.

``client.map(run_task, tasks, pure=False, retries=N)`` sends one task per stack; records
come back through ``as_completed`` as tasks finish. Worker loss is Dask's job: the scheduler
re-runs a lost worker's tasks elsewhere (a task may run twice, outputs are written
atomically). A task that keeps killing its workers ends as ``KilledWorker`` (after the
scheduler's ``distributed.scheduler.allowed-failures`` deaths); such tasks are re-run one at a
time in a quarantine pass, so an innocent task that died next to a bad one succeeds and the
bad one is recorded as failed with ``CLX-E150``. joblib's dask backend is not used: it hangs
when a task kills its worker (NOTES.md).

Without ``--scheduler``/``--scheduler-file`` a local cluster of ``--jobs`` single-threaded
worker processes is started on 127.0.0.1 and torn down at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clisonix_cli import __version__
from clisonix_cli.errors import (
    MissingDependencyError,
    SchedulerUnreachableError,
    TaskError,
    WorkerVersionError,
)
from clisonix_cli.taskarray.collect import TRANSIENT_CODES, Collector, worker_died
from clisonix_cli.taskarray.plan import Task
from clisonix_cli.taskarray.task import TaskContext, TaskOutcome, run_task

#: Seconds to wait for a first worker, and how long a run may go on with no worker at all.
WORKER_WAIT_S = 60.0
_POLL_S = 0.005

TaskFn = Callable[[Task, TaskContext], TaskOutcome]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "--backend dask needs the 'distributed' package, which is not installed; "
            "install it with: pip install 'clisonix[dask]'"
        ) from None
    return distributed


def worker_version() -> str:
    """The clisonix version of the process running this (called on each worker)."""
    return __version__


@contextmanager
def dask_client(
    *,
    scheduler: str | None,
    scheduler_file: Path | None,
    jobs: int,
    connect_timeout: float,
) -> Iterator[Any]:
    """Connect to a scheduler (or start a local cluster) and check the workers' version.

    Parameters
    ----------
    scheduler : str or None
        ``tcp://HOST:PORT``.
    scheduler_file : Path or None
        A ``dask scheduler --scheduler-file`` file.
    jobs : int
        Workers of the local cluster when neither is given.
    connect_timeout : float
        Seconds to reach the scheduler.

    Yields
    ------
    distributed.Client

    Raises
    ------
    MissingDependencyError
        ``distributed`` is not installed.
    SchedulerUnreachableError
        No scheduler within ``connect_timeout``, or no worker within ``WORKER_WAIT_S``.
    WorkerVersionError
        A worker runs another clisonix version or cannot import clisonix.
    """
    distributed = _import_distributed()
    import logging

    cluster: Any = None
    if scheduler is None and scheduler_file is None:
        cluster = distributed.LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        where = "the local Dask cluster"
    else:
        where = f"the Dask scheduler at {scheduler or scheduler_file}"
        if scheduler_file is not None and not scheduler_file.is_file():
            raise SchedulerUnreachableError(
                f"scheduler file {scheduler_file} does not exist; start the scheduler "
                f"with `dask scheduler --scheduler-file {scheduler_file}` first"
            )
    try:
        client = distributed.Client(
            cluster if cluster is not None else scheduler,
            scheduler_file=None if scheduler_file is None else str(scheduler_file),
            timeout=f"{connect_timeout}s",
            set_as_default=False,
        )
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise SchedulerUnreachableError(
            f"cannot reach {where} within {connect_timeout:g} s "
            f"({type(exc).__name__}: {exc}); check that `dask scheduler` runs there "
            "and that the address, port and firewall let this machine in"
        ) from None
    try:
        _check_workers(client, where)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(client: Any, where: str) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise SchedulerUnreachableError(
            f"{where} has no workers after {WORKER_WAIT_S:g} s; start some with "
            "`dask worker <scheduler address> --nthreads 1`"
        ) from None
    versions = client.run(worker_version, on_error="return")
    for addr, got in sorted(versions.items()):
        if isinstance(got, BaseException):
            raise WorkerVersionError(
                f"worker {addr} cannot run clisonix ({type(got).__name__}: {got}); "
                f"install clisonix {__version__} in every worker's environment"
            )
        if got != __version__:
            raise WorkerVersionError(
                f"worker {addr} runs clisonix {got}, this client {__version__}; install "
                f"the same version everywhere (pip install clisonix=={__version__})"
            )


def host_threads(client: Any) -> dict[str, int]:
    """Worker threads per host, from the scheduler (sizes numba threads in tasks).

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    dict
        Host name or IP -> total worker threads there.
    """
    info = client.scheduler_info(n_workers=-1)
    out: dict[str, int] = {}
    for addr, w in info.get("workers", {}).items():
        host = str(addr).rsplit(":", 1)[0].split("://")[-1]
        out[host] = out.get(host, 0) + int(w.get("nthreads", 1))
    return out


def run_dask(
    client: Any,
    tasks: Sequence[Task],
    ctx: TaskContext,
    collector: Collector,
    *,
    retries: int = 0,
    fn: TaskFn = run_task,
) -> None:
    """Run ``tasks`` on a Dask cluster; every task ends with one record in ``collector``.

    Parameters
    ----------
    client : distributed.Client
    tasks : sequence of Task
        In plan order.
    ctx : TaskContext
    collector : Collector
    retries : int
        Passed to Dask (``retries=``) and used for transient failures.
    fn : callable
        The task function (tests substitute a trivial one).
    """
    suspects = _drive(
        client, tasks, ctx, collector, retries=retries, fn=fn, alone=False
    )
    if suspects and not collector.stop:
        collector.note(
            f"quarantine: {len(suspects)} task(s) were on workers that died; re-running "
            "them one at a time"
        )
        for task in suspects:
            if collector.stop:
                break
            _drive(client, [task], ctx, collector, retries=retries, fn=fn, alone=True)
    collector.cancel(tasks)


def _drive(
    client: Any,
    tasks: Sequence[Task],
    ctx: TaskContext,
    collector: Collector,
    *,
    retries: int,
    fn: TaskFn,
    alone: bool,
) -> list[Task]:
    distributed = _import_distributed()
    from distributed.scheduler import KilledWorker

    token = uuid.uuid4().hex[:12]  # keys only name futures; never part of an output
    attempts: dict[str, int] = {t.task_id: 1 for t in tasks}
    by_key: dict[str, tuple[Task, Any]] = {}

    def submit_all(batch: Sequence[Task]) -> list[Any]:
        keys = [f"clx-{t.task_id}-{token}-{attempts[t.task_id]}" for t in batch]
        futs = client.map(
            fn, list(batch), ctx=ctx, key=keys, pure=False, retries=retries
        )
        for t, f in zip(batch, futs, strict=True):
            by_key[f.key] = (t, f)
        return list(futs)

    futures = submit_all(tasks)
    ac = distributed.as_completed(futures, loop=client.loop)
    del futures
    suspects: list[Task] = []
    last_progress = time.monotonic()
    while not ac.is_empty() or ac.has_ready():
        batch = ac.next_batch(block=False)
        if not batch:
            time.sleep(_POLL_S)
            last_progress = _watch(client, last_progress)
            continue
        last_progress = time.monotonic()
        for fut in batch:
            task, _ = by_key.pop(fut.key)
            if fut.status not in ("finished", "error", "cancelled"):
                # its result was lost with a worker before we fetched it: Dask computes
                # it again; wait for it once more
                by_key[fut.key] = (task, fut)
                ac.add(fut)
                continue
            if fut.status == "finished":
                outcome: TaskOutcome = fut.result()
                rec = outcome.record
                code = (rec.get("error") or {}).get("code")
                n = attempts[task.task_id]
                if (
                    rec["status"] == "failed"
                    and code in TRANSIENT_CODES
                    and n <= retries
                ):
                    attempts[task.task_id] = n + 1
                    ac.update(submit_all([task]))
                else:
                    collector.add(
                        task,
                        rec,
                        seconds=outcome.seconds,
                        worker=outcome.worker,
                        attempt=n,
                    )
            elif fut.status == "error":
                exc = fut.exception()
                if isinstance(exc, KilledWorker):
                    if alone:
                        collector.fail(task, worker_died(task, alone=True))
                    else:
                        suspects.append(task)
                else:
                    collector.fail(
                        task,
                        TaskError(
                            f"{task.describe()}: the Dask worker failed to run the task "
                            f"({type(exc).__name__}: {exc})"
                        ),
                    )
            fut.release()
        if collector.stop:
            rest = [t for t, _ in by_key.values()]
            if by_key:
                client.cancel([f for _, f in by_key.values()], force=True)
            ac.clear()
            collector.cancel(sorted(rest + suspects, key=lambda t: t.sort_key))
            return []
    return suspects


def _watch(client: Any, last_progress: float) -> float:
    """Raise when the scheduler is gone or no worker has been there for ``WORKER_WAIT_S``."""
    now = time.monotonic()
    if now - last_progress < 5.0:
        return last_progress
    if client.status not in ("running", "connecting"):
        raise SchedulerUnreachableError(
            "lost the connection to the Dask scheduler; finished tasks are in the "
            "manifest - restart the scheduler and rerun with --resume"
        )
    if client.scheduler_info(n_workers=-1).get("workers"):
        return now
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise SchedulerUnreachableError(
            f"every Dask worker has been gone for {WORKER_WAIT_S:g} s; finished tasks "
            "are in the manifest - start workers and rerun with --resume"
        ) from None
    return time.monotonic()
