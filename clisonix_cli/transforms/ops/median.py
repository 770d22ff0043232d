"""median: median filter over a cubic (or per-slice square) window, edges repeated.

The window is ``size`` voxels (odd) along each axis, 3-D by default; with
``per_slice=true`` it is ``1 x size x size`` (slices never mix). Voxels beyond the edge take
the edge value (``mode="nearest"``). The output equals
``scipy.ndimage.median_filter(real, size=..., mode="nearest")`` exactly: a median picks
one of the window's values, so nothing is rounded (tested with many ties). Real values in
(the pending rescale folded in, rounded once to float32), float32 out with slope 1 /
intercept 0; the affine is unchanged. NaN voxels give unspecified results (as with scipy).

Kernels: the real values are first copied into an edge-padded float32 volume (one pass,
the rescale folded in). ``size=3`` has two straight-line kernels: a selection network
finds the median of the 27 (3-D) or 9 (per slice) window values with min/max operations
only, which the compiler vectorises across columns (8 voxels per AVX2 instruction). The
network is "forgetful selection": take ``n // 2 + 2`` values, drop their minimum and
maximum (neither can be the median), add the next value, repeat until one is left (153
compare-exchanges for 27 values, 20 for 9). The code is generated:
``tests/transforms/test_median.py`` regenerates it, checks it is current, and checks the
networks on every 0/1 input (9 values) and on random inputs with ties (27 values). Other
sizes gather the window and run the quickselect the percentiles use (``fuse.select_kth``)
per voxel (correct, not tuned).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clisonix_cli.transforms._declare import Op, Param, kernel, prange
from clisonix_cli.transforms.fuse import select_kth
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._real import real_f32_reference, with_real

#: Largest window side accepted (a 15^3 window is 3375 values per voxel).
MAX_SIZE = 15


@kernel(parallel=True)
def _pad_real(
    vol: np.ndarray,
    slope: float,
    intercept: float,
    ps: int,
    pr: int,
    pc: int,
    out: np.ndarray,
) -> None:
    """Any dtype (S, R, C) -> float32 padded by (ps, pr, pc) per side, edges repeated, folded."""
    n_s, n_r, n_c = vol.shape
    for s in prange(out.shape[0]):
        si = min(max(s - ps, 0), n_s - 1)
        for r in range(out.shape[1]):
            ri = min(max(r - pr, 0), n_r - 1)
            for c in range(out.shape[2]):
                ci = min(max(c - pc, 0), n_c - 1)
                out[s, r, c] = vol[si, ri, ci] * slope + intercept


@kernel(parallel=True)
def _median_3x3x3(p: np.ndarray, out: np.ndarray) -> None:
    """float32 padded (S+2, R+2, C+2) -> (S, R, C): median of each 3x3x3 window."""
    for s in prange(out.shape[0]):
        for r in range(out.shape[1]):
            for c in range(out.shape[2]):
                # generated: forgetful selection, 27 values, 153 compare-exchanges
                v0 = p[s, r, c]
                v1 = p[s, r, c + 1]
                v2 = p[s, r, c + 2]
                v3 = p[s, r + 1, c]
                v4 = p[s, r + 1, c + 1]
                v5 = p[s, r + 1, c + 2]
                v6 = p[s, r + 2, c]
                v7 = p[s, r + 2, c + 1]
                v8 = p[s, r + 2, c + 2]
                v9 = p[s + 1, r, c]
                v10 = p[s + 1, r, c + 1]
                v11 = p[s + 1, r, c + 2]
                v12 = p[s + 1, r + 1, c]
                v13 = p[s + 1, r + 1, c + 1]
                v14 = p[s + 1, r + 1, c + 2]
                v15 = p[s + 1, r + 2, c]
                v16 = p[s + 1, r + 2, c + 1]
                v17 = p[s + 1, r + 2, c + 2]
                v18 = p[s + 2, r, c]
                v19 = p[s + 2, r, c + 1]
                v20 = p[s + 2, r, c + 2]
                v21 = p[s + 2, r + 1, c]
                v22 = p[s + 2, r + 1, c + 1]
                v23 = p[s + 2, r + 1, c + 2]
                v24 = p[s + 2, r + 2, c]
                v25 = p[s + 2, r + 2, c + 1]
                v26 = p[s + 2, r + 2, c + 2]
                v0, v1 = min(v0, v1), max(v0, v1)
                v2, v3 = min(v2, v3), max(v2, v3)
                v4, v5 = min(v4, v5), max(v4, v5)
                v6, v7 = min(v6, v7), max(v6, v7)
                v8, v9 = min(v8, v9), max(v8, v9)
                v10, v11 = min(v10, v11), max(v10, v11)
                v12, v13 = min(v12, v13), max(v12, v13)
                v0, v2 = min(v0, v2), max(v0, v2)
                v0, v4 = min(v0, v4), max(v0, v4)
                v0, v6 = min(v0, v6), max(v0, v6)
                v0, v8 = min(v0, v8), max(v0, v8)
                v0, v10 = min(v0, v10), max(v0, v10)
                v0, v12 = min(v0, v12), max(v0, v12)
                v0, v14 = min(v0, v14), max(v0, v14)
                v1, v14 = min(v1, v14), max(v1, v14)
                v3, v14 = min(v3, v14), max(v3, v14)
                v5, v14 = min(v5, v14), max(v5, v14)
                v7, v14 = min(v7, v14), max(v7, v14)
                v9, v14 = min(v9, v14), max(v9, v14)
                v11, v14 = min(v11, v14), max(v11, v14)
                v13, v14 = min(v13, v14), max(v13, v14)
                v1, v2 = min(v1, v2), max(v1, v2)
                v3, v4 = min(v3, v4), max(v3, v4)
                v5, v6 = min(v5, v6), max(v5, v6)
                v7, v8 = min(v7, v8), max(v7, v8)
                v9, v10 = min(v9, v10), max(v9, v10)
                v11, v12 = min(v11, v12), max(v11, v12)
                v13, v15 = min(v13, v15), max(v13, v15)
                v1, v3 = min(v1, v3), max(v1, v3)
                v1, v5 = min(v1, v5), max(v1, v5)
                v1, v7 = min(v1, v7), max(v1, v7)
                v1, v9 = min(v1, v9), max(v1, v9)
                v1, v11 = min(v1, v11), max(v1, v11)
                v1, v13 = min(v1, v13), max(v1, v13)
                v2, v15 = min(v2, v15), max(v2, v15)
                v4, v15 = min(v4, v15), max(v4, v15)
                v6, v15 = min(v6, v15), max(v6, v15)
                v8, v15 = min(v8, v15), max(v8, v15)
                v10, v15 = min(v10, v15), max(v10, v15)
                v12, v15 = min(v12, v15), max(v12, v15)
                v2, v3 = min(v2, v3), max(v2, v3)
                v4, v5 = min(v4, v5), max(v4, v5)
                v6, v7 = min(v6, v7), max(v6, v7)
                v8, v9 = min(v8, v9), max(v8, v9)
                v10, v11 = min(v10, v11), max(v10, v11)
                v12, v13 = min(v12, v13), max(v12, v13)
                v2, v4 = min(v2, v4), max(v2, v4)
                v2, v6 = min(v2, v6), max(v2, v6)
                v2, v8 = min(v2, v8), max(v2, v8)
                v2, v10 = min(v2, v10), max(v2, v10)
                v2, v12 = min(v2, v12), max(v2, v12)
                v2, v16 = min(v2, v16), max(v2, v16)
                v3, v16 = min(v3, v16), max(v3, v16)
                v5, v16 = min(v5, v16), max(v5, v16)
                v7, v16 = min(v7, v16), max(v7, v16)
                v9, v16 = min(v9, v16), max(v9, v16)
                v11, v16 = min(v11, v16), max(v11, v16)
                v13, v16 = min(v13, v16), max(v13, v16)
                v3, v4 = min(v3, v4), max(v3, v4)
                v5, v6 = min(v5, v6), max(v5, v6)
                v7, v8 = min(v7, v8), max(v7, v8)
                v9, v10 = min(v9, v10), max(v9, v10)
                v11, v12 = min(v11, v12), max(v11, v12)
                v13, v17 = min(v13, v17), max(v13, v17)
                v3, v5 = min(v3, v5), max(v3, v5)
                v3, v7 = min(v3, v7), max(v3, v7)
                v3, v9 = min(v3, v9), max(v3, v9)
                v3, v11 = min(v3, v11), max(v3, v11)
                v3, v13 = min(v3, v13), max(v3, v13)
                v4, v17 = min(v4, v17), max(v4, v17)
                v6, v17 = min(v6, v17), max(v6, v17)
                v8, v17 = min(v8, v17), max(v8, v17)
                v10, v17 = min(v10, v17), max(v10, v17)
                v12, v17 = min(v12, v17), max(v12, v17)
                v4, v5 = min(v4, v5), max(v4, v5)
                v6, v7 = min(v6, v7), max(v6, v7)
                v8, v9 = min(v8, v9), max(v8, v9)
                v10, v11 = min(v10, v11), max(v10, v11)
                v12, v13 = min(v12, v13), max(v12, v13)
                v4, v6 = min(v4, v6), max(v4, v6)
                v4, v8 = min(v4, v8), max(v4, v8)
                v4, v10 = min(v4, v10), max(v4, v10)
                v4, v12 = min(v4, v12), max(v4, v12)
                v4, v18 = min(v4, v18), max(v4, v18)
                v5, v18 = min(v5, v18), max(v5, v18)
                v7, v18 = min(v7, v18), max(v7, v18)
                v9, v18 = min(v9, v18), max(v9, v18)
                v11, v18 = min(v11, v18), max(v11, v18)
                v13, v18 = min(v13, v18), max(v13, v18)
                v5, v6 = min(v5, v6), max(v5, v6)
                v7, v8 = min(v7, v8), max(v7, v8)
                v9, v10 = min(v9, v10), max(v9, v10)
                v11, v12 = min(v11, v12), max(v11, v12)
                v13, v19 = min(v13, v19), max(v13, v19)
                v5, v7 = min(v5, v7), max(v5, v7)
                v5, v9 = min(v5, v9), max(v5, v9)
                v5, v11 = min(v5, v11), max(v5, v11)
                v5, v13 = min(v5, v13), max(v5, v13)
                v6, v19 = min(v6, v19), max(v6, v19)
                v8, v19 = min(v8, v19), max(v8, v19)
                v10, v19 = min(v10, v19), max(v10, v19)
                v12, v19 = min(v12, v19), max(v12, v19)
                v6, v7 = min(v6, v7), max(v6, v7)
                v8, v9 = min(v8, v9), max(v8, v9)
                v10, v11 = min(v10, v11), max(v10, v11)
                v12, v13 = min(v12, v13), max(v12, v13)
                v6, v8 = min(v6, v8), max(v6, v8)
                v6, v10 = min(v6, v10), max(v6, v10)
                v6, v12 = min(v6, v12), max(v6, v12)
                v6, v20 = min(v6, v20), max(v6, v20)
                v7, v20 = min(v7, v20), max(v7, v20)
                v9, v20 = min(v9, v20), max(v9, v20)
                v11, v20 = min(v11, v20), max(v11, v20)
                v13, v20 = min(v13, v20), max(v13, v20)
                v7, v8 = min(v7, v8), max(v7, v8)
                v9, v10 = min(v9, v10), max(v9, v10)
                v11, v12 = min(v11, v12), max(v11, v12)
                v13, v21 = min(v13, v21), max(v13, v21)
                v7, v9 = min(v7, v9), max(v7, v9)
                v7, v11 = min(v7, v11), max(v7, v11)
                v7, v13 = min(v7, v13), max(v7, v13)
                v8, v21 = min(v8, v21), max(v8, v21)
                v10, v21 = min(v10, v21), max(v10, v21)
                v12, v21 = min(v12, v21), max(v12, v21)
                v8, v9 = min(v8, v9), max(v8, v9)
                v10, v11 = min(v10, v11), max(v10, v11)
                v12, v13 = min(v12, v13), max(v12, v13)
                v8, v10 = min(v8, v10), max(v8, v10)
                v8, v12 = min(v8, v12), max(v8, v12)
                v8, v22 = min(v8, v22), max(v8, v22)
                v9, v22 = min(v9, v22), max(v9, v22)
                v11, v22 = min(v11, v22), max(v11, v22)
                v13, v22 = min(v13, v22), max(v13, v22)
                v9, v10 = min(v9, v10), max(v9, v10)
                v11, v12 = min(v11, v12), max(v11, v12)
                v13, v23 = min(v13, v23), max(v13, v23)
                v9, v11 = min(v9, v11), max(v9, v11)
                v9, v13 = min(v9, v13), max(v9, v13)
                v10, v23 = min(v10, v23), max(v10, v23)
                v12, v23 = min(v12, v23), max(v12, v23)
                v10, v11 = min(v10, v11), max(v10, v11)
                v12, v13 = min(v12, v13), max(v12, v13)
                v10, v12 = min(v10, v12), max(v10, v12)
                v10, v24 = min(v10, v24), max(v10, v24)
                v11, v24 = min(v11, v24), max(v11, v24)
                v13, v24 = min(v13, v24), max(v13, v24)
                v11, v12 = min(v11, v12), max(v11, v12)
                v13, v25 = min(v13, v25), max(v13, v25)
                v11, v13 = min(v11, v13), max(v11, v13)
                v12, v25 = min(v12, v25), max(v12, v25)
                v12, v13 = min(v12, v13), max(v12, v13)
                v12, v26 = min(v12, v26), max(v12, v26)
                v13, v26 = min(v13, v26), max(v13, v26)
                out[s, r, c] = v13


@kernel(parallel=True)
def _median_1x3x3(p: np.ndarray, out: np.ndarray) -> None:
    """float32 padded (S, R+2, C+2) -> (S, R, C): median of each in-slice 3x3 window."""
    for s in prange(out.shape[0]):
        for r in range(out.shape[1]):
            for c in range(out.shape[2]):
                # generated: forgetful selection, 9 values, 20 compare-exchanges
                v0 = p[s, r, c]
                v1 = p[s, r, c + 1]
                v2 = p[s, r, c + 2]
                v3 = p[s, r + 1, c]
                v4 = p[s, r + 1, c + 1]
                v5 = p[s, r + 1, c + 2]
                v6 = p[s, r + 2, c]
                v7 = p[s, r + 2, c + 1]
                v8 = p[s, r + 2, c + 2]
                v0, v1 = min(v0, v1), max(v0, v1)
                v2, v3 = min(v2, v3), max(v2, v3)
                v4, v5 = min(v4, v5), max(v4, v5)
                v0, v2 = min(v0, v2), max(v0, v2)
                v0, v4 = min(v0, v4), max(v0, v4)
                v1, v5 = min(v1, v5), max(v1, v5)
                v3, v5 = min(v3, v5), max(v3, v5)
                v1, v2 = min(v1, v2), max(v1, v2)
                v3, v4 = min(v3, v4), max(v3, v4)
                v1, v3 = min(v1, v3), max(v1, v3)
                v1, v6 = min(v1, v6), max(v1, v6)
                v2, v6 = min(v2, v6), max(v2, v6)
                v4, v6 = min(v4, v6), max(v4, v6)
                v2, v3 = min(v2, v3), max(v2, v3)
                v4, v7 = min(v4, v7), max(v4, v7)
                v2, v4 = min(v2, v4), max(v2, v4)
                v3, v7 = min(v3, v7), max(v3, v7)
                v3, v4 = min(v3, v4), max(v3, v4)
                v3, v8 = min(v3, v8), max(v3, v8)
                v4, v8 = min(v4, v8), max(v4, v8)
                out[s, r, c] = v4


@kernel(parallel=True)
def _median_window(p: np.ndarray, ks: int, kr: int, kc: int, out: np.ndarray) -> None:
    """float32 padded -> (S, R, C): median of each ks x kr x kc window (any odd sizes)."""
    n = ks * kr * kc
    for s in prange(out.shape[0]):
        buf = np.empty(n, dtype=np.float32)
        for r in range(out.shape[1]):
            for c in range(out.shape[2]):
                i = 0
                for a in range(ks):
                    for b in range(kr):
                        for d in range(kc):
                            buf[i] = p[s + a, r + b, c + d]
                            i += 1
                out[s, r, c] = select_kth(buf, n // 2)


def _odd_size(value: Any) -> str | None:
    if value % 2 == 1 and 1 <= value <= MAX_SIZE:
        return None
    return f"must be an odd number of voxels from 1 to {MAX_SIZE}"


def _window(size: int, per_slice: bool) -> tuple[int, int, int]:
    return (1 if per_slice else size, size, size)


def apply(img: Image, *, size: int = 3, per_slice: bool = False) -> Image:
    """Median-filter ``img`` with a ``size`` window (see the module docstring)."""
    ks, kr, kc = _window(size, per_slice)
    vol = img.vol
    n_s, n_r, n_c = vol.shape
    out = np.empty(vol.shape, dtype=np.float32)
    if out.size == 0:
        return with_real(img, out)
    if not vol.dtype.isnative:
        vol = vol.astype(vol.dtype.newbyteorder("="))
    padded = np.empty((n_s + ks - 1, n_r + kr - 1, n_c + kc - 1), dtype=np.float32)
    _pad_real(
        vol, float(img.slope), float(img.intercept), ks // 2, kr // 2, kc // 2, padded
    )
    if (ks, kr, kc) == (3, 3, 3):
        _median_3x3x3(padded, out)
    elif (ks, kr, kc) == (1, 3, 3):
        _median_1x3x3(padded, out)
    elif ks * kr * kc == 1:
        out[...] = padded
    else:
        _median_window(padded, ks, kr, kc, out)
    return with_real(img, out)


def reference(img: Image, *, size: int = 3, per_slice: bool = False) -> Image:
    """scipy reference: ``ndimage.median_filter(real, size, mode="nearest")``."""
    from scipy import ndimage

    real = real_f32_reference(img)
    out = ndimage.median_filter(real, size=_window(size, per_slice), mode="nearest")
    return with_real(img, out)


# Exact: both sides select one of the same float32 values (atol 0).
OP = Op(
    name="median",
    version=1,
    family="filter",
    summary="Median filter, size^3 voxels (or size^2 per slice), edges repeated; exact.",
    params=(
        Param(
            "size",
            int,
            "Window side in voxels (odd, 1 to 15).",
            default=3,
            unit="voxels",
            check=_odd_size,
        ),
        Param(
            "per_slice",
            bool,
            "Filter each slice alone with a size x size window (2-D).",
            default=False,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    examples=(
        {"size": 3},
        {"size": 3, "per_slice": True},
        {"size": 5},
        {"size": 5, "per_slice": True},
    ),
)
