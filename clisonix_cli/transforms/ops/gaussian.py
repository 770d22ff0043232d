"""gaussian: Gaussian smoothing with sigmas in millimetres, edges repeated.

Per axis ``a`` the sigma in voxels is ``sigma_vox = sigma_mm[a] / spacing_mm[a]`` (spacing
from the affine's column norms; a sigma of 0 leaves that axis alone). The filter is exactly
scipy's ``gaussian_filter(vol, sigma_vox, mode="nearest", truncate=4.0)``::

    radius  = int(4 * sigma_vox + 0.5)
    w[x]    = exp(-x^2 / (2 sigma_vox^2)) / sum(...),   x = -radius..radius   (float64)
    out[i]  = w[0] * v[i] + sum_{x=1..radius} w[x] * (v[i - x] + v[i + x])   (float32)

with indices clamped to the volume (voxels beyond the edge take the edge value). Three
separable passes in float32, weights rounded to float32: columns and rows fused per slice
(the slice stays in cache), then slices on blocks of ``ROW_BLOCK`` rows so the
``2 radius + 1`` slices in use stay in the L2 cache. Real values in (the pending rescale
folded in); float32 out with slope 1 / intercept 0. The affine is unchanged.

The reference is ``scipy.ndimage.gaussian_filter`` on the float32 real values with
``output=float32`` (scipy also rounds to float32 between its 1-D passes); results differ by
a few float32 ulps of the largest input.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import Op, Param, non_negative
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import _separable
from clisonix_cli.transforms.ops._real import real_f32, real_f32_reference, with_real

TRUNCATE = 4.0


def sigma_voxels(
    img: Image, sigma: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Sigma along (S, R, C) in voxels: ``sigma_mm / spacing_mm`` (0 where spacing is 0)."""
    spacing = img.spacing_mm
    vox = [float(m) / d if d > 0 else 0.0 for m, d in zip(sigma, spacing, strict=True)]
    return (vox[0], vox[1], vox[2])


def apply(img: Image, *, sigma: tuple[float, float, float]) -> Image:
    """Smooth ``img`` with a Gaussian of ``sigma`` mm along (S, R, C)."""
    s_vox = sigma_voxels(img, sigma)
    halves = tuple(_separable.gaussian_half_kernel(s, TRUNCATE) for s in s_vox)
    out = _separable.smooth(real_f32(img), (halves[0], halves[1], halves[2]))
    return with_real(img, out)


def reference(img: Image, *, sigma: tuple[float, float, float]) -> Image:
    """scipy reference: ``gaussian_filter(float32, sigma_vox, mode="nearest", truncate=4)``."""
    from scipy import ndimage

    real = real_f32_reference(img)
    out = ndimage.gaussian_filter(
        real,
        sigma_voxels(img, sigma),
        mode="nearest",
        truncate=TRUNCATE,
        output=np.float32,
    )
    return with_real(img, out)


# Tolerances: float32 multiply-adds (2k + 1 taps, weights rounded to float32) in three
# passes against scipy's float64 sums rounded to float32 after each pass: a few float32
# ulps of the largest |input| (0.004 at 32768); atol 0.02 covers int16 at full range.
OP = Op(
    name="gaussian",
    version=1,
    family="filter",
    summary="Gaussian smoothing, sigma in mm per axis, truncated at 4 sigma, edges repeated.",
    params=(
        Param(
            "sigma",
            tuple,
            "Standard deviation along (S, R, C) in mm; one number for all axes, 0 skips "
            "an axis.",
            unit="mm",
            check=non_negative,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.02,
    rtol=1e-6,
    examples=(
        {"sigma": (1.5, 1.5, 1.5)},
        {"sigma": (0.0, 1.0, 2.0)},
        {"sigma": (4.0, 0.3, 0.0)},
    ),
)
