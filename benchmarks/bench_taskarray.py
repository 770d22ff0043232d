"""Throughput and overhead figures of the task array (a script, not a test).

Usage::

    .venv/bin/python benchmarks/bench_taskarray.py [--slices 200] [--size 256] [--repeat 2]

Writes 8 synthetic CT series (4 patients x 2 series) into a temporary folder, warms the numba
cache once, then reports (medians over ``--repeat`` runs, warm page cache):

- throughput of loky ``--jobs 2`` against ``--jobs 1``;
- a local Dask cluster of 2 single-threaded workers against loky ``--jobs 2``;
- scan + plan time against run time;
- per-task scheduling overhead of loky and Dask, from 200 empty tasks.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from clisonix_cli.dicom.model import ScanResult, Stack
from clisonix_cli.dicom.synth import synthesize
from clisonix_cli.taskarray.collect import Collector, RunLog
from clisonix_cli.taskarray.config import RunConfig
from clisonix_cli.taskarray.execute import run
from clisonix_cli.taskarray.plan import Task, make_plan
from clisonix_cli.taskarray.task import TaskContext, TaskOutcome

OPS = ("rescale", "window:preset=brain", "flip:axis=row")


def empty_task(task: Task, ctx: TaskContext) -> TaskOutcome:
    """A task that does nothing: what is left is the executor's own cost."""
    return TaskOutcome({"task": task.task_id, "status": "ok"}, 0.0, "")


def _timed_run(cfg: RunConfig) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - t0
    assert result.exit_code == 0, [r["error"] for r in result.failed]
    return wall, result.timings


def _empty_overhead(backend: str, n: int = 200) -> float:
    stacks = [
        Stack(
            f"2.25.{i}",
            f"2.25.{i}.1",
            "1",
            (f"f{i}",),
            "CT",
            1,
            "",
            1,
            1,
            1,
            1,
            "",
            16,
            2,
        )
        for i in range(n)
    ]
    plan = make_plan(ScanResult("x", stacks, [], n, n, 0))
    ctx = TaskContext("/in", "/out", "npy", None, [], "0" * 64)  # type: ignore[arg-type]
    collector = Collector(ctx, n, None, RunLog(None))
    if backend == "loky":
        from clisonix_cli.taskarray.local import run_local

        run_local(plan.tasks[:4], ctx, collector, backend="loky", jobs=2, fn=empty_task)
        collector.records.clear()
        t0 = time.perf_counter()
        run_local(plan.tasks, ctx, collector, backend="loky", jobs=2, fn=empty_task)
        return (time.perf_counter() - t0) / n
    from clisonix_cli.taskarray.remote import dask_client, run_dask

    with dask_client(
        scheduler=None, scheduler_file=None, jobs=2, connect_timeout=30
    ) as c:
        run_dask(c, plan.tasks[:4], ctx, collector, fn=empty_task)
        collector.records.clear()
        t0 = time.perf_counter()
        run_dask(c, plan.tasks, ctx, collector, fn=empty_task)
        return (time.perf_counter() - t0) / n


def main() -> None:
    """Run the measurements and print one line per figure."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="clx-bench-") as tmp:
        src = Path(tmp) / "in"
        synthesize(src, seed=0, patients=4, studies=1, series=2, slices=args.slices,
                   rows=args.size, cols=args.size, modality="CT")  # fmt: skip
        mib = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 2**20
        print(
            f"input: 8 CT series x {args.slices} slices x {args.size}^2, {mib:.0f} MiB"
        )
        k = 0

        def once(**kw: Any) -> tuple[float, dict[str, float]]:
            nonlocal k
            k += 1
            out = Path(tmp) / f"o{k}"
            result = _timed_run(RunConfig(in_dir=src, out_dir=out, op_specs=OPS, **kw))
            shutil.rmtree(out)
            return result

        import logging

        from distributed import LocalCluster

        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.ERROR,
        ) as cluster:  # fmt: skip
            configs: dict[str, dict[str, Any]] = {
                "jobs1": {"jobs": 1},
                "jobs2": {"jobs": 2},
                "dask2": {"backend": "dask", "scheduler": cluster.scheduler_address},
            }
            # executor by executor (a loky pool is restarted when --jobs changes), each
            # after one warm-up run (worker start-up, imports, numba cache, page cache)
            timed: dict[str, list[tuple[float, dict[str, float]]]] = {}
            for name, kw in configs.items():
                once(**kw)
                timed[name] = [once(**kw) for _ in range(args.repeat)]
        one, two, dsk = timed["jobs1"], timed["jobs2"], timed["dask2"]
        med = {n: statistics.median(w for w, _ in r) for n, r in
               (("jobs1", one), ("jobs2", two), ("dask2", dsk))}  # fmt: skip
        run_s = {n: statistics.median(t["run_s"] for _, t in r) for n, r in
                 (("jobs1", one), ("jobs2", two), ("dask2", dsk))}  # fmt: skip
        scan_s = statistics.median(t["scan_s"] for _, t in one + two)
        plan_s = statistics.median(t["plan_s"] for _, t in one + two)
        print(
            f"loky jobs=1: {med['jobs1']:.2f} s wall ({run_s['jobs1']:.2f} s running)"
        )
        print(
            f"loky jobs=2: {med['jobs2']:.2f} s wall ({run_s['jobs2']:.2f} s running)"
        )
        print(f"dask 2 local workers: {med['dask2']:.2f} s wall "
              f"({run_s['dask2']:.2f} s running)")  # fmt: skip
        print(
            f"speed-up jobs 2 vs 1 (running phase): {run_s['jobs1'] / run_s['jobs2']:.2f}x"
        )
        print(
            f"dask vs loky jobs 2 (running phase): {run_s['jobs2'] / run_s['dask2']:.2f}x"
        )
        print(f"scan: {scan_s:.3f} s = {100 * scan_s / run_s['jobs1']:.2f}% and plan: "
              f"{1000 * plan_s:.2f} ms = {100 * plan_s / run_s['jobs1']:.3f}% of the "
              "jobs=1 running phase")  # fmt: skip
    print(f"per empty task, loky jobs=2: {1000 * _empty_overhead('loky'):.2f} ms")
    print(f"per empty task, dask 2 workers: {1000 * _empty_overhead('dask'):.2f} ms")


if __name__ == "__main__":
    main()
