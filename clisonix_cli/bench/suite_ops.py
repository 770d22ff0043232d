"""The per-op suite (``ops``): every op's ``apply`` against its reference, on one volume."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench import workload as wl
from clisonix_cli.bench.harness import SLOW_S, Progress, time_call, timing_figures
from clisonix_cli.runtime import numba_threads, one_thread_pools


def load_image(root: Path, stack: Any, *, max_slices: int | None = None) -> Any:
    """Load one stack as an :class:`Image` (first volume of a 4-D stack, cropped if asked)."""
    from clisonix_cli.dicom.volume import load_stack
    from clisonix_cli.transforms.image import Image

    vol = load_stack(root, stack)
    data = vol.data[0] if vol.data.ndim == 4 else vol.data
    if max_slices is not None and data.shape[0] > max_slices:
        data = data[:max_slices]
    import numpy as np

    return Image(
        vol=np.ascontiguousarray(data),
        affine_lps=vol.affine_lps,
        slope=vol.slope,
        intercept=vol.intercept,
    )


def select_ops(names: Sequence[str] | None) -> dict[str, Any]:
    """The registry's ops by name, all of them when ``names`` is None.

    Raises
    ------
    UsageError
        An unknown name (the message lists the known ones).
    """
    from clisonix_cli.errors import UsageError
    from clisonix_cli.transforms.registry import all_ops

    registry = all_ops()
    if names is None:
        return dict(sorted(registry.items()))
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UsageError(
            f"--ops: unknown op(s) {', '.join(unknown)}; known ops: {', '.join(sorted(registry))}"
        )
    return {n: registry[n] for n in names}


def op_suite(
    img: Any,
    ops: Mapping[str, Any],
    *,
    repeats: int,
    cores: int,
    min_time_s: float = 0.0,
    copy_gbps: Mapping[str, float] | None = None,
    progress: Progress | None = None,
    runtime: dict[str, float] | None = None,
    yardstick: Callable[[str], Callable[[], float]] | None = None,
) -> dict[str, Any]:
    """Time every op's ``apply`` (1 thread, all cores) against its strongest references.

    All ops run on the same :class:`Image` (stored values with their pending slope and
    intercept, as ``load_stack`` returns them) with :func:`.references.bench_params`. The
    references are the candidates of :mod:`clisonix_cli.bench.references` (each checked
    against ``apply`` by a test), timed in the same run: at one thread, and at every core
    when they can use threads; ``speedup_1t``/``speedup_all`` divide the fastest of them at
    that thread count by ``apply``. Bytes moved = input bytes + output bytes. The first call
    of ``apply`` (numba compile or cache load) is kept apart as ``first_call_ms``.
    ``apply`` figures are gated by ``--compare``: timed in interleaved rounds over every op
    (:func:`.harness.time_rounds`, ``min_time_s`` of timed calls each), each sample paired
    with a ``yardstick(level)`` measurement; references are information.
    ``copy_gbps`` (keys ``1t``, ``all``, optionally ``fresh_1t``, ``fresh_all``) gives the
    intensity ops' ``copy_fraction_*``.
    """
    from clisonix_cli.bench.harness import Gated, time_rounds
    from clisonix_cli.bench.references import NOT_COMPARABLE, bench_params, candidates

    section: dict[str, Any] = {}
    voxels = int(img.vol.size)
    calls: list[Gated] = []
    bound: dict[str, dict[str, Any]] = {}
    for name, op in ops.items():
        if progress:
            progress(f"op {name}: first call")
        params = bound[name] = bench_params(op)
        t0 = time.perf_counter()
        out = op.apply(img, **params)
        first_call = time.perf_counter() - t0
        # Bytes read + written, where that is what the op does: an op on the same grid
        # reads every input voxel and writes every output voxel once. For ops that crop,
        # pad or resample, traffic depends on the parameters: no GB/s for them.
        same_grid = out.vol.shape == img.vol.shape
        entry: dict[str, Any] = {
            "family": op.family,
            "version": op.version,
            "params": jsonable(params),
            "shape": list(img.vol.shape),
            "out_shape": list(out.vol.shape),
            "in_dtype": str(img.vol.dtype),
            "out_dtype": str(out.vol.dtype),
            "voxels": voxels,
            "first_call_ms": first_call * 1e3,
        }
        if same_grid:
            entry["bytes_moved"] = int(img.vol.nbytes) + int(out.vol.nbytes)
        del out
        section[name] = entry
        apply = partial(op.apply, img, **params)
        for level, threads in (("1t", 1), ("all", cores)):
            calls.append(
                Gated(
                    f"{name}.{level}",
                    apply,
                    yardstick=yardstick(level) if yardstick else None,
                    context=partial(numba_threads, threads),
                )
            )
    if progress:
        progress(f"ops: apply of {len(ops)} op(s), 1 thread and all cores, in rounds")
    timed = time_rounds(calls, repeats=repeats, min_time_s=min_time_s)
    with numba_threads(cores) as used:
        pass
    for name, entry in section.items():
        if progress:
            progress(f"op {name}: references")
        t_op = time.perf_counter()
        params = bound[name]
        nbytes = entry.get("bytes_moved")
        entry["threads_all"] = used
        for level in ("1t", "all"):
            fig = timing_figures(timed[f"{name}.{level}"], voxels=voxels, nbytes=nbytes)
            entry[f"apply_{level}"] = _gated(fig, level)
        refs = _time_references(
            candidates(name), img, params, repeats=repeats, cores=cores, voxels=voxels
        )
        entry["references"] = refs
        if name in NOT_COMPARABLE:
            entry["reference_note"] = NOT_COMPARABLE[name]
        best_1t = _strongest(refs, "1t")
        best_all = _strongest(refs, "all")
        if best_1t is not None and best_all is not None:
            entry["strongest_1t"], ms_1t = best_1t
            entry["strongest_all"], ms_all = best_all
            entry["speedup_1t"] = ms_1t / entry["apply_1t"]["median_ms"]
            entry["speedup_all"] = ms_all / entry["apply_all"]["median_ms"]
        if entry["family"] == "intensity" and copy_gbps and nbytes is not None:
            entry["copy_fraction_1t"] = entry["apply_1t"]["gbps"] / copy_gbps["1t"]
            entry["copy_fraction_all"] = entry["apply_all"]["gbps"] / copy_gbps["all"]
            # like for like: the op allocates its output, so does a fresh copy
            for key in ("1t", "all"):
                fresh = copy_gbps.get(f"fresh_{key}")
                if fresh:
                    entry[f"fresh_copy_fraction_{key}"] = (
                        entry[f"apply_{key}"]["gbps"] / fresh
                    )
        if runtime is not None:
            runtime[f"ops.{name}.references"] = time.perf_counter() - t_op
    return section


def _gated(fig: dict[str, Any], level: str) -> dict[str, Any]:
    """Mark a timing as clisonix's own, in-process, judged by ``--compare`` at ``level``."""
    return {**fig, "timing": "in-process", "calibrate": level}


