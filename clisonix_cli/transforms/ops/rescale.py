"""rescale: apply the modality LUT, ``real = vol * slope + intercept`` (PS3.3 C.11.1.1.2).

    y = float32(vol * slope + intercept)        output slope = 1, intercept = 0

The output holds real values (HU for CT) as float32 and resets the pending slope/intercept to
1/0. The multiply-add is done in float64 and rounded once to float32: byte for byte
``pydicom.pixels.processing.apply_modality_lut`` (float64) rounded to float32 (tested with
hypothesis). A pointwise op: next to other intensity ops it costs nothing (its map is folded
into the fused pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.transforms._declare import Op
from clisonix_cli.transforms.fuse import Clamp, PointContext, PointStep, apply_one
from clisonix_cli.transforms.image import Image


def _pointwise(ctx: PointContext, params: Mapping[str, Any]) -> PointStep:
    """Real values are the input of every pointwise step already: the identity map."""
    return PointStep(clamp=Clamp(), dtype="float32")


def apply(img: Image, **params: Any) -> Image:
    """Real voxel values as float32, slope 1, intercept 0 (no copy if already so)."""
    return apply_one(OP, img, OP.bind(params))


def reference(img: Image, **params: Any) -> Image:
    """numpy: ``vol * slope + intercept`` in float64 (pydicom's ``apply_modality_lut``
    arithmetic; the tests also compare with pydicom itself), rounded once to float32."""
    real = img.vol.astype(np.float64) * float(img.slope) + float(img.intercept)
    return Image(real.astype(np.float32), img.affine_lps, slope=1.0, intercept=0.0)


# atol 1e-6, rtol 1e-7: both sides compute vol * slope + intercept in float64 and round
# once to float32; only a float64 ulp of difference could move a float32 rounding (1 ulp,
# 2^-24 relative < 1e-7).
OP = Op(
    name="rescale",
    version=1,
    family="intensity",
    summary="Apply the modality LUT (vol * slope + intercept): float32 real units.",
    params=(),
    apply=apply,
    reference=reference,
    atol=1e-6,
    rtol=1e-7,
    examples=({},),
    pointwise=_pointwise,
)
