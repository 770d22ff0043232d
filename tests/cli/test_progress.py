"""The terminal progress bar counts done and failed tasks and the slice rate."""

from __future__ import annotations

from clisonix_cli.cli._progress import RunProgress
from clisonix_cli.dicom.model import Stack
from clisonix_cli.taskarray.collect import Event
from clisonix_cli.taskarray.plan import Task


def _task(n_slices: int, n_volumes: int) -> Task:
    stack = Stack(
        study_uid="1.2", series_uid="1.2.3", stack_key="1", files=("a",), modality="CT",
        series_number=1, series_description="", rows=2, cols=2, n_slices=n_slices,
        n_volumes=n_volumes, transfer_syntax="1.2.840.10008.1.2.1", bits_allocated=16,
        est_bytes=8,
    )  # fmt: skip
    return Task(task_id="t", shard=0, stack=stack, out_stem="x")


def test_bar_fields_count_failed_tasks_and_slices() -> None:
    failed = {
        "status": "failed",
        "task": "t2",
        "error": {"code": "CLX-E101", "message": "x"},
    }
    with RunProgress(rich_bar=True) as progress:
        progress(Event("start", 0, 3))
        progress(Event("task", 1, 3, _task(10, 1), {"status": "ok", "task": "t1"}))
        progress(Event("task", 2, 3, _task(99, 1), failed))
        progress(Event("task", 3, 3, _task(5, 2), {"status": "ok", "task": "t3"}))
        bar = progress._progress.tasks[0]
        assert bar.completed == 3
        assert bar.fields["failed"] == 1
        assert progress._slices == 10 + 5 * 2  # failed tasks add no slices
        assert float(bar.fields["rate"].replace(",", "")) > 0
