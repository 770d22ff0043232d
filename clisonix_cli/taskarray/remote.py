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
worker processes is started on 127.0.0.1 and torn down at the end. It speaks TLS only, with a
certificate made for this run and held in memory (distributed's ``Security.temporary()``):
another user of the machine cannot connect to it, and so cannot run code in the driver or
its workers. It serves no dashboard, and its scheduler and workers serve no HTTP route at
all. A remote scheduler is reached over ``tls://`` with ``--tls-ca-file``, ``--tls-cert``
and ``--tls-key`` (or in clear ``tcp://`` on a network the user trusts); workers and
scheduler are trusted either way: task results are pickled (docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clisonix_cli import __version__
from clisonix_cli.errors import (
    MissingDependencyError,
    SchedulerTlsError,
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


@dataclass(frozen=True)
class TlsFiles:
    """``--tls-ca-file``, ``--tls-cert``, ``--tls-key``: PEM files for a remote scheduler."""

    ca_file: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def given(self) -> bool:
        """True when any of the three is given."""
        return any(p is not None for p in (self.ca_file, self.cert, self.key))


#: No HTTP route on the local cluster's scheduler or workers (dashboard, /info, /json,
#: /metrics, /health, proxy): their HTTP servers answer 404 to everything.
_NO_HTTP: dict[str, list[str]] = {
    "distributed.scheduler.http.routes": [],
    "distributed.worker.http.routes": [],
}


def _local_cluster(distributed: Any, jobs: int) -> Any:
    """``jobs`` single-threaded worker processes on 127.0.0.1, TLS only, no dashboard."""
    import logging

    import dask

    try:
        security = distributed.security.Security.temporary()
    except ImportError:
        raise MissingDependencyError(
            "--backend dask needs the 'cryptography' package to secure its local cluster "
            "with TLS; install it with: pip install 'clisonix[dask]'"
        ) from None
    with dask.config.set(_NO_HTTP):  # the nannies pass this config on to their workers
        return distributed.LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            protocol="tls://",
            security=security,
            dashboard_address=None,
            worker_dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )


def remote_security(address: str | None, tls: TlsFiles) -> Any:
    """The ``Security`` for a remote scheduler, checked against its address.

    Parameters
    ----------
    address : str or None
        The scheduler's address (``tls://`` or ``tcp://``; None: read from a scheduler
        file, checked when connecting).
    tls : TlsFiles

    Returns
    -------
    distributed.Security or None
        None for clear ``tcp://`` without TLS files.

    Raises
    ------
    SchedulerTlsError
        ``tls://`` without the three files, TLS files with a ``tcp://`` address, or a file
        that cannot be read (exit 3).
    """
    scheme = (address or "").partition("://")[0] if "://" in (address or "") else ""
    if scheme == "tls" and not (tls.ca_file and tls.cert and tls.key):
        raise SchedulerTlsError(
            f"the scheduler {address} speaks TLS: give --tls-ca-file, --tls-cert and "
            "--tls-key (the CA that signed the scheduler's certificate, and this client's "
            "certificate and key, PEM files)"
        )
    if scheme and scheme != "tls" and tls.given:
        raise SchedulerTlsError(
            f"--tls-ca-file/--tls-cert/--tls-key given but the scheduler address {address} "
            "is not tls://; use the scheduler's tls:// address, or drop the TLS options"
        )
    if not tls.given:
        return None
    named = (
        ("--tls-ca-file", tls.ca_file),
        ("--tls-cert", tls.cert),
        ("--tls-key", tls.key),
    )
    missing = [opt for opt, path in named if path is None]
    if missing:
        raise SchedulerTlsError(
            "TLS needs all three of --tls-ca-file, --tls-cert and --tls-key; missing "
            + ", ".join(missing)
        )
    for opt, path in named:
        if path is None or not os.access(path, os.R_OK) or not path.is_file():
            raise SchedulerTlsError(
                f"{opt} {path}: not a readable file; give the PEM file's path"
            )
    distributed = _import_distributed()
    return distributed.security.Security(
        tls_ca_file=str(tls.ca_file),
        tls_client_cert=str(tls.cert),
        tls_client_key=str(tls.key),
        require_encryption=True,
    )


@contextmanager
def dask_client(
    *,
    scheduler: str | None,
    scheduler_file: Path | None,
    jobs: int,
    connect_timeout: float,
    tls: TlsFiles | None = None,
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
    tls : TlsFiles, optional
        Certificates for a ``tls://`` scheduler.

    Yields
    ------
    distributed.Client

    Raises
    ------
    MissingDependencyError
        ``distributed`` is not installed.
    SchedulerUnreachableError
        No scheduler within ``connect_timeout``, or no worker within ``WORKER_WAIT_S``.
    SchedulerTlsError
        TLS options and the scheduler disagree, or the TLS handshake fails.
    WorkerVersionError
        A worker runs another clisonix version or cannot import clisonix.
    """
    distributed = _import_distributed()
    tls = tls or TlsFiles()
    cluster: Any = None
    security: Any = None
    if scheduler is None and scheduler_file is None:
        if tls.given:
            raise SchedulerTlsError(
                "--tls-ca-file/--tls-cert/--tls-key are for a remote --scheduler; the "
                "local cluster makes its own certificate - drop them or give --scheduler"
            )
        cluster = _local_cluster(distributed, jobs)
        where = "the local Dask cluster"
    else:
        where = f"the Dask scheduler at {scheduler or scheduler_file}"
        if scheduler_file is not None and not scheduler_file.is_file():
            raise SchedulerUnreachableError(
                f"scheduler file {scheduler_file} does not exist; start the scheduler "
                f"with `dask scheduler --scheduler-file {scheduler_file}` first"
            )
        address = scheduler or _scheduler_file_address(scheduler_file)
        security = remote_security(address, tls)
    try:
        client = distributed.Client(
            cluster if cluster is not None else scheduler,
            scheduler_file=None if scheduler_file is None else str(scheduler_file),
            timeout=f"{connect_timeout}s",
            set_as_default=False,
            security=security,
        )
    except ssl.SSLError as exc:
        if cluster is not None:
            cluster.close()
        raise SchedulerTlsError(
            f"TLS with {where} failed ({type(exc).__name__}: {exc}); check that "
            "--tls-ca-file signed the scheduler's certificate and that the scheduler "
            "accepts --tls-cert"
        ) from None
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        if security is not None or _looks_like_tls_failure(exc):
            raise SchedulerTlsError(
                f"cannot reach {where} over TLS within {connect_timeout:g} s "
                f"({type(exc).__name__}: {exc}); check the address and that the "
                "scheduler speaks TLS with a certificate signed by --tls-ca-file, and "
                "accepts --tls-cert"
            ) from None
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


def _scheduler_file_address(path: Path | None) -> str | None:
    """The ``address`` of a Dask scheduler file (JSON), None when it cannot be read."""
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    address = doc.get("address") if isinstance(doc, dict) else None
    return address if isinstance(address, str) else None


def _looks_like_tls_failure(exc: BaseException) -> bool:
    """True for the errors distributed raises when one side speaks TLS and the other not."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(w in text for w in ("ssl", "tls", "certificate", "handshake", "encrypt"))


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
