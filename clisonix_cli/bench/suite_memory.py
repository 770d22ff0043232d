"""Memory suites: copy bandwidth (``memory``) and the peak RSS of one task (``peak``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clisonix_cli.bench.harness import run_child, timing_figures


def memory_suite(*, quick: bool, cores: int, repeats: int) -> dict[str, Any]:
    """Copy bandwidth with one thread and with every core (see :mod:`.memory`)."""
    from clisonix_cli.bench.memory import (
        DEFAULT_BUFFER_MIB,
        QUICK_BUFFER_MIB,
        copy_bandwidth,
    )

    mib = QUICK_BUFFER_MIB if quick else DEFAULT_BUFFER_MIB
    gb1, t1 = copy_bandwidth(buffer_mib=mib, threads=1, repeats=repeats)
    fr1, tf1 = copy_bandwidth(buffer_mib=mib, threads=1, repeats=repeats, fresh=True)
    section: dict[str, Any] = {
        "buffer_bytes": mib * 1024 * 1024,
        "convention": "read+write",
        "copy_gbps_1t": gb1,
        "copy_1t": timing_figures(t1),
        "copy_fresh_gbps_1t": fr1,
        "copy_fresh_1t": timing_figures(tf1),
    }
    if cores > 1:
        gbn, tn = copy_bandwidth(buffer_mib=mib, threads=cores, repeats=repeats)
        section["copy_gbps_all"] = gbn
        section["copy_all"] = timing_figures(tn)
        frn, tfn = copy_bandwidth(
            buffer_mib=mib, threads=cores, repeats=repeats, fresh=True
        )
        section["copy_fresh_gbps_all"] = frn
        section["copy_fresh_all"] = timing_figures(tfn)
    else:
        section["copy_gbps_all"] = gb1
        section["copy_fresh_gbps_all"] = fr1
    return section


def peak_memory_suite(
    root: Path,
    op_specs: Sequence[str],
    pipeline_file: Path | None,
    *,
    tmp: Path,
) -> dict[str, Any]:
    """RSS high-water of a fresh process running one transform task (the largest stack).

    Run twice: the second process, with every kernel in the on-disk cache, gives the
    figures; the first one's peak is kept as ``first_process_peak_rss_mib`` (information:
    it includes any compilation the cache state required).
    """
    args = ["task", "--root", str(root), "--out", str(tmp / "peak_out")]
    for spec in op_specs:
        args += ["--op", spec]
    if pipeline_file is not None:
        args += ["--pipeline", str(pipeline_file)]
    # The first process may compile kernels whose on-disk cache is missing or stale (LLVM
    # then holds hundreds of MiB for a while); the second measures the steady state.
    first = run_child(args)
    res = run_child(args)
    return {
        "task_peak_rss_mib": res["peak_rss_mib"],
        "baseline_rss_mib": res["baseline_rss_mib"],
        "task_delta_rss_mib": res["peak_rss_mib"] - res["baseline_rss_mib"],
        "first_process_peak_rss_mib": first["peak_rss_mib"],
        "volume_bytes": res["volume_bytes"],
        "series_slices": res["slices"],
        "format": res["format"],
        "task_s": res["task_s"],
    }
