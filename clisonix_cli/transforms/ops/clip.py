"""clip: limit real values to ``[lo, hi]`` (either bound may be left open).

``y = min(max(x, lo), hi)`` on real values (a pending slope/intercept is folded in), float32
out; NaN stays NaN. A pointwise map that fuses with its neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import MissingParameterError, ParameterRangeError
from clisonix_cli.transforms._declare import Op, Param
from clisonix_cli.transforms.fuse import Clamp, PointContext, PointStep, apply_one
from clisonix_cli.transforms.image import Image


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    lo, hi = params["lo"], params["hi"]
    if lo is None and hi is None:
        raise MissingParameterError(
            "op 'clip': give lo, hi or both (e.g. clip:lo=-1000,hi=2000)"
        )
    if lo is not None and hi is not None and lo > hi:
        raise ParameterRangeError(
            f"op 'clip' parameter 'lo': {lo} is above hi={hi}; expected lo <= hi"
        )
    return params


def _bounds(params: Mapping[str, Any]) -> tuple[float, float]:
    lo = -math.inf if params["lo"] is None else float(params["lo"])
    hi = math.inf if params["hi"] is None else float(params["hi"])
    return lo, hi


def _pointwise(ctx: PointContext, params: Mapping[str, Any]) -> PointStep:
    lo, hi = _bounds(params)
    return PointStep(Clamp(1.0, 0.0, lo, hi), "float32")


def apply(img: Image, **params: Any) -> Image:
    """Clip the real values of ``img`` to [lo, hi]; float32 out."""
    return apply_one(OP, img, OP.bind(params))


def reference(img: Image, **params: Any) -> Image:
    """``np.clip`` of the float64 real values, rounded once to float32."""
    lo, hi = _bounds(OP.bind(params))
    real = img.vol.astype(np.float64) * img.slope + img.intercept
    vol = np.clip(real, lo, hi).astype(np.float32)
    return Image(vol, img.affine_lps, slope=1.0, intercept=0.0)


# Exact up to float32 rounding of the same float64 value (atol 0, rtol 1e-7 for the
# multiply-add of a pending rescale, which may be fused differently).
OP = Op(
    name="clip",
    version=1,
    family="intensity",
    summary="Clip real values to [lo, hi] (either bound optional); float32 out.",
    params=(
        Param("lo", float, "Lower bound in real units (none: open).", None, unit="HU"),
        Param("hi", float, "Upper bound in real units (none: open).", None, unit="HU"),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    rtol=1e-7,
    examples=({"lo": -1000.0, "hi": 2000.0}, {"lo": 0.0}, {"hi": -0.5}),
    resolve=_resolve,
    pointwise=_pointwise,
)
