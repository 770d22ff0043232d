"""Thread and process policy: cores, thread pools per worker, OpenMP waiting.

Every decision about how many threads run where is taken here, so that workers x threads
stays within the cores this process may use whatever the executor:

- :func:`cpu_cores`: the cores available (CPU affinity and cgroup quotas included);
- :func:`threads_per_worker`: each of ``n`` workers gets ``cores // n`` threads;
- :func:`worker_env`: the thread-pool variables of a loky worker's environment;
- :func:`task_threads`: numba threads and a one-thread BLAS around one task, and the
  task's CPU budget (:func:`cpu_budget`: threads for its own parallel work, e.g. gzip);
- :func:`numba_threads`, :func:`one_blas_thread`, :func:`one_thread_pools`: scoped limits;
- :func:`apply_process_policy`: OpenMP threads wait passively unless the user said otherwise.

Nothing heavy is imported at module level (numba and threadpoolctl load inside the
functions), so the transform core may import this module and stay light to import.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

#: Thread-pool variables loky sets in its workers (joblib's list), so that
#: workers x threads <= cores. A value set by the user in the environment is kept.
THREAD_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def apply_process_policy() -> None:
    """Make OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``) unless the user set it.

    The OpenMP runtime reads the variable once, when it starts: numba's OpenMP threading
    layer starts at the first parallel kernel call or thread-count query. Hence this is
    called where work starts, before numba: the CLI entry point (its child processes, loky
    workers included, inherit the setting), the first compile of a kernel and every numba
    thread setting of this module (Python callers and Dask workers). With OpenMP's default
    spin-waiting, a 2-thread kernel call cost a flat 8 ms on a busy 2-core machine (0.2 ms at
    1 thread; 0.2 ms at 2 threads when passive, measured): idle threads that spin steal the
    time slice of the thread doing the work.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_cores() -> int:
    """CPU cores this process may use (affinity and cgroup quotas included).

    The same count as joblib's ``cpu_count()`` (the tests compare them), without importing
    joblib, which costs 0.12 s of CPU on every run that needs no process pool (measured):
    the CPUs in this process's affinity mask, capped by a cgroup CPU bandwidth quota
    (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us / cpu.cfs_period_us`` of v1, rounded
    up), and at 61 on Windows (its limit for a process pool).

    Returns
    -------
    int
        At least 1.
    """
    count = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        count = min(count, len(os.sched_getaffinity(0)) or count)
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, quota)
    if sys.platform == "win32":
        count = min(count, 61)
    return max(1, count)


def _cgroup_quota() -> int | None:
    """CPUs allowed by a cgroup bandwidth limit (v2, else v1), None when there is none."""
    quota = period = ""
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            parts = fh.read().split()
        if len(parts) == 2:
            quota, period = parts
    except OSError:
        pass
    if not period:
        try:
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fh:
                quota = fh.read().strip()
            with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
                period = fh.read().strip()
        except OSError:
            return None
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    return -(-q // p) if q > 0 and p > 0 else None


def threads_per_worker(workers: int) -> int:
    """Threads each of ``workers`` parallel workers may use: ``cores // workers``, >= 1."""
    return max(1, cpu_cores() // max(1, workers))


def worker_env(jobs: int) -> dict[str, str]:
    """Environment for loky workers: every thread pool sized ``cores // jobs``.

    Parameters
    ----------
    jobs : int
        Worker processes running at once.

    Returns
    -------
    dict
        One entry per :data:`THREAD_VARS`; a variable the user set keeps its value.
    """
    per = str(threads_per_worker(jobs))
    return {var: os.environ.get(var, per) for var in THREAD_VARS}


_task_local = threading.local()


def cpu_budget() -> int:
    """Threads the running task may keep busy for its own parallel work (gzip blocks).

    Inside a task, the budget :func:`task_threads` set for it (``cores // jobs``); outside,
    a loky worker's ``NUMBA_NUM_THREADS`` (also ``cores // jobs``, see :func:`worker_env`),
    else every core. Work split on these threads must give the same bytes for any count.
    """
    budget = getattr(_task_local, "budget", None)
    if budget:
        return int(budget)
    env = os.environ.get("NUMBA_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return cpu_cores()


def task_budget(numba_threads: int | None, host_threads: Mapping[str, int]) -> int:
    """The CPU budget of one task: :func:`task_numba_threads` when it fixes a count, else
    :func:`cpu_budget` (a loky worker's share, or every core). Imports no numba."""
    n = task_numba_threads(numba_threads, host_threads)
    return n if n else cpu_budget()


def dask_host_threads(host_threads: Mapping[str, int]) -> int | None:
    """Worker threads on this Dask worker's host, or None outside Dask.

    Parameters
    ----------
    host_threads : mapping
        Host -> worker threads on that host, as the driver saw the cluster.
    """
    mod = sys.modules.get("distributed")
    if mod is None:
        return None
    try:
        worker = mod.get_worker()
    except ValueError:
        return None
    host = str(worker.address).rsplit(":", 1)[0].split("://")[-1]
    return int(host_threads.get(host, worker.state.nthreads))


def task_numba_threads(
    numba_threads: int | None, host_threads: Mapping[str, int]
) -> int | None:
    """Numba threads for one task so that tasks x threads <= cores on this machine.

    Parameters
    ----------
    numba_threads : int or None
        A count fixed by the driver (the threads executor); used as is when given.
    host_threads : mapping
        Dask only: host -> worker threads on that host (see :func:`dask_host_threads`).

    Returns
    -------
    int or None
        None leaves numba's default (a loky worker's ``NUMBA_NUM_THREADS``).
    """
    if numba_threads is not None:
        return numba_threads
    if host_threads:
        on_host = dask_host_threads(host_threads)
        if on_host:
            return threads_per_worker(on_host)
    return None


def set_numba_threads(n: int) -> int:
    """Run numba's parallel kernels of this thread on ``n`` threads, capped at the pool size.

    Returns
    -------
    int
        The count set: ``n`` within ``[1, NUMBA_NUM_THREADS]``.
    """
    apply_process_policy()
    import numba

    limit = int(cast(Any, numba.config).NUMBA_NUM_THREADS)
    used = max(1, min(n, limit))
    numba.set_num_threads(used)
    return used


@contextlib.contextmanager
def numba_threads(n: int) -> Iterator[int]:
    """Run numba's parallel kernels on ``n`` threads (capped), then restore the count."""
    apply_process_policy()
    import numba

    old = numba.get_num_threads()
    used = set_numba_threads(n)
    try:
        yield used
    finally:
        numba.set_num_threads(old)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold BLAS/LAPACK to one thread (numba threads run over slices or tasks instead)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def one_thread_pools() -> Iterator[None]:
    """Hold every BLAS and OpenMP pool to one thread (references are timed single-threaded)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def task_threads(
    numba_threads: int | None, *, limit_blas: bool, budget: int | None = None
) -> Iterator[None]:
    """Size numba threads for one task and, if asked, hold BLAS to one thread around it.

    Parameters
    ----------
    numba_threads : int or None
        From :func:`task_numba_threads`; None leaves numba's thread count alone.
    limit_blas : bool
        Hold BLAS to one thread while the task runs.
    budget : int or None
        What :func:`cpu_budget` answers in this thread while the task runs.
    """
    if numba_threads is not None:
        set_numba_threads(numba_threads)
    previous = getattr(_task_local, "budget", None)
    _task_local.budget = budget
    try:
        if limit_blas:
            with one_blas_thread():
                yield
        else:
            yield
    finally:
        _task_local.budget = previous
