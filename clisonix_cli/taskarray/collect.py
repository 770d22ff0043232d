"""The driver side of a run: collects finished tasks, writes the manifest and the run log.

Executors (:mod:`~clisonix_cli.taskarray.local`, :mod:`~clisonix_cli.taskarray.remote`)
hand every final record to a :class:`Collector`; it appends the record to the manifest part
(flushed and fsynced), writes the timing to the run log, tells the caller through an
:class:`Event` callback (progress lives in the CLI) and raises the ``--fail-fast`` flag.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clisonix_cli.errors import (
    ClisonixError,
    TaskCancelledError,
    WorkerDiedError,
    WriteFailedError,
)
from clisonix_cli.fsio import open_append
from clisonix_cli.taskarray.manifest import ManifestWriter, Record
from clisonix_cli.taskarray.plan import Task
from clisonix_cli.taskarray.task import TaskContext, failed_record

#: Failure codes worth another attempt under ``--retries`` (a worker died, a write failed).
TRANSIENT_CODES: frozenset[str] = frozenset(
    {WorkerDiedError.code, WriteFailedError.code}
)


@dataclass(frozen=True)
class Event:
    """Something the caller may show: ``start``, ``task`` (one finished), ``note``, ``end``."""

    kind: str
    done: int = 0
    total: int = 0
    task: Task | None = None
    record: Record | None = None
    message: str = ""


EventHandler = Callable[[Event], None]


class RunLog:
    """Timings and worker names, one JSON line per event (never part of the outputs).

    Parameters
    ----------
    path : Path or None
        None disables the log (dry runs, tests).
    """

    def __init__(self, path: Path | None) -> None:
        self._fh: IO[str] | None = None
        if path is not None:
            self._fh = open_append(path)  # creates .clisonix/; never through a link

    def write(self, event: str, **fields: Any) -> None:
        """Append one line with a UTC timestamp."""
        if self._fh is None:
            return
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
        line = {"event": event, "time": now, "pid": os.getpid(), **fields}
        self._fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class Collector:
    """Receives the final record of each task, in completion order.

    Parameters
    ----------
    ctx : TaskContext
        Used to build driver-side records (worker died, cancelled, timeout).
    total : int
        Number of tasks this run executes.
    writer : ManifestWriter or None
    runlog : RunLog
    on_event : callable or None
    fail_fast : bool
        Set :attr:`stop` at the first failed record.
    """

    ctx: TaskContext
    total: int
    writer: ManifestWriter | None
    runlog: RunLog
    on_event: EventHandler | None = None
    fail_fast: bool = False
    records: dict[str, Record] = field(default_factory=dict)
    stop: bool = False

    def add(
        self,
        task: Task,
        record: Record,
        *,
        seconds: float | None = None,
        worker: str | None = None,
        attempt: int = 1,
    ) -> None:
        """Record a task's final outcome (manifest line, run-log line, event)."""
        self.records[task.task_id] = record
        if self.writer is not None:
            self.writer.append(record)
        error = record.get("error") or {}
        self.runlog.write(
            "task",
            task=task.task_id,
            status=record["status"],
            code=error.get("code"),
            seconds=None if seconds is None else round(seconds, 4),
            worker=worker,
            attempt=attempt,
        )
        if record["status"] == "failed" and self.fail_fast:
            self.stop = True
        self.emit(Event("task", len(self.records), self.total, task, record))

    def fail(self, task: Task, err: ClisonixError, *, attempt: int = 1) -> None:
        """Record a driver-side failure (worker death, timeout, cancellation)."""
        self.add(task, failed_record(task, self.ctx, err), attempt=attempt)

    def cancel(self, tasks: Iterable[Task]) -> None:
        """Record tasks that ``--fail-fast`` kept from running."""
        for task in tasks:
            if task.task_id not in self.records:
                self.fail(
                    task,
                    TaskCancelledError(
                        f"{task.describe()}: not run because --fail-fast stopped the batch "
                        "after a failed task; rerun with --resume to do it"
                    ),
                )

    def note(self, message: str) -> None:
        """Tell the caller something worth a line (quarantine pass, lost workers)."""
        self.runlog.write("note", message=message)
        self.emit(Event("note", len(self.records), self.total, message=message))

    def emit(self, event: Event) -> None:
        """Pass an event to the caller's handler, if any."""
        if self.on_event is not None:
            self.on_event(event)


def worker_died(task: Task, *, alone: bool) -> WorkerDiedError:
    """The error recorded for a task whose worker process died under it.

    Parameters
    ----------
    task : Task
    alone : bool
        True when the task ran alone (quarantine pass), so the death is its own.

    Returns
    -------
    WorkerDiedError
    """
    where = "when run alone in the quarantine pass" if alone else "while running it"
    return WorkerDiedError(
        f"{task.describe()}: the worker process died {where} (killed by a signal: a "
        "crash in a reader or kernel, or an out-of-memory kill); check these files, or "
        "give each worker more memory (fewer --jobs)"
    )
