"""sobel: gradient magnitude from 3-D Sobel derivatives, edges repeated.

For each axis ``a`` the derivative is scipy's ``ndimage.sobel(vol, axis=a,
mode="nearest")``: the central difference ``[-1, 0, 1]`` along ``a`` and the smoothing
``[1, 2, 1]`` along each of the two other axes. The output is::

    out = sqrt(g_s^2 + g_r^2 + g_c^2)

``per_mm=false`` (default) keeps scipy's raw scale: a ramp rising by 1 per voxel gives 32
along its axis (2 from the difference, 4 x 4 from the smoothings). ``per_mm=true`` makes
it spacing-aware: each ``g_a`` is divided by ``32 * spacing_mm[a]``, so the magnitude
estimates the gradient in real units per millimetre (a ramp of 1 HU/mm reads 1 whatever
the voxel size; edges read half, being one-sided). Real values in (the pending rescale
folded in), float32 out with slope 1 / intercept 0; the affine is unchanged.

Kernel: slices are processed in chunks of ``CHUNK`` (in parallel); inside a chunk the three
in-plane partial results of each slice (smoothed-smoothed, smoothed-differenced,
differenced-smoothed) are kept for the last three slices only, so each is computed once
per chunk and the volume is read about once.

The reference is the three scipy calls above (float32 outputs) and the magnitude in
float64; both sides round in float32 between passes, in a different order, so results
differ by a few float32 ulps of 32 x the largest input.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import Op, Param, kernel, prange
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._real import real_f32, real_f32_reference, with_real

#: Slices per parallel chunk: each chunk recomputes the in-plane results of 2 halo slices.
CHUNK = 16


@kernel(parallel=True)
def _sobel_magnitude(
    vol: np.ndarray, scale_s: float, scale_r: float, scale_c: float, out: np.ndarray
) -> None:
    """float32 (S, R, C) -> float32 (S, R, C) Sobel gradient magnitude (edges repeated)."""
    n_s, n_r, n_c = vol.shape
    fs = np.float32(scale_s)
    fr = np.float32(scale_r)
    fc = np.float32(scale_c)
    two = np.float32(2.0)
    n_chunks = (n_s + CHUNK - 1) // CHUNK
    for chunk in prange(n_chunks):
        s0 = chunk * CHUNK
        s1 = min(s0 + CHUNK, n_s)
        # ring of in-plane results, slot = slice index mod 3:
        # p_ss = smooth_r(smooth_c(v)), p_ds = diff_r(smooth_c(v)), p_sd = smooth_r(diff_c(v))
        p_ss = np.empty((3, n_r, n_c), dtype=np.float32)
        p_ds = np.empty((3, n_r, n_c), dtype=np.float32)
        p_sd = np.empty((3, n_r, n_c), dtype=np.float32)
        sm = np.empty((n_r, n_c), dtype=np.float32)
        df = np.empty((n_r, n_c), dtype=np.float32)
        for t in range(s0 - 1, s1 + 1):
            src = min(max(t, 0), n_s - 1)
            slot = (t + 3) % 3
            for r in range(n_r):
                for c in range(n_c):
                    left = vol[src, r, max(c - 1, 0)]
                    right = vol[src, r, min(c + 1, n_c - 1)]
                    sm[r, c] = left + two * vol[src, r, c] + right
                    df[r, c] = right - left
            for r in range(n_r):
                up = max(r - 1, 0)
                down = min(r + 1, n_r - 1)
                for c in range(n_c):
                    p_ss[slot, r, c] = sm[up, c] + two * sm[r, c] + sm[down, c]
                    p_ds[slot, r, c] = sm[down, c] - sm[up, c]
                    p_sd[slot, r, c] = df[up, c] + two * df[r, c] + df[down, c]
            if t >= s0 + 1:
                s = t - 1
                lo = (s + 2) % 3
                mi = (s + 3) % 3
                hi = (s + 4) % 3
                for r in range(n_r):
                    for c in range(n_c):
                        gs = (p_ss[hi, r, c] - p_ss[lo, r, c]) * fs
                        gr = (
                            p_ds[lo, r, c] + two * p_ds[mi, r, c] + p_ds[hi, r, c]
                        ) * fr
                        gc = (
                            p_sd[lo, r, c] + two * p_sd[mi, r, c] + p_sd[hi, r, c]
                        ) * fc
                        out[s, r, c] = np.sqrt(gs * gs + gr * gr + gc * gc)


def _scales(img: Image, per_mm: bool) -> tuple[float, float, float]:
    if not per_mm:
        return (1.0, 1.0, 1.0)
    sp = img.spacing_mm
    return (1.0 / (32.0 * sp[0]), 1.0 / (32.0 * sp[1]), 1.0 / (32.0 * sp[2]))


def apply(img: Image, *, per_mm: bool = False) -> Image:
    """Sobel gradient magnitude of ``img`` (see the module docstring)."""
    real = real_f32(img)
    out = np.empty(real.shape, dtype=np.float32)
    if real.size:
        scales = _scales(img, per_mm)
        _sobel_magnitude(real, scales[0], scales[1], scales[2], out)
    return with_real(img, out)


def reference(img: Image, *, per_mm: bool = False) -> Image:
    """scipy reference: ``ndimage.sobel(float32, axis=a, mode="nearest")`` per axis."""
    from scipy import ndimage

    real = real_f32_reference(img)
    total = np.zeros(real.shape, dtype=np.float64)
    for axis, scale in enumerate(_scales(img, per_mm)):
        g = ndimage.sobel(real, axis=axis, mode="nearest").astype(np.float64) * scale
        total += g * g
    return with_real(img, np.sqrt(total).astype(np.float32))


# Tolerances: in-plane sums of up to 16 inputs and differences in float32 (scipy rounds
# to float32 after each of its 1-D passes too, in another order), so errors are a few
# float32 ulps of 32 x the largest |input| (1 ulp is 0.008 at 32 x 3072); atol 0.1 with
# rtol 1e-5 on a magnitude up to about 1.7e5.
OP = Op(
    name="sobel",
    version=1,
    family="filter",
    summary="3-D Sobel gradient magnitude (scipy sobel per axis), optionally per mm.",
    params=(
        Param(
            "per_mm",
            bool,
            "Divide each axis derivative by 32 x its spacing: real units per mm.",
            default=False,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.1,
    rtol=1e-5,
    examples=({"per_mm": False}, {"per_mm": True}),
)
