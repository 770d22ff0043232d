"""Local executors: loky worker processes (``--backend loky``) and threads.

Tasks are submitted so that at most ``jobs`` run at once, which makes every in-flight task
known: when a loky worker dies (a crash, an out-of-memory kill), loky breaks the whole pool
and every running task is lost with it. Those tasks become suspects; the rest of the plan
goes on in a fresh pool, and at the end a quarantine pass runs each suspect alone, so that
an innocent task that shared the pool with the bad one succeeds and the bad one is recorded
as failed with ``CLX-E150`` naming the files it was reading.

``--task-timeout``: each task checks it between its stages; in addition the driver kills
the loky pool when a task runs past the limit (its co-running tasks are requeued, they are
not at fault). Threads cannot be killed: a thread past the limit is recorded as failed and
left to stop at its next check, before it writes anything.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from clisonix_cli.errors import TaskError, TaskTimeoutError
from clisonix_cli.runtime import worker_env
from clisonix_cli.taskarray.collect import TRANSIENT_CODES, Collector, worker_died
from clisonix_cli.taskarray.plan import Task
from clisonix_cli.taskarray.task import TaskContext, TaskOutcome, run_task

#: Seconds a task may overrun ``--task-timeout`` before the driver kills its worker, so
#: that the task's own check (which does not disturb other tasks) normally fires first.
KILL_GRACE_S = 1.0

TaskFn = Callable[[Task, TaskContext], TaskOutcome]


class _LokyPool:
    """A loky reusable executor that can be restarted after it breaks or is killed."""

    def __init__(self, jobs: int, fn: TaskFn) -> None:
        self.jobs = jobs
        self.fn = fn
        self.env = worker_env(jobs)
        self._ex: Any = None

    def _executor(self) -> Any:
        if self._ex is None:
            from joblib.externals.loky import get_reusable_executor

            self._ex = get_reusable_executor(
                max_workers=self.jobs, env=self.env, timeout=60
            )
        return self._ex

    def submit(self, task: Task, ctx: TaskContext) -> Future[TaskOutcome]:
        from joblib.externals.loky.process_executor import BrokenProcessPool

        try:
            fut: Future[TaskOutcome] = self._executor().submit(self.fn, task, ctx)
        except (BrokenProcessPool, RuntimeError):  # broken or shut down meanwhile
            self.restart()
            fut = self._executor().submit(self.fn, task, ctx)
        return fut

    @staticmethod
    def is_worker_death(exc: BaseException) -> bool:
        from joblib.externals.loky.process_executor import (
            BrokenProcessPool,
            ShutdownExecutorError,
        )

        return isinstance(exc, BrokenProcessPool | ShutdownExecutorError)

    def restart(self) -> None:
        """Forget the broken executor; the next submit starts a fresh one."""
        self._ex = None

    def kill(self) -> None:
        """Kill every worker (a task ran past its timeout)."""
        if self._ex is not None:
            self._ex.shutdown(wait=False, kill_workers=True)
            self._ex = None

    def close(self) -> None:
        """Nothing to do: loky's reusable workers stop after 60 s idle."""


class _ThreadPool:
    """One daemon thread per task (a timed-out thread never blocks the exit)."""

    def __init__(self, fn: TaskFn) -> None:
        self.fn = fn

    def submit(self, task: Task, ctx: TaskContext) -> Future[TaskOutcome]:
        fut: Future[TaskOutcome] = Future()

        def target() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(self.fn(task, ctx))
            except BaseException as exc:  # delivered to the driver like any result
                fut.set_exception(exc)

        threading.Thread(target=target, name=f"clx-{task.task_id}", daemon=True).start()
        return fut

    @staticmethod
    def is_worker_death(exc: BaseException) -> bool:
        return False

    def restart(self) -> None:
        """Threads do not break."""

    def kill(self) -> None:
        """Threads cannot be killed; abandoned ones stop at their next deadline check."""

    def close(self) -> None:
        """Nothing to release."""


_Pool = _LokyPool | _ThreadPool


def run_local(
    tasks: Sequence[Task],
    ctx: TaskContext,
    collector: Collector,
    *,
    backend: str,
    jobs: int,
    retries: int = 0,
    task_timeout: float | None = None,
    fn: TaskFn = run_task,
) -> None:
    """Run ``tasks`` on local workers; every task ends with one record in ``collector``.

    Parameters
    ----------
    tasks : sequence of Task
        In plan order.
    ctx : TaskContext
    collector : Collector
    backend : {"loky", "threads"}
    jobs : int
        Tasks running at once.
    retries : int
        Extra attempts after a transient failure (see ``TRANSIENT_CODES``).
    task_timeout : float or None
    fn : callable
        The task function (tests substitute a trivial picklable one).
    """
    pool: _Pool = _LokyPool(jobs, fn) if backend == "loky" else _ThreadPool(fn)
    try:
        suspects = _drive(
            pool, tasks, ctx, collector, capacity=jobs, retries=retries,
            timeout=task_timeout, alone=False,
        )  # fmt: skip
        if suspects and not collector.stop:
            collector.note(
                f"quarantine: a worker died; re-running {len(suspects)} task(s) that "
                "were running at the time, one at a time"
            )
            _drive(
                pool, suspects, ctx, collector, capacity=1, retries=retries,
                timeout=task_timeout, alone=True,
            )  # fmt: skip
        collector.cancel(tasks)  # --fail-fast: whatever did not run
    finally:
        pool.close()


