"""Speed and memory figures of the transform core (a script, not a test).

Run: ``.venv/bin/python benchmarks/bench_core.py [--slices 200] [--repeats 5]``.
Every figure is the best of ``--repeats`` runs (the machine is shared: the minimum is the
least disturbed run), after a warm-up call that compiles.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from clisonix_cli import runtime
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.pipeline import Pipeline
from clisonix_cli.transforms.registry import all_ops

AFFINE = np.diag([1.0, 0.7, 0.7, 1.0])


def best(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_ratio(fn: Callable[[], Any], volume_bytes: int) -> float:
    fn()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / volume_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    runtime.apply_process_policy()  # before numba's threading layer starts, as the CLI
    import numba
    from threadpoolctl import threadpool_limits

    ops = all_ops()
    rng = np.random.default_rng(0)
    shape = (args.slices, 512, 512)
    f32 = rng.uniform(-1024, 2000, size=shape).astype(np.float32)
    i16 = f32.astype(np.int16)
    ct = Image(i16, AFFINE, slope=1.0, intercept=-1024.0)
    real = Image(f32, AFFINE)
    nbytes = f32.nbytes
    out: dict[str, Any] = {"shape": shape, "threads": numba.get_num_threads()}

    dst = np.empty_like(f32)
    t_copy = best(lambda: np.copyto(dst, f32), args.repeats)
    out["memcpy_GBps"] = 2 * nbytes / t_copy / 1e9

    def op(name: str, img: Image, **p: Any) -> Callable[[], Image]:
        o = ops[name]
        bound = o.bind(p)
        return lambda: o.apply(img, **bound)

    t_clip = best(op("clip", real, lo=-500.0, hi=1500.0), args.repeats)
    t_window = best(op("window", real, preset="brain"), args.repeats)
    t_alloc_copy = best(lambda: f32.copy(), args.repeats)
    # an op allocates its output (first-touch page faults): compare with np.copy, which
    # does too; the kernel alone writes into a preallocated array like np.copyto
    out["pointwise_op_f32_window_vs_np_copy"] = t_alloc_copy / t_window
    out["pointwise_op_f32_clip_vs_np_copy"] = t_alloc_copy / t_clip
    from clisonix_cli.transforms import fuse

    flat, dflat = f32.reshape(-1), dst.reshape(-1)
    c = fuse.Clamp(1.0 / 79.0, -0.0, 0.0, 1.0)
    kern = lambda: fuse._map_float(flat, c.a, c.b, c.lo, c.hi, dflat)  # noqa: E731
    out["pointwise_kernel_vs_memcpy"] = t_copy / best(kern, args.repeats)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    t_copy1 = best(lambda: np.copyto(dst, f32), args.repeats)
    out["pointwise_kernel_vs_memcpy_1thread"] = t_copy1 / best(kern, args.repeats)
    numba.set_num_threads(before)

    t_rescale_ct = best(op("rescale", ct), args.repeats)
    t_window_ct = best(op("window", ct, preset="brain"), args.repeats)
    fused = Pipeline.from_cli(["rescale", "window:preset=brain", "cast:dtype=uint8"])
    t_fused_ct = best(lambda: fused.run(ct), args.repeats)
    t_fused_f32 = best(lambda: fused.run(real), args.repeats)
    out["fused_int16_vs_rescale"] = t_fused_ct / t_rescale_ct
    out["fused_int16_vs_window"] = t_fused_ct / t_window_ct
    out["fused_f32_vs_window"] = t_fused_f32 / t_window
    out["fused_int16_s"] = t_fused_ct
    numba.set_num_threads(1)
    t1_rescale = best(op("rescale", ct), args.repeats)
    t1_window = best(op("window", ct, preset="brain"), args.repeats)
    t1_fused = best(lambda: fused.run(ct), args.repeats)
    numba.set_num_threads(before)
    out["fused_int16_vs_rescale_1thread"] = t1_fused / t1_rescale
    out["fused_int16_vs_window_1thread"] = t1_fused / t1_window
    out["peak_fused_int16_x_f32vol"] = peak_ratio(lambda: fused.run(ct), nbytes)
    norm = Pipeline.from_cli(
        ["rescale", "normalize:method=percentile,mask=nonzero", "cast:dtype=int16"]
    )
    out["peak_normalize_percentile_x_f32vol"] = peak_ratio(
        lambda: norm.run(real), nbytes
    )

    # svd: rank 32 of 16 slices 512x512 against numpy's full SVD (float32, LAPACK gesdd)
    from clisonix_cli.transforms.ops.svd import svd_factors

    xs = np.ascontiguousarray(f32[:16])
    smooth = np.cumsum(np.cumsum(xs, axis=1), axis=2) / 512.0  # decaying spectrum
    xs = (smooth + xs).astype(np.float32)

    def numpy_full() -> None:
        for s in range(xs.shape[0]):
            np.linalg.svd(xs[s], full_matrices=False)

    t_np_svd = best(numpy_full, max(1, args.repeats // 2))
    t_svd = best(lambda: svd_factors(xs, 32), args.repeats)
    res = svd_factors(xs, 32)
    worst = 0.0
    for s in range(xs.shape[0]):
        sv = np.linalg.svd(xs[s].astype(np.float64), compute_uv=False)
        opt = float(np.sqrt(np.sum(sv[32:] ** 2)))
        err = float(np.linalg.norm(xs[s].astype(np.float64) - res.approx[s]))
        worst = max(worst, err / opt)
    out["svd_speedup_vs_numpy_full"] = t_np_svd / t_svd
    out["svd_worst_error_vs_optimal"] = worst
    out["svd_s"] = t_svd

    # matrix: (S*R, C) @ (C, K) against numpy matmul on the same float32 data
    from clisonix_cli.transforms.ops.matrix import contract

    w = rng.normal(size=(512, 256)).astype(np.float32)
    xm = np.ascontiguousarray(f32[:50])
    t_np_mm = best(lambda: np.matmul(xm, w), args.repeats)
    t_mm = best(lambda: contract(xm, w), args.repeats)
    out["matrix_vs_numpy_matmul"] = t_mm / t_np_mm

    # every op against its reference, 1 thread (numba and BLAS)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    small_ct = Image(i16[:16], AFFINE, slope=1.0, intercept=-1024.0)
    ratios = {}
    with threadpool_limits(limits=1):
        for name in (
            "rescale",
            "window",
            "clip",
            "normalize",
            "cast",
            "threshold",
            "matrix",
            "svd",
        ):
            o = ops[name]
            example = {"svd": {"k": 32}}.get(name, o.examples[0])
            p = o.bind(example)
            t_apply = best(lambda o=o, p=p: o.apply(small_ct, **p), 3)
            t_ref = best(lambda o=o, p=p: o.reference(small_ct, **p), 1)
            ratios[name] = t_ref / t_apply
    numba.set_num_threads(before)
    out["speedup_vs_reference_1thread"] = ratios
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
