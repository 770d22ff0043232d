"""normalize: z-score, min-max or percentile scaling of real values, optionally masked.

Statistics are taken over the selected voxels (``mask``): ``all`` (every non-NaN voxel);
``nonzero`` (value != 0, e.g. brain MRI with a zero background); ``above``
(value > ``mask_threshold``, e.g. body CT above -500 HU). NaN voxels never count. The map
is then applied to **every** voxel:

- ``zscore``: ``y = (x - mean) / std`` (population std, ddof 0);
- ``minmax``: ``y = (x - min) / (max - min)``, clipped to [0, 1] when ``clip``;
- ``percentile``: ``y = (x - P_lo) / (P_hi - P_lo)`` with numpy's ``linear`` percentiles
  ``p_lo``/``p_hi`` (in percent), clipped to [0, 1] when ``clip``.

A zero spread (``std``, ``max - min`` or ``P_hi - P_lo`` equal to 0) divides by 1 instead
(the result is ``x - mean``, etc.); an empty selection leaves values unchanged. float32
out. The statistics pass reads the input through the maps composed before ``normalize``
(see Fusion); after it the map is ``clip(a * x + b, lo, hi)``, so it fuses with
neighbouring intensity ops. Tested against ``numpy.mean/std/min/max/percentile`` in
float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import ParameterRangeError
from clisonix_cli.transforms._declare import Op, Param, between
from clisonix_cli.transforms.fuse import (
    MASKS,
    Clamp,
    PointContext,
    PointStep,
    apply_one,
)
from clisonix_cli.transforms.image import Image

METHODS = ("zscore", "minmax", "percentile")
_DEFAULTS = {"p_lo": 1.0, "p_hi": 99.0, "clip": True, "mask_threshold": 0.0}


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    """Reject parameters the chosen method or mask ignores (they would change the hash)."""
    method, mask = params["method"], params["mask"]
    unused = []
    if method != "percentile":
        unused += ["p_lo", "p_hi"]
    if method == "zscore":
        unused.append("clip")
    if mask != "above":
        unused.append("mask_threshold")
    for key in unused:
        if params[key] != _DEFAULTS[key]:
            why = f"mask={mask}" if key == "mask_threshold" else f"method={method}"
            raise ParameterRangeError(
                f"op 'normalize' parameter '{key}': not used with {why}; remove it"
            )
    if method == "percentile" and params["p_lo"] >= params["p_hi"]:
        raise ParameterRangeError(
            f"op 'normalize' parameter 'p_lo': {params['p_lo']} is not below "
            f"p_hi={params['p_hi']}; expected p_lo < p_hi"
        )
    return params


def _scale(origin: float, spread: float, clip: bool) -> Clamp:
    inv = 1.0 / spread if spread > 0 else 1.0
    if clip:
        return Clamp(inv, -origin * inv, 0.0, 1.0)
    return Clamp(inv, -origin * inv)


def _pointwise(ctx: PointContext, params: Mapping[str, Any]) -> PointStep:
    method, mask, thr = params["method"], params["mask"], params["mask_threshold"]
    if method == "zscore":
        m = ctx.moments(mask, thr)
        if m.count == 0:
            return PointStep(Clamp())
        return PointStep(_scale(m.mean, m.std, False))
    if method == "minmax":
        n, lo, hi = ctx.extrema(mask, thr)
        if n == 0:
            return PointStep(Clamp())
        return PointStep(_scale(lo, hi - lo, params["clip"]))
    ps = ctx.percentiles((params["p_lo"], params["p_hi"]), mask, thr)
    if ps is None:
        return PointStep(Clamp())
    return PointStep(_scale(ps[0], ps[1] - ps[0], params["clip"]))


def apply(img: Image, **params: Any) -> Image:
    """Normalise the real values of ``img`` (statistics pass + one fused map)."""
    return apply_one(OP, img, OP.bind(params))


def reference(img: Image, **params: Any) -> Image:
    """numpy: ``mean``/``std``/``min``/``max``/``percentile`` of the float64 masked values."""
    p = OP.bind(params)
    real = img.vol.astype(np.float64) * img.slope + img.intercept
    sel = real[~np.isnan(real)]
    if p["mask"] == "nonzero":
        sel = sel[sel != 0]
    elif p["mask"] == "above":
        sel = sel[sel > p["mask_threshold"]]
    if sel.size == 0:
        out = real
    else:
        if p["method"] == "zscore":
            origin, spread = float(sel.mean()), float(sel.std())
        elif p["method"] == "minmax":
            origin, spread = float(sel.min()), float(sel.max() - sel.min())
        else:
            lo, hi = np.percentile(sel, [p["p_lo"], p["p_hi"]])
            origin, spread = float(lo), float(hi - lo)
        out = (real - origin) / (spread if spread > 0 else 1.0)
        if p["method"] != "zscore" and p["clip"]:
            out = np.clip(out, 0.0, 1.0)
    return Image(out.astype(np.float32), img.affine_lps, slope=1.0, intercept=0.0)


# atol 1e-4 (output units, i.e. 1e-4 std or 1e-4 of the range): the statistics are float64
# sums over at most ~1e6 values (relative error ~1e-12) but z-scores of values far from the
# mean (|z| up to ~1e3 for outliers over a tiny std) are float32 outputs, whose ulp there is
# 6e-5; rtol 1e-6 covers the same float32 rounding for large z.
# version 2: on 8/16-bit integer inputs the statistics come from a histogram of the stored
# values (exact counts, two-pass float64 moments): z-scores may move by a float32 ulp.
OP = Op(
    name="normalize",
    version=2,
    family="intensity",
    summary="z-score, min-max or percentile scaling; statistics optionally masked.",
    params=(
        Param(
            "method", str, "zscore, minmax or percentile.", "zscore", choices=METHODS
        ),
        Param(
            "mask",
            str,
            "Voxels the statistics use: all, nonzero or above.",
            "all",
            choices=MASKS,
        ),
        Param(
            "mask_threshold",
            float,
            "With mask=above: use voxels with value > this.",
            0.0,
            unit="HU",
        ),
        Param(
            "p_lo",
            float,
            "With method=percentile: low percentile.",
            1.0,
            unit="%",
            check=between(0.0, 100.0),
        ),
        Param(
            "p_hi",
            float,
            "With method=percentile: high percentile.",
            99.0,
            unit="%",
            check=between(0.0, 100.0),
        ),
        Param("clip", bool, "minmax/percentile: clip the result to [0, 1].", True),
    ),
    apply=apply,
    reference=reference,
    atol=1e-4,
    rtol=1e-6,
    examples=(
        {},
        {"mask": "nonzero"},
        {"method": "minmax"},
        {"method": "percentile", "p_lo": 2.0, "p_hi": 98.0},
        {
            "method": "percentile",
            "mask": "above",
            "mask_threshold": -500.0,
            "clip": False,
        },
    ),
    resolve=_resolve,
    pointwise=_pointwise,
)
