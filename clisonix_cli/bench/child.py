"""Subprocess entry points of ``clisonix bench`` (``python -m clisonix_cli.bench.child``).

A fresh interpreter is the only honest way to measure what a first run costs (numba compile
with an empty cache) and what one task holds in memory (its own RSS high-water mark, which
the kernel keeps exactly: ``VmHWM``, see :func:`clisonix_cli.bench.harness.peak_rss_mib_self`).
Each command prints one JSON line on stdout.

Commands
--------
``compile --ops a,b``
    Import the registry (timed), then call each op's ``apply`` once on a 4x32x32 int16
    volume (timed one by one).
``task --root DIR --out DIR [--op SPEC ...] [--pipeline FILE]``
    Scan ``DIR``, then run its largest stack as one transform task
    (:func:`clisonix_cli.taskarray.task.run_task`: hash, read, pipeline, write); report the
    process's peak RSS (high-water mark) and its current RSS just before the task (after
    importing the libraries a task uses).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _compile(op_names: Sequence[str]) -> dict[str, Any]:
    """Import the registry (timed), then the first ``apply`` of each op (timed each)."""
    import numpy as np

    t0 = time.perf_counter()
    import numba  # noqa: F401 - part of what a first run pays

    from clisonix_cli.transforms.image import Image
    from clisonix_cli.transforms.registry import all_ops

    registry = all_ops()
    import_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    vol = rng.integers(-1024, 2000, size=(4, 32, 32), dtype=np.int16)
    affine = np.diag([2.0, 0.7, 0.7, 1.0])
    img = Image(vol=vol, affine_lps=affine, slope=1.0, intercept=-1024.0)
    per_op: dict[str, float] = {}
    t_all = time.perf_counter()
    for name in op_names:
        op = registry[name]
        params = op.bind(dict(op.examples[0]) if op.examples else {})
        t = time.perf_counter()
        op.apply(img, **params)
        per_op[name] = (time.perf_counter() - t) * 1e3
    total_s = time.perf_counter() - t_all
    from clisonix_cli.bench.harness import peak_rss_mib_self

    return {
        "import_s": import_s,
        "total_s": total_s,
        "per_op_ms": per_op,
        "peak_rss_mib": peak_rss_mib_self(),
    }


def _task(
    root: Path,
    out: Path,
    specs: Sequence[str],
    pipeline_file: Path | None,
) -> dict[str, Any]:
    """Run the largest stack of ``root`` as one transform task (``run_task``)."""
    import nibabel  # noqa: F401 - libraries every task uses, loaded before the baseline
    import numba  # noqa: F401
    import pydicom  # noqa: F401

    from clisonix_cli.bench.harness import current_rss_mib, peak_rss_mib_self
    from clisonix_cli.dicom.index import scan
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.plan import make_plan
    from clisonix_cli.taskarray.task import TaskContext, run_task
    from clisonix_cli.transforms.pipeline import Pipeline

    pipeline = Pipeline.from_cli(list(specs), pipeline_file)
    plan = make_plan(scan(root))
    if not plan.tasks:
        raise SystemExit(f"no task planned under {root.name}")
    task = max(plan.tasks, key=lambda t: t.stack.n_slices * t.stack.n_volumes)
    out.mkdir(parents=True, exist_ok=True)
    ctx = TaskContext(
        in_dir=str(root.resolve()),
        out_dir=str(out.resolve()),
        fmt=RunConfig(in_dir=root, out_dir=out).format,
        pipeline=pipeline,
        pipeline_canonical=pipeline.canonical(),
        pipeline_sha256=pipeline.sha256,
    )
    baseline = current_rss_mib()
    t0 = time.perf_counter()
    outcome = run_task(task, ctx)
    seconds = time.perf_counter() - t0
    if outcome.record.get("status") != "ok":
        err = outcome.record.get("error") or {}
        raise SystemExit(f"the task failed: {err.get('code')}: {err.get('message')}")
    return {
        "peak_rss_mib": peak_rss_mib_self(),
        "baseline_rss_mib": baseline,
        "volume_bytes": int(task.stack.est_bytes),
        "slices": int(task.stack.n_slices * task.stack.n_volumes),
        "task_s": seconds,
        "format": ctx.fmt,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and print the result as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m clisonix_cli.bench.child")
    sub = parser.add_subparsers(dest="command", required=True)
    p_compile = sub.add_parser("compile")
    p_compile.add_argument("--ops", required=True)
    p_task = sub.add_parser("task")
    p_task.add_argument("--root", type=Path, required=True)
    p_task.add_argument("--out", type=Path, required=True)
    p_task.add_argument("--op", action="append", default=[])
    p_task.add_argument("--pipeline", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "compile":
        result = _compile([n for n in args.ops.split(",") if n])
    else:
        result = _task(args.root, args.out, args.op, args.pipeline)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