def _drive(
    pool: _Pool,
    tasks: Sequence[Task],
    ctx: TaskContext,
    collector: Collector,
    *,
    capacity: int,
    retries: int,
    timeout: float | None,
    alone: bool,
) -> list[Task]:
    """Run tasks with at most ``capacity`` in flight; return the worker-death suspects.

    With ``alone`` (the quarantine pass, capacity 1) a worker death is the running task's
    own: it is retried or recorded as failed instead of becoming a suspect.
    """
    queue: deque[Task] = deque(tasks)
    attempts: dict[str, int] = {}
    inflight: dict[Future[TaskOutcome], tuple[Task, float]] = {}
    suspects: list[Task] = []

    def finish(task: Task, outcome: TaskOutcome) -> None:
        rec = outcome.record
        code = (rec.get("error") or {}).get("code")
        n = attempts[task.task_id]
        if rec["status"] == "failed" and code in TRANSIENT_CODES and n <= retries:
            queue.appendleft(task)
            return
        collector.add(
            task, rec, seconds=outcome.seconds, worker=outcome.worker, attempt=n
        )

    def died(task: Task) -> None:
        n = attempts[task.task_id]
        if not alone:
            suspects.append(task)
        elif n <= retries:
            queue.appendleft(task)
        else:
            collector.fail(task, worker_died(task, alone=True), attempt=n)

    while True:
        while queue and len(inflight) < capacity and not collector.stop:
            task = queue.popleft()
            attempts[task.task_id] = attempts.get(task.task_id, 0) + 1
            inflight[pool.submit(task, ctx)] = (task, time.monotonic())
        if not inflight:
            break
        done, _ = wait(
            list(inflight),
            timeout=None if timeout is None else 0.25,
            return_when=FIRST_COMPLETED,
        )
        broken = False
        for fut in done:
            task, _t0 = inflight.pop(fut)
            exc = fut.exception()
            if exc is None:
                finish(task, fut.result())
            elif pool.is_worker_death(exc):
                broken = True
                died(task)
            else:  # the task could not even be sent or unpacked: a bug, not the input
                collector.fail(
                    task,
                    TaskError(
                        f"{task.describe()}: the executor failed to run the task "
                        f"({type(exc).__name__}: {exc})"
                    ),
                    attempt=attempts[task.task_id],
                )
        if broken:
            # loky lost the whole pool: the other running tasks went down with it.
            for fut, (task, _t0) in list(inflight.items()):
                if fut.done() and fut.exception() is None:
                    finish(task, fut.result())
                else:
                    died(task)
            inflight.clear()
            pool.restart()
        if timeout is not None and inflight:
            _enforce_timeout(pool, inflight, queue, attempts, collector, timeout)
    if collector.stop:
        collector.cancel(list(queue) + suspects)
        return []
    return suspects


def _enforce_timeout(
    pool: _Pool,
    inflight: dict[Future[TaskOutcome], tuple[Task, float]],
    queue: deque[Task],
    attempts: dict[str, int],
    collector: Collector,
    timeout: float,
) -> None:
    """Fail tasks past ``timeout`` and kill their workers; requeue innocent co-runners."""
    now = time.monotonic()
    late = {f for f, (_t, t0) in inflight.items() if now - t0 > timeout + KILL_GRACE_S}
    if not late:
        return
    for fut in sorted(late, key=lambda f: inflight[f][0].sort_key):
        task, t0 = inflight[fut]
        collector.fail(
            task,
            TaskTimeoutError(
                f"{task.describe()}: still running after {now - t0:.1f} s, over "
                f"--task-timeout {timeout:g} s; stopped. Raise --task-timeout or "
                "check the input"
            ),
            attempt=attempts[task.task_id],
        )
    if isinstance(pool, _ThreadPool):
        for fut in late:
            del inflight[fut]
        return
    innocent = [t for f, (t, _t0) in inflight.items() if f not in late]
    inflight.clear()
    pool.kill()
    for task in reversed(innocent):  # back to the front, in plan order
        attempts[task.task_id] -= 1
        queue.appendleft(task)
