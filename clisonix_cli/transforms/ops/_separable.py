"""Separable symmetric 1-D filters along (S, R, C) with ``mode="nearest"`` edges.

A filter is given by its half ``w[0..k]`` (``w[0]`` the centre tap, ``w[j]`` the weight of
the voxels ``j`` before and after), applied as ``w[0] * v[i] + sum_j w[j] * (v[i - j] +
v[i + j])`` with indices clamped to the volume (scipy's ``mode="nearest"``), in float32.

Two kernels: the column and row passes of one slice are fused (the slice stays in cache),
and the slice pass works on blocks of rows so the ``2k + 1`` slices it reads stay in the
L2 cache while it slides along the volume. Each output voxel is computed by the same
sequence of operations whatever the thread count.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import kernel, prange

#: Rows per block of the slice pass (2k + 1 slices x 8 rows x C columns stay in L2).
ROW_BLOCK = 8


@kernel(parallel=True)
def _smooth_rows_cols(
    src: np.ndarray, wr: np.ndarray, wc: np.ndarray, out: np.ndarray
) -> None:
    """float32 (S, R, C) -> (S, R, C): filter ``wc`` along columns, then ``wr`` along rows."""
    n_s, n_r, n_c = src.shape
    kc = wc.shape[0] - 1
    kr = wr.shape[0] - 1
    for s in prange(n_s):
        # 1-D views and a private accumulator row let the compiler vectorise the tap loops
        line = np.empty(n_c + 2 * kc, dtype=np.float32)
        acc = np.empty(n_c, dtype=np.float32)
        tmp = np.empty((n_r, n_c), dtype=np.float32)
        for r in range(n_r):
            row = src[s, r]
            for c in range(kc):
                line[c] = row[0]
                line[kc + n_c + c] = row[n_c - 1]
            for c in range(n_c):
                line[kc + c] = row[c]
            w0 = wc[0]
            for c in range(n_c):
                acc[c] = w0 * line[kc + c]
            for j in range(1, kc + 1):
                w = wc[j]
                a = line[kc - j : kc - j + n_c]
                b = line[kc + j : kc + j + n_c]
                for c in range(n_c):
                    acc[c] += w * (a[c] + b[c])
            t = tmp[r]
            for c in range(n_c):
                t[c] = acc[c]
        for r in range(n_r):
            w0 = wr[0]
            t = tmp[r]
            for c in range(n_c):
                acc[c] = w0 * t[c]
            for j in range(1, kr + 1):
                w = wr[j]
                a = tmp[max(r - j, 0)]
                b = tmp[min(r + j, n_r - 1)]
                for c in range(n_c):
                    acc[c] += w * (a[c] + b[c])
            o = out[s, r]
            for c in range(n_c):
                o[c] = acc[c]


@kernel(parallel=True)
def _smooth_slices(src: np.ndarray, ws: np.ndarray, out: np.ndarray) -> None:
    """float32 (S, R, C) -> (S, R, C): filter ``ws`` along slices, blocks of rows in parallel."""
    n_s, n_r, n_c = src.shape
    ks = ws.shape[0] - 1
    n_blocks = (n_r + ROW_BLOCK - 1) // ROW_BLOCK
    for blk in prange(n_blocks):
        acc = np.empty(n_c, dtype=np.float32)
        r0 = blk * ROW_BLOCK
        r1 = min(r0 + ROW_BLOCK, n_r)
        for s in range(n_s):
            for r in range(r0, r1):
                w0 = ws[0]
                m = src[s, r]
                for c in range(n_c):
                    acc[c] = w0 * m[c]
                for j in range(1, ks + 1):
                    w = ws[j]
                    a = src[max(s - j, 0), r]
                    b = src[min(s + j, n_s - 1), r]
                    for c in range(n_c):
                        acc[c] += w * (a[c] + b[c])
                o = out[s, r]
                for c in range(n_c):
                    o[c] = acc[c]


def gaussian_half_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Half of scipy's Gaussian kernel (``w[0]`` centre), float32; ``[1.0]`` for sigma 0.

    Same construction as ``scipy.ndimage.gaussian_filter1d``: radius
    ``int(truncate * sigma + 0.5)``, ``exp(-x**2 / (2 sigma**2))`` normalised to sum 1 in
    float64, then rounded to float32. Sigmas up to 1e-15 mean "no smoothing", as in scipy.
    """
    if sigma <= 1e-15:
        return np.ones(1, dtype=np.float32)
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi = phi / phi.sum()
    half: np.ndarray = phi[radius:].astype(np.float32)
    return half


def smooth(
    vol: np.ndarray, halves: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Filter a float32 C-contiguous (S, R, C) volume with a half-kernel per axis.

    Returns a new float32 array; an axis whose half-kernel is ``[1.0]`` is left as is.
    """
    ws, wr, wc = halves
    out = np.empty(vol.shape, dtype=np.float32)
    if vol.size == 0:
        return out
    if wr.shape[0] == 1 and wc.shape[0] == 1:
        mid = vol
    else:
        mid = np.empty(vol.shape, dtype=np.float32)
        _smooth_rows_cols(vol, wr, wc, mid)
    if ws.shape[0] == 1:
        if mid is vol:
            out[...] = vol
            return out
        return mid
    _smooth_slices(mid, ws, out)
    return out
