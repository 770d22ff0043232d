"""Task-array test helpers: fake stacks, a fake pipeline, fake and crashing task functions.

The fakes let the executors, the manifest and resume be tested in milliseconds without
DICOM. They are pickled by value (cloudpickle) so that loky and Dask workers can run them
although this test folder is not an importable package. :class:`CrashingTask` (fixture
``crash_on``) makes chosen tasks kill their own worker process, to test worker-death
handling without any hook in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from clisonix_cli.dicom.model import ScanResult, Skipped, Stack
from clisonix_cli.digest import file_digest
from clisonix_cli.errors import InputError, WriteFailedError
from clisonix_cli.fsio import atomic_write_bytes, sha256_file
from clisonix_cli.taskarray import execute
from clisonix_cli.taskarray.plan import Task
from clisonix_cli.taskarray.task import (
    TaskContext,
    TaskOutcome,
    base_record,
    failed_record,
    run_task,
    worker_name,
)


class FakePipeline:
    """Identity pipeline with a name, so two fakes can differ in hash."""

    def __init__(self, name: str = "identity") -> None:
        self.name = name

    def canonical(self) -> list[dict[str, Any]]:
        return [{"name": self.name, "version": 1, "params": {}}]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical()).encode()).hexdigest()

    def run(self, img: Any) -> Any:
        return img


def make_stack(
    study: str,
    series: str,
    *,
    number: int | None = 1,
    desc: str = "T1",
    n_files: int = 2,
    key: str = "1",
) -> Stack:
    files = tuple(f"{study}/{series}/IM{i:04d}.dcm" for i in range(n_files))
    return Stack(
        study_uid=study,
        series_uid=series,
        stack_key=key,
        files=files,
        modality="CT",
        series_number=number,
        series_description=desc,
        rows=4,
        cols=4,
        n_slices=n_files,
        n_volumes=1,
        transfer_syntax="1.2.840.10008.1.2.1",
        bits_allocated=16,
        est_bytes=32 * n_files,
    )


def make_scan(stacks: list[Stack], skipped: list[Skipped] | None = None) -> ScanResult:
    return ScanResult(
        root="in",
        stacks=list(stacks),
        skipped=list(skipped or []),
        n_files=sum(len(s.files) for s in stacks),
        n_dicom=sum(len(s.files) for s in stacks),
        n_non_dicom=0,
    )


def fake_task(task: Task, ctx: TaskContext) -> TaskOutcome:
    """Write one small text output; behaviour chosen by the series description.

    ``fail``: an input error. ``sleep:<s>``: sleep first. ``flaky:<marker>``: a write
    failure on the first attempt (a marker file in OUT remembers it).
    """
    start = time.monotonic()
    desc = task.stack.series_description
    if desc.startswith("sleep:"):
        time.sleep(float(desc.split(":", 1)[1]))
    if desc == "fail":
        rec = failed_record(task, ctx, InputError(f"{task.describe()}: bad input"))
        return TaskOutcome(rec, time.monotonic() - start, worker_name())
    if desc.startswith("flaky:"):
        marker = Path(ctx.out_dir) / ".clisonix" / f"flaky-{task.task_id}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("1")
            rec = failed_record(task, ctx, WriteFailedError("disk hiccup"))
            return TaskOutcome(rec, time.monotonic() - start, worker_name())
    out = Path(ctx.out_dir) / (task.out_stem + ".txt")
    atomic_write_bytes(
        out,
        f"{task.task_id}\n{ctx.pipeline_sha256}\n{','.join(task.stack.files)}\n".encode(),
    )
    rec = base_record(task, ctx)
    rec.update(
        status="ok",
        error=None,
        outputs=[
            {
                "path": out.relative_to(ctx.out_dir).as_posix(),
                "digest": file_digest(out),
                "bytes": out.stat().st_size,
            }
        ],
    )
    return TaskOutcome(rec, time.monotonic() - start, worker_name())


def slow_task(task: Task, ctx: TaskContext) -> TaskOutcome:
    """The real task, 0.4 s later (so that a run can be disturbed midway)."""
    time.sleep(0.4)
    return run_task(task, ctx)


@dataclass(frozen=True)
class CrashingTask:
    """A task function whose chosen tasks die like an out-of-memory kill (SIGKILL).

    Parameters
    ----------
    crash : frozenset of str
        Series UIDs or task ids of the tasks that kill their own worker process.
    inner : callable
        The task function every other task runs (the real one by default).
    """

    crash: frozenset[str]
    inner: Callable[[Task, TaskContext], TaskOutcome] = run_task

    def __call__(self, task: Task, ctx: TaskContext) -> TaskOutcome:
        if task.series_uid in self.crash or task.task_id in self.crash:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(task, ctx)


@pytest.fixture
def crash_on(fakes: ModuleType) -> Callable[..., CrashingTask]:
    """``crash_on(uid, ..., inner=run_task)``: a picklable task function for ``run(fn=)``.

    Only for process executors (loky, Dask): on threads the kill would end pytest itself.
    """

    def make(
        *crash: str, inner: Callable[[Task, TaskContext], TaskOutcome] = run_task
    ) -> CrashingTask:
        return CrashingTask(frozenset(crash), inner)

    return make


@pytest.fixture(scope="session")
def fakes() -> ModuleType:
    """This module, registered for pickling by value (workers cannot import it)."""
    import cloudpickle

    mod = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(mod)
    return mod


@pytest.fixture
def fake_env(
    fakes: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Patch scanning and the pipeline of :func:`execute.run` with fakes.

    Yields a dict: set ``state["stacks"]``/``state["skipped"]``/``state["pipeline"]``.
    """
    state: dict[str, Any] = {"stacks": [], "skipped": [], "pipeline": FakePipeline()}
    (tmp_path / "in").mkdir()
    monkeypatch.setattr(
        execute, "scan_input", lambda cfg: make_scan(state["stacks"], state["skipped"])
    )
    monkeypatch.setattr(execute, "load_pipeline", lambda cfg: state["pipeline"])
    yield state


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path (the run log excluded)."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "run-log" not in p.name
    }


def no_temp_files(root: Path) -> bool:
    return not any(
        name.endswith(".clxtmp") for _, _, files in os.walk(root) for name in files
    )
