"""resample: new voxel spacing in millimetres, linear or nearest, the affine updated.

Per axis, with input size ``n``, input spacing ``d`` (the affine's column norm) and target
spacing ``d'`` (``0`` keeps the axis)::

    n'          = floor((n - 1) * d / d' + 0.5) + 1        (halves round up)
    x(o)        = o * d' / d                               (input index sampled by output o)
    A'[:3, j]   = A[:3, j] / d * d'                        (same direction, length d')
    A'[:3, 3]   = A[:3, 3]                                  (voxel 0 centres coincide)

The output grid starts on the centre of input voxel 0 and ends on the output centre nearest
the input's last centre; it never reaches more than half an output voxel past it. A sample
position outside ``[0, n - 1]`` is clamped (scipy ``mode="nearest"``: the edge repeats).

- ``order=linear`` (default): trilinear interpolation on real values (the pending rescale
  folded in, float32 out, slope 1 / intercept 0), computed axis by axis (exactly the same
  function): ``i0 = floor(x)``, ``i1 = min(i0 + 1, n - 1)``, ``t = x - i0``,
  ``v = v[i0] * (1 - t) + v[i1] * t``. Indices and weights are computed in float64 once per
  axis; the kernels do float32 multiply-adds, most-shrinking axis first.
- ``order=nearest``: voxel ``min(floor(x + 0.5), n - 1)`` (halves round up, as scipy's
  order 0); voxels are copied as raw bits, so the dtype and the pending slope/intercept are
  kept and the result is exact.

Example: 200 slices x 512 x 512 at 2.5 x 0.7 x 0.7 mm resampled to 1 mm is 499 x 359 x 359
(``199 * 2.5 = 497.5`` rounds up to 498; ``511 * 0.7 = 357.7`` to 358).

The reference is ``scipy.ndimage.map_coordinates(order=1 or 0, mode="nearest")`` at the
same coordinates ``x(o)``; linear results differ by a few float32 ulps of the largest input
(float32 weights and products against scipy's float64 sum rounded once). The tests also
check that a linear function of world coordinates is reproduced at every output voxel of an
oblique grid. An affine with a zero or non-finite voxel size, or an output of more than
``MAX_VOXELS`` (2**30) voxels, fails the task (CLX-E130).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import TransformFailedError
from clisonix_cli.transforms._declare import Op, Param, non_negative
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import _interp
from clisonix_cli.transforms.ops._real import real_f32, real_f32_reference, with_real

ORDERS = ("linear", "nearest")

#: Largest output accepted (voxels): 2**30 float32 voxels are 4 GiB.
MAX_VOXELS = 2**30


def grid(
    shape: tuple[int, ...], affine_lps: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[tuple[int, int, int], np.ndarray, tuple[float, float, float]]:
    """Output shape, output affine and zooms (input voxels per output voxel).

    Raises
    ------
    TransformFailedError
        When the affine has a zero or non-finite voxel size, or the output would exceed
        :data:`MAX_VOXELS`.
    """
    affine = np.array(affine_lps, dtype=np.float64)
    old = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
    if not np.all(np.isfinite(old)) or np.any(old <= 0):
        raise TransformFailedError(
            f"resample: voxel sizes from the affine are {old.tolist()} mm, expected > 0 - "
            "the stack has no usable geometry; drop resample from the pipeline"
        )
    sizes: list[int] = []
    zooms: list[float] = []
    for axis in range(3):
        n = int(shape[axis])
        d, target = float(old[axis]), float(spacing[axis])
        if target == 0.0 or n == 0:
            sizes.append(n)
            zooms.append(1.0)
            continue
        sizes.append(math.floor((n - 1) * d / target + 0.5) + 1)
        zooms.append(target / d)
        affine[:3, axis] = affine[:3, axis] / d * target
    total = math.prod(sizes)
    if total > MAX_VOXELS:
        raise TransformFailedError(
            f"resample: output would be {sizes[0]}x{sizes[1]}x{sizes[2]} = {total} voxels, "
            f"more than {MAX_VOXELS} - input spacing {old.round(4).tolist()} mm vs target "
            f"{list(spacing)} mm; choose a coarser spacing"
        )
    return (sizes[0], sizes[1], sizes[2]), affine, (zooms[0], zooms[1], zooms[2])


def _geometry(
    shape: tuple[int, ...], affine_lps: np.ndarray, params: Mapping[str, Any]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Output shape and affine of ``resample`` for an input grid."""
    new_shape, affine, _ = grid(shape, affine_lps, params["spacing"])
    return new_shape, affine


def apply(
    img: Image, *, spacing: tuple[float, float, float], order: str = "linear"
) -> Image:
    """Resample ``img`` to ``spacing`` mm along (S, R, C) (see the module docstring)."""
    new_shape, affine, zooms = grid(img.vol.shape, img.affine_lps, spacing)
    if order == "nearest":
        vol = _interp.nearest(img.vol, new_shape, zooms, half=False)
        return Image(
            vol=vol, affine_lps=affine, slope=img.slope, intercept=img.intercept
        )
    return with_real(
        img, _interp.linear(real_f32(img), new_shape, zooms, half=False), affine
    )


def reference(
    img: Image, *, spacing: tuple[float, float, float], order: str = "linear"
) -> Image:
    """scipy reference: ``map_coordinates(mode="nearest")`` on the same grid, slab by slab.

    Coordinates are built for 16 output slices at a time to bound memory; every point is
    computed exactly as one whole call would.
    """
    from scipy import ndimage

    new_shape, affine, zooms = grid(img.vol.shape, img.affine_lps, spacing)
    axes = [
        np.arange(n, dtype=np.float64) * z
        for n, z in zip(new_shape, zooms, strict=True)
    ]
    if order == "nearest":
        src = img.vol
        out = np.empty(new_shape, dtype=img.vol.dtype)
        spline = 0
    else:
        src = real_f32_reference(img)
        out = np.empty(new_shape, dtype=np.float32)
        spline = 1
    for s0 in range(0, new_shape[0], 16):
        coords = np.stack(
            np.meshgrid(axes[0][s0 : s0 + 16], axes[1], axes[2], indexing="ij")
        )
        ndimage.map_coordinates(
            src, coords, output=out[s0 : s0 + 16], order=spline, mode="nearest"
        )
    if order == "nearest":
        return Image(
            vol=out, affine_lps=affine, slope=img.slope, intercept=img.intercept
        )
    return with_real(img, out, affine)


# Tolerances: linear interpolation in float32 (weights rounded to float32, two float32
# products and a sum per pass, up to three passes) against scipy's float64 sum rounded once
# to float32: a few float32 ulps of the largest |input| (1 ulp at 32768 is 0.004).
# atol 0.02 covers int16 inputs at full range; nearest is exact.
OP = Op(
    name="resample",
    version=1,
    family="spatial",
    summary="Resample to a voxel spacing in mm (linear or nearest); affine updated.",
    params=(
        Param(
            "spacing",
            tuple,
            "Target voxel spacing along (S, R, C) in mm; one number for all axes, 0 keeps "
            "an axis.",
            unit="mm",
            check=non_negative,
        ),
        Param(
            "order",
            str,
            "Interpolation: linear (real values, float32) or nearest (dtype kept).",
            default="linear",
            choices=ORDERS,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.02,
    rtol=1e-6,
    examples=(
        {"spacing": (1.0, 1.0, 1.0)},
        {"spacing": (0.7, 1.6, 2.5)},
        {"spacing": (0.0, 0.45, 0.45), "order": "linear"},
        {"spacing": (1.3, 0.6, 0.9), "order": "nearest"},
    ),
    geometry=_geometry,
)
