"""The end-to-end suite (``e2e``): the whole transform job at each ``--jobs`` level."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench.harness import (
    MIN_GATED_REPEATS,
    Progress,
    rate,
    time_call,
    timing_figures,
)
from clisonix_cli.bench.sizing import parallel_efficiency


def _fresh_dir(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)


def transform_once(
    root: Path,
    out: Path,
    *,
    op_specs: Sequence[str],
    pipeline_file: Path | None,
    jobs: int,
    fmt: str | None = None,
) -> Any:
    """Run ``clisonix transform`` in-process (:func:`taskarray.execute.run`) once.

    Raises
    ------
    RuntimeError
        When a task failed (a benchmark of failing tasks would time error paths).
    """
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.execute import run

    config = RunConfig(
        in_dir=root,
        out_dir=out,
        op_specs=tuple(op_specs),
        pipeline_file=pipeline_file,
        jobs=jobs,
    )
    if fmt is not None:
        config = replace(config, format=fmt)
    result = run(config)
    if result.failed:
        err = result.failed[0].get("error") or {}
        raise RuntimeError(
            f"transform failed on {len(result.failed)} task(s), e.g. "
            f"{err.get('code', '?')}: {err.get('message', '?')}"
        )
    return result


def e2e_suite(
    root: Path,
    op_specs: Sequence[str],
    pipeline_file: Path | None,
    *,
    jobs_levels: Sequence[int],
    repeats: int,
    tmp: Path,
    min_time_s: float = 0.0,
    progress: Progress | None = None,
    yardstick: Callable[[str], Callable[[], float]] | None = None,
) -> dict[str, Any]:
    """Throughput of the whole transform job at each ``--jobs`` level.

    Each sample is one complete :func:`clisonix_cli.taskarray.execute.run` (scan, plan,
    read, pipeline, write, manifest) into an emptied output folder, with the transform's
    default format and backend; the warm-up run starts the worker pool and loads the
    compiled kernels. MB/s counts the bytes of the input files read.
    """
    from clisonix_cli.dicom.index import scan
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.transforms.pipeline import Pipeline

    found = scan(root)
    n_series = len(found.stacks)
    n_slices = sum(st.n_slices * st.n_volumes for st in found.stacks)
    n_bytes = sum((root / f).stat().st_size for st in found.stacks for f in st.files)
    if n_series == 0:
        raise RuntimeError("the end-to-end workload holds no image stack")
    defaults = RunConfig(in_dir=root, out_dir=tmp / "e2e")
    pipeline = Pipeline.from_cli(list(op_specs), pipeline_file)
    # Each level in one stretch (warm-up, then its samples): interleaving levels would
    # restart the worker pool at every switch (measured: 0.5 s runs became 4 s).
    timed = {}
    for jobs in jobs_levels:
        if progress:
            progress(f"end to end: --jobs {jobs}")
        out = tmp / f"e2e_jobs{jobs}"
        level = "1t" if jobs == 1 else "all"
        once = partial(
            transform_once,
            root,
            out,
            op_specs=op_specs,
            pipeline_file=pipeline_file,
            jobs=jobs,
        )
        timed[str(jobs)] = time_call(
            once,
            repeats=max(repeats, MIN_GATED_REPEATS),
            setup=partial(_fresh_dir, out),
            min_time_s=min_time_s,
            yardstick=yardstick(level) if yardstick else None,
        )
    levels: dict[str, Any] = {}
    for jobs in jobs_levels:
        t = timed[str(jobs)]
        levels[str(jobs)] = {
            **timing_figures(t),
            "timing": "in-process",
            "calibrate": "1t" if jobs == 1 else "all",
            "series_per_s": rate(n_series, t.median),
            "slices_per_s": rate(n_slices, t.median),
            "mb_per_s": rate(n_bytes, t.median) / 1e6,
        }
        _fresh_dir(tmp / f"e2e_jobs{jobs}")
    one = levels[str(min(jobs_levels))]["slices_per_s"]
    for level, fig in levels.items():
        fig["efficiency"] = parallel_efficiency(one, fig["slices_per_s"], int(level))
    top = str(max(jobs_levels))
    return {
        "pipeline": [step["name"] for step in pipeline.canonical()],
        "format": defaults.format,
        "backend": defaults.backend,
        "series": n_series,
        "slices": n_slices,
        "input_bytes": n_bytes,
        "jobs": levels,
        "parallel_efficiency": levels[top]["efficiency"],
        "speedup_all": levels[top]["slices_per_s"] / one,
    }