def _time_references(
    cands: Sequence[Any],
    img: Any,
    params: Mapping[str, Any],
    *,
    repeats: int,
    cores: int,
    voxels: int,
) -> dict[str, Any]:
    """Time each candidate at one thread, and at every core when it can use threads."""
    out: dict[str, Any] = {}
    for ref in cands:
        if not ref.handles(img, params):
            continue
        fig: dict[str, Any] = {
            "label": ref.label,
            "timing": "in-process",
            "threaded": ref.threaded,
            "atol": ref.atol,
            "rtol": ref.rtol,
        }
        call = partial(ref.func, img, params, 1)
        with one_thread_pools(), numba_threads(1):
            fig["1t"] = timing_figures(
                time_call(call, repeats=repeats, slow_s=SLOW_S), voxels=voxels
            )
        if ref.threaded and cores > 1:
            call_all = partial(ref.func, img, params, cores)
            fig["all"] = timing_figures(
                time_call(call_all, repeats=repeats, slow_s=SLOW_S), voxels=voxels
            )
        fig["threads_all"] = cores if ref.threaded else 1
        out[ref.name] = fig
    return out


def _strongest(refs: Mapping[str, Any], level: str) -> tuple[str, float] | None:
    """(name, median ms) of the fastest reference at ``level`` (``1t`` or ``all``).

    At every core each reference counts with the better of its one-thread and all-cores
    times: a user would run it whichever way is faster.
    """
    best: tuple[str, float] | None = None
    for name, fig in refs.items():
        ms = float(fig["1t"]["median_ms"])
        if level == "all" and "all" in fig:
            ms = min(ms, float(fig["all"]["median_ms"]))
        if best is None or ms < best[1]:
            best = (name, ms)
    return best


def jsonable(value: Any) -> Any:
    """``value`` with every mapping, sequence and unknown object made JSON-ready."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def per_op_image(data: Path | None, slices: int, tmp: Path, say: Progress) -> Any:
    """The volume every op is timed on: synthetic CT (``slices`` slices) or the user's.

    With ``data`` (``--data``), the largest stack of the folder, its first ``slices`` slices.
    """
    from clisonix_cli.dicom.index import scan

    if data is not None:
        stack = wl.largest_stack(scan(data))
        if stack is None:
            raise RuntimeError(f"--data {data} holds no image stack to time the ops on")
        return load_image(data, stack, max_slices=slices)
    say(f"synthesizing the per-op volume ({slices}x512x512 CT)")
    root = tmp / "perop"
    wl.synthesize_ct(root, patients=1, series=1, slices=slices)
    return load_image(root, wl.largest_stack(scan(root)))
