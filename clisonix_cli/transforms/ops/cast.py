"""cast: convert real values to int16, uint8, uint16 or float32.

Rules (the real value is ``x = vol * slope + intercept``, folded in first):

- ``scale=none`` (default): integer dtypes store ``rint(x)`` (round half to even, as
  ``numpy.rint``), saturated to the dtype's range; NaN becomes 0. ``float32`` stores ``x``
  rounded to the nearest float32. The output's slope/intercept are 1/0.
- ``scale=fit`` (integer dtypes only): the real range ``[min, max]`` (NaN ignored) is mapped
  linearly onto the dtype's full range ``[d_min, d_max]``; the output keeps the real values
  as a pending rescale ``slope = (max - min) / (d_max - d_min)``,
  ``intercept = min - d_min * slope`` (so ``vol * slope + intercept`` gives the real values
  back to within half a step), the form NIfTI ``scl_slope`` and DICOM Rescale Slope store.
  A constant volume gets ``slope = 1`` and stores ``d_min``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import ParameterRangeError
from clisonix_cli.transforms._declare import Op, Param
from clisonix_cli.transforms.fuse import (
    INT_RANGES,
    Clamp,
    PointContext,
    PointStep,
    apply_one,
)
from clisonix_cli.transforms.image import Image

DTYPES = ("int16", "uint8", "uint16", "float32")
SCALES = ("none", "fit")


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    if params["scale"] == "fit" and params["dtype"] not in INT_RANGES:
        raise ParameterRangeError(
            f"op 'cast' parameter 'scale': fit needs an integer dtype, not "
            f"{params['dtype']}; use scale=none"
        )
    return params


def fit_rescale(lo: float, hi: float, dtype: str) -> tuple[float, float]:
    """(slope, intercept) mapping the dtype's range back onto the real range [lo, hi]."""
    d_min, d_max = INT_RANGES[dtype]
    slope = (hi - lo) / (d_max - d_min) if hi > lo else 1.0
    return slope, lo - d_min * slope


def _pointwise(ctx: PointContext, params: Mapping[str, Any]) -> PointStep:
    dtype = params["dtype"]
    if params["scale"] == "none":
        return PointStep(Clamp(), dtype)
    n, lo, hi = ctx.extrema()
    if n == 0:
        lo = hi = 0.0
    slope, intercept = fit_rescale(lo, hi, dtype)
    return PointStep(Clamp(1.0 / slope, -intercept / slope), dtype, slope, intercept)


def apply(img: Image, **params: Any) -> Image:
    """Cast the real values of ``img`` to ``dtype`` (rounding and saturation as documented)."""
    return apply_one(OP, img, OP.bind(params))


def reference(img: Image, **params: Any) -> Image:
    """numpy: float64 real values, ``np.rint``, ``np.clip`` to the range, ``astype``."""
    p = OP.bind(params)
    dtype = p["dtype"]
    real = img.vol.astype(np.float64) * img.slope + img.intercept
    if dtype == "float32":
        return Image(real.astype(np.float32), img.affine_lps, slope=1.0, intercept=0.0)
    slope, intercept = 1.0, 0.0
    if p["scale"] == "fit":
        finite = real[~np.isnan(real)]
        lo, hi = (
            (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        )
        slope, intercept = fit_rescale(lo, hi, dtype)
        real = (real - intercept) / slope
    d_min, d_max = INT_RANGES[dtype]
    stored = np.clip(np.rint(real), d_min, d_max)
    stored = np.where(np.isnan(stored), 0.0, stored)
    return Image(stored.astype(dtype), img.affine_lps, slope=slope, intercept=intercept)


# Integer outputs: int_atol 1 (one step): the fused map x*(1/slope) - intercept/slope and the
# reference (x - intercept)/slope differ by float64 ulps, which can flip an exact .5 tie.
# float32 output: rtol 1e-7 (one float32 rounding of the same float64 value).
OP = Op(
    name="cast",
    version=1,
    family="intensity",
    summary="Convert to int16/uint8/uint16/float32: round half even, saturate, or fit.",
    params=(
        Param("dtype", str, "Output dtype.", choices=DTYPES),
        Param(
            "scale",
            str,
            "none: round and saturate; fit: map [min, max] onto the "
            "dtype's range and keep the real values as slope/intercept.",
            "none",
            choices=SCALES,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    rtol=1e-7,
    extra={"int_atol": 1},
    examples=(
        {"dtype": "int16"},
        {"dtype": "uint8"},
        {"dtype": "uint16", "scale": "fit"},
        {"dtype": "float32"},
    ),
    resolve=_resolve,
    pointwise=_pointwise,
)
