"""clahe: contrast-limited adaptive histogram equalisation, slice by slice, onto [0, 1].

The real values (the pending rescale folded in and rounded to float32, as for every
filter) are first normalised to [0, 1] with the **volume's** minimum and maximum
(``(v - min) / (max - min)`` in float64, rounded to float32; a constant volume gives
zeros); NaN or infinite voxels fail the task (CLX-E130). Each slice is then equalised
exactly as ``skimage.exposure.equalize_adapthist(slice, kernel_size, clip_limit, nbins)``
does it:

1. ``img_as_uint`` (``rint(x * 65535)`` in float32), then the slice's own range stretched
   onto 0..16383 (14-bit, ``np.round``), and ``v // (1 + 16384 // nbins)`` gives the bin;
2. contextual regions of ``kernel_size`` pixels (``0``, the default, means
   ``max(rows // 8, 1) x max(cols // 8, 1)``, skimage's default; an integer gives a square)
   tile the slice from pixel (0, 0), pixels past the edge mirrored
   (``np.pad(mode="reflect")``); each region's histogram is clipped at
   ``max(int(clip_limit * region_pixels), 1)`` (``clip_limit`` 0: no clipping, plain AHE)
   and the excess redistributed with skimage's ``clip_histogram`` rules step for step, then
   turned into a mapping ``min(int(cumsum * 16383 / region_pixels), 16383)``;
3. each pixel's mapped value is the bilinear blend of the mappings of the four nearest
   regions (regions centred half a region off the pixel grid, edge regions repeated),
   summed in float32 in skimage's order and truncated to an integer;
4. the slice's result is stretched onto [0, 1] with its own minimum and maximum (float32).

Output float32 in [0, 1] per slice (slope 1 / intercept 0); the affine is unchanged.
Because steps 1 and 4 stretch each slice by its own range (skimage's behaviour), the output
of a slice depends on the other slices only through the 16-bit quantisation of step 1.

Every step uses the same integer and floating-point operations, in the same order, as
scikit-image 0.26 (float32 where it uses float32, float64 where it uses float64, the same
truncations and rounding), so the result is **identical** to it (the tests assert
equality); the declared tolerance leaves one float32 ulp on [0, 1] for a future skimage
that reorders a sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clisonix_cli.errors import TransformFailedError
from clisonix_cli.transforms._declare import Op, Param, between, kernel, prange
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._real import real_f32, real_f32_reference, with_real

#: Grey levels of the internal image (skimage's ``NR_OF_GRAY``).
NR_OF_GRAY = 2**14


@kernel(parallel=True)
def _slice_ranges(vol: np.ndarray, out: np.ndarray) -> None:
    """float32 (S, R, C) -> out (S, 3): per slice min, max and count of non-finite values."""
    for s in prange(vol.shape[0]):
        lo = np.inf
        hi = -np.inf
        bad = 0
        for r in range(vol.shape[1]):
            for c in range(vol.shape[2]):
                x = vol[s, r, c]
                if not np.isfinite(x):
                    bad += 1
                elif x < lo:
                    lo = x
                if x > hi:
                    hi = x
        out[s, 0] = lo
        out[s, 1] = hi
        out[s, 2] = bad


@kernel()
def _clip_histogram(hist: np.ndarray, clim: int) -> None:
    """skimage ``exposure._adapthist.clip_histogram``, step for step, in place."""
    nbins = hist.shape[0]
    n_excess = 0
    for b in range(nbins):
        if hist[b] > clim:
            n_excess += hist[b] - clim
            hist[b] = clim
    bin_incr = n_excess // nbins
    upper = clim - bin_incr
    for b in range(nbins):
        if hist[b] < upper:
            n_excess -= bin_incr
            hist[b] += bin_incr
    for b in range(nbins):
        if hist[b] >= upper and hist[b] < clim:
            n_excess += hist[b] - clim
            hist[b] = clim
    under = np.empty(nbins, dtype=np.bool_)
    while n_excess > 0:
        prev = n_excess
        for index in range(nbins):
            n_under = 0
            for b in range(nbins):
                under[b] = hist[b] < clim
                if under[b]:
                    n_under += 1
            step = max(1, n_under // n_excess)
            for b in range(index, nbins, step):
                if under[b]:
                    hist[b] += 1
                    n_excess -= 1
            if n_excess <= 0:
                break
        if prev == n_excess:
            break


@kernel(parallel=True)
def _clahe(
    vol: np.ndarray,
    lo: float,
    hi: float,
    tables: tuple[np.ndarray, ...],
    nh_r: int,
    nh_c: int,
    clim: int,
    n_px: int,
    nbins: int,
    out: np.ndarray,
) -> None:
    """float32 real (S, R, C) -> float32 (S, R, C): CLAHE per slice (module docstring).

    ``tables`` (from :func:`_tables`): the mirrored row/column index of every region
    pixel, the region column of every region pixel column, and per output row/column the
    two neighbouring regions and the interpolation weights.
    """
    refl_r, refl_c, tile_c, r0, r1, rc, ri, c0, c1, cc, ci = tables
    n_s, n_r, n_c = vol.shape
    # a constant volume normalises to zeros: x - lo is 0 for every voxel
    span = hi - lo if hi > lo else 1.0
    kr = refl_r.shape[0] // nh_r
    bin_size = 1 + NR_OF_GRAY // nbins
    scale = (NR_OF_GRAY - 1) / n_px
    for s in prange(n_s):
        # 1. float [0, 1] -> uint16 (img_as_uint: rint in float32) -> 14 bits over the
        # slice's own range (np.round in float64) -> bin; branch-free so it vectorises
        q = np.empty((n_r, n_c), dtype=np.float32)
        for r in range(n_r):
            qr = q[r]
            for c in range(n_c):
                x = np.float64(vol[s, r, c])
                v = np.float32(
                    np.rint(np.float32((x - lo) / span) * np.float32(65535.0))
                )
                qr[c] = min(max(v, np.float32(0.0)), np.float32(65535.0))
        umin = np.float32(65535.0)
        umax = np.float32(0.0)
        for r in range(n_r):
            qr = q[r]
            for c in range(n_c):
                umin = min(umin, qr[c])
                umax = max(umax, qr[c])
        fmin = np.float64(umin)
        den = np.float64(umax) - fmin
        u = np.empty((n_r, n_c), dtype=np.int32)
        for r in range(n_r):
            qr = q[r]
            ur = u[r]
            if den > 0.0:
                for c in range(n_c):
                    y = np.rint(
                        (np.float64(qr[c]) - fmin) / den * (NR_OF_GRAY - 1.0) + 0.0
                    )
                    # floor(y / bin_size) == y // bin_size for these small integers
                    ur[c] = int(np.floor(y / bin_size))
            else:
                for c in range(n_c):
                    y = min(np.float64(qr[c]), NR_OF_GRAY - 1.0)
                    ur[c] = int(np.floor(y / bin_size))
        # 2. clipped, equalised mapping of every contextual region
        maps = np.empty((nh_r, nh_c, nbins), dtype=np.int32)
        hist = np.empty((nh_c, nbins), dtype=np.int64)
        for ti in range(nh_r):
            hist[:, :] = 0
            for a in range(kr):
                ur = u[refl_r[ti * kr + a]]
                for t in range(refl_c.shape[0]):
                    hist[tile_c[t], ur[refl_c[t]]] += 1
            for tj in range(nh_c):
                h = hist[tj]
                _clip_histogram(h, clim)
                total = 0
                m = maps[ti, tj]
                for b in range(nbins):
                    total += h[b]
                    m[b] = int(min(float(total) * scale, NR_OF_GRAY - 1.0))
        # 3. bilinear blend of the four nearest mappings (float32 sum), truncated
        res = np.empty((n_r, n_c), dtype=np.int32)
        cmin = NR_OF_GRAY
        cmax = -1
        for r in range(n_r):
            ur = u[r]
            rr = res[r]
            a0 = r0[r]
            a1 = r1[r]
            w_c = rc[r]
            w_i = ri[r]
            for c in range(n_c):
                g = ur[c]
                b0 = c0[c]
                b1 = c1[c]
                acc = np.float32(0.0)
                acc += np.float32(maps[a0, b0, g] * (ci[c] * w_i))
                acc += np.float32(maps[a0, b1, g] * (cc[c] * w_i))
                acc += np.float32(maps[a1, b0, g] * (ci[c] * w_c))
                acc += np.float32(maps[a1, b1, g] * (cc[c] * w_c))
                level = int(acc)
                rr[c] = level
                cmin = min(cmin, level)
                cmax = max(cmax, level)
        # 4. the slice's result onto [0, 1]
        width = np.float32(cmax - cmin)
        for r in range(n_r):
            rr = res[r]
            for c in range(n_c):
                if cmin != cmax:
                    out[s, r, c] = (np.float32(rr[c]) - np.float32(cmin)) / width
                else:
                    out[s, r, c] = min(np.float32(rr[c]), np.float32(1.0))


def _regions(n: int, k: int) -> int:
    """Regions along an axis of ``n`` pixels (skimage pads ``k // 2`` before, up to whole
    regions, plus ``ceil(k / 2)`` after; there is one region fewer than padded blocks)."""
    return (k // 2 + n + (k - n % k) % k + (k + 1) // 2) // k - 1


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices ``>= 0`` mirrored into [0, n) like ``np.pad(mode="reflect")``."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = index % period
    return np.where(m <= n - 1, m, period - m)


def _axis_tables(n: int, k: int) -> tuple[np.ndarray, ...]:
    """Per axis: mirrored region pixels, their region, and per pixel two regions + weights.

    Pixel ``p`` lies in padded block ``(p + k // 2) // k`` at offset ``(p + k // 2) % k``;
    it blends the mappings of regions ``block - 1`` and ``block`` (clamped: skimage pads
    the mappings with their edge values) with weights ``1 - offset / k`` and ``offset / k``
    (float64, as skimage's ``np.arange(k) / k``).
    """
    nh = _regions(n, k)
    refl = _reflect(np.arange(nh * k), n).astype(np.intp)
    tile = (np.arange(nh * k) // k).astype(np.intp)
    padded = np.arange(n) + k // 2
    block = padded // k
    frac = (padded % k) / k
    first = np.clip(block - 1, 0, nh - 1).astype(np.intp)
    second = np.clip(block, 0, nh - 1).astype(np.intp)
    return refl, tile, first, second, frac, 1.0 - frac


def _tables(
    shape: tuple[int, ...], kr: int, kc: int
) -> tuple[tuple[np.ndarray, ...], int, int]:
    """Index and weight tables of :func:`_clahe` for slices of ``shape[1:]``."""
    refl_r, _, r0, r1, rc, ri = _axis_tables(shape[1], kr)
    refl_c, tile_c, c0, c1, cc, ci = _axis_tables(shape[2], kc)
    tables = (refl_r, refl_c, tile_c, r0, r1, rc, ri, c0, c1, cc, ci)
    return tables, _regions(shape[1], kr), _regions(shape[2], kc)


def _kernel_shape(shape: tuple[int, ...], kernel_size: int) -> tuple[int, int]:
    if kernel_size > 0:
        return kernel_size, kernel_size
    return max(shape[1] // 8, 1), max(shape[2] // 8, 1)


def _volume_range(real: np.ndarray) -> tuple[float, float]:
    """Min and max of float32 real values; raises on NaN or infinite voxels."""
    ranges = np.empty((real.shape[0], 3), dtype=np.float64)
    _slice_ranges(real, ranges)
    bad = int(ranges[:, 2].sum())
    if bad:
        raise TransformFailedError(
            f"clahe: {bad} voxels are NaN or infinite, expected finite values - "
            "the input or an earlier op produced them; clip or fix them before clahe"
        )
    return float(ranges[:, 0].min()), float(ranges[:, 1].max())


def apply(
    img: Image, *, kernel_size: int = 0, clip_limit: float = 0.01, nbins: int = 256
) -> Image:
    """CLAHE of every slice of ``img`` onto [0, 1] (see the module docstring)."""
    out = np.empty(img.vol.shape, dtype=np.float32)
    if out.size == 0:
        return with_real(img, out)
    real = real_f32(img)
    lo, hi = _volume_range(real)
    kr, kc = _kernel_shape(img.vol.shape, kernel_size)
    tables, nh_r, nh_c = _tables(img.vol.shape, kr, kc)
    n_px = kr * kc
    # skimage: int(np.clip(clip_limit * n_px, 1, None)); clip_limit 0 means no clipping
    clim = int(max(clip_limit * n_px, 1.0)) if clip_limit > 0.0 else n_px
    _clahe(real, lo, hi, tables, nh_r, nh_c, clim, n_px, nbins, out)
    return with_real(img, out)


def reference(
    img: Image, *, kernel_size: int = 0, clip_limit: float = 0.01, nbins: int = 256
) -> Image:
    """scikit-image reference: ``equalize_adapthist`` per slice of the [0, 1] volume."""
    from skimage.exposure import equalize_adapthist

    real = real_f32_reference(img).astype(np.float64)
    lo, hi = float(real.min()), float(real.max())
    norm = ((real - lo) / (hi - lo) if hi > lo else np.zeros_like(real)).astype(
        np.float32
    )
    kr, kc = _kernel_shape(img.vol.shape, kernel_size)
    out = np.empty(img.vol.shape, dtype=np.float32)
    for s in range(norm.shape[0]):
        out[s] = equalize_adapthist(
            norm[s], kernel_size=(kr, kc), clip_limit=clip_limit, nbins=nbins
        )
    return with_real(img, out)


def _nbins_check(value: Any) -> str | None:
    return None if 2 <= value <= NR_OF_GRAY else f"must be from 2 to {NR_OF_GRAY}"


# Tolerances: the kernel repeats skimage's arithmetic operation for operation (float32
# where skimage uses float32, float64 where it uses float64, the same truncations), so
# results are identical in practice; atol 1e-6 on [0, 1] values allows one float32 ulp.
OP = Op(
    name="clahe",
    version=1,
    family="filter",
    summary="CLAHE per slice (skimage equalize_adapthist conventions); float32 in [0, 1].",
    params=(
        Param(
            "kernel_size",
            int,
            "Contextual region side in pixels; 0: rows/8 x cols/8 (skimage's default).",
            default=0,
            unit="voxels",
            check=lambda v: None if v >= 0 else "must be >= 0",
        ),
        Param(
            "clip_limit",
            float,
            "Clip limit, a fraction of the region's pixels in [0, 1]; 0: no clipping (AHE).",
            default=0.01,
            check=between(0.0, 1.0),
        ),
        Param(
            "nbins",
            int,
            "Histogram bins per region.",
            default=256,
            check=_nbins_check,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=1e-6,
    examples=(
        {},
        {"kernel_size": 4, "clip_limit": 0.03, "nbins": 128},
        {"kernel_size": 3, "clip_limit": 0.0, "nbins": 64},
    ),
)
