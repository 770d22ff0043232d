"""The per-op suite (``ops``): every op's ``apply`` against its reference, on one volume."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
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
    copy_gbps: Mapping[str, float] | None = None,
    progress: Progress | None = None,
    runtime: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Time every op's ``apply`` (1 thread, all cores) against its ``reference`` (1 thread).

    All ops run on the same :class:`Image` (stored values with their pending slope and
    intercept, as ``load_stack`` returns them) with the op's ``examples[0]`` bound through
    :meth:`Op.bind`. Bytes moved = input bytes + output bytes. The first call of ``apply``
    (numba compile or cache load included) is kept apart as ``first_call_ms``; the
    reference's first call (lazy scipy/scikit-image imports) is an untimed warm-up.
    ``copy_gbps`` (keys ``1t``, ``all`` and optionally ``fresh_1t``, ``fresh_all``) gives
    the intensity ops' ``copy_fraction_*`` (vs a copy into a warm buffer) and
    ``fresh_copy_fraction_*`` (vs a copy into a new array, as the op's own output is).
    ``runtime``, when given, receives the wall seconds spent on each op.
    """
    section: dict[str, Any] = {}
    for name, op in ops.items():
        if progress:
            progress(f"op {name}")
        t_op = time.perf_counter()
        params = op.bind(dict(op.examples[0]) if op.examples else {})
        t0 = time.perf_counter()
        out = op.apply(img, **params)
        first_call = time.perf_counter() - t0
        voxels = int(img.vol.size)
        # Bytes read + written, where that is what the op does: an op on the same grid
        # reads every input voxel and writes every output voxel once. For ops that crop,
        # pad or resample, traffic depends on the parameters: no GB/s for them.
        same_grid = out.vol.shape == img.vol.shape
        nbytes = int(img.vol.nbytes) + int(out.vol.nbytes) if same_grid else None
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
        if nbytes is not None:
            entry["bytes_moved"] = nbytes
        del out
        apply = partial(op.apply, img, **params)
        with numba_threads(1):
            t1 = time_call(apply, repeats=repeats, warmup=0)
        with numba_threads(cores) as used:
            tn = time_call(apply, repeats=repeats)  # warm-up: wakes the thread pool
        entry["threads_all"] = used
        with one_thread_pools(), numba_threads(1):
            tr = time_call(
                partial(op.reference, img, **params), repeats=repeats, slow_s=SLOW_S
            )
        entry["apply_1t"] = timing_figures(t1, voxels=voxels, nbytes=nbytes)
        entry["apply_all"] = timing_figures(tn, voxels=voxels, nbytes=nbytes)
        entry["reference"] = timing_figures(tr, voxels=voxels, nbytes=nbytes)
        entry["speedup_1t"] = tr.median / t1.median
        entry["speedup_all"] = tr.median / tn.median
        if op.family == "intensity" and copy_gbps and nbytes is not None:
            entry["copy_fraction_1t"] = entry["apply_1t"]["gbps"] / copy_gbps["1t"]
            entry["copy_fraction_all"] = entry["apply_all"]["gbps"] / copy_gbps["all"]
            # like for like: the op allocates its output, so does a fresh copy
            for key in ("1t", "all"):
                fresh = copy_gbps.get(f"fresh_{key}")
                if fresh:
                    entry[f"fresh_copy_fraction_{key}"] = (
                        entry[f"apply_{key}"]["gbps"] / fresh
                    )
        section[name] = entry
        if runtime is not None:
            runtime[f"ops.{name}"] = time.perf_counter() - t_op
    return section


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
