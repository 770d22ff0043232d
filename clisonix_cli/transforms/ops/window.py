"""window: the DICOM linear VOI LUT (PS3.3 C.11.2.1.2.1), onto [0, 1] or 0..255.

For a real input value ``x`` (HU for CT; a pending slope/intercept is folded in first),
window centre ``c`` and width ``w`` (``w > 1``)::

    x <= c - 0.5 - (w - 1) / 2   ->  y = y_min
    x >  c - 0.5 + (w - 1) / 2   ->  y = y_max
    otherwise                    ->  y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min

with ``[y_min, y_max] = [0, 1]`` (float32, default) or ``[0, 255]`` (``dtype=uint8``,
rounded half to even). The ``- 0.5`` and ``- 1`` are the standard's (they centre the window
on the stored integer grid): ``center=40, width=400`` maps 39.5 HU to exactly 0.5. The
formula is continuous at both breakpoints, so it equals ``clip(a * x + b, y_min, y_max)``
with ``a = (y_max - y_min) / (w - 1)`` and ``b = y_min + (y_max - y_min) / 2 - a * (c - 0.5)``:
a pointwise map that fuses. ``w = 1`` (a step, allowed by DICOM) is refused: use
``threshold`` for a step. ``preset`` names a centre and width (the values are listed with
the parameter).

Tested against ``pydicom.pixels.processing.apply_windowing`` (LINEAR, unsigned output range
``[0, 2**BitsStored - 1]``: 16 bits scaled back to [0, 1], 8 bits for ``uint8``): uint8
outputs differ by one grey level only at an exact ``.5`` tie, where the fused ``a * x + b``
and pydicom's ``(x - c) / w`` forms round differently in float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import MissingParameterError, ParameterRangeError
from clisonix_cli.transforms._declare import Op, Param
from clisonix_cli.transforms.fuse import Clamp, PointContext, PointStep, apply_one
from clisonix_cli.transforms.image import Image

#: Named windows (centre, width) in HU, as commonly used for CT reading.
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "bone": (400.0, 1800.0),
}

DTYPES = ("float32", "uint8")
_Y_MAX = {"float32": 1.0, "uint8": 255.0}


def _width_check(value: Any) -> str | None:
    return (
        None
        if value > 1
        else "must be > 1 (PS3.3 C.11.2.1.2.1; use threshold for a step)"
    )


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    """A preset fills centre and width; otherwise both must be given."""
    preset = params["preset"]
    if preset is not None:
        c, w = PRESETS[preset]
        for key, value in (("center", c), ("width", w)):
            if params[key] is not None and params[key] != value:
                raise ParameterRangeError(
                    f"op 'window' parameter '{key}': {params[key]!r} conflicts with "
                    f"preset={preset} ({key}={value}); give a preset or center/width, not both"
                )
        return {**params, "center": c, "width": w}
    for key in ("center", "width"):
        if params[key] is None:
            raise MissingParameterError(
                f"op 'window': missing parameter '{key}'; give center and width "
                f"(e.g. window:center=40,width=400) or preset= one of {', '.join(PRESETS)}"
            )
    return params


def window_clamp(center: float, width: float, y_max: float = 1.0) -> Clamp:
    """The window as ``clip(a * x + b, 0, y_max)`` (see the module docstring)."""
    a = y_max / (width - 1.0)
    # anchored at the centre: a * (center - 0.5) + b lands on y_max / 2 in most cases
    # (float64), so the exact-centre voxel rounds like pydicom's formula does
    b = 0.5 * y_max - a * (center - 0.5)
    return Clamp(a, b, 0.0, y_max)


def _pointwise(ctx: PointContext, params: Mapping[str, Any]) -> PointStep:
    dtype = params["dtype"]
    return PointStep(
        window_clamp(params["center"], params["width"], _Y_MAX[dtype]), dtype
    )


def apply(img: Image, **params: Any) -> Image:
    """Window ``img`` (real values) onto [0, 1] float32 or 0..255 uint8."""
    return apply_one(OP, img, OP.bind(params))


def reference(img: Image, **params: Any) -> Image:
    """numpy: PS3.3 C.11.2.1.2.1 written out as pydicom's ``apply_windowing`` does (LINEAR,
    float64, the three cases); the tests also compare with pydicom itself."""
    p = OP.bind(params)
    y_max = _Y_MAX[p["dtype"]]
    real = img.vol.astype(np.float64) * img.slope + img.intercept
    c, w = p["center"] - 0.5, p["width"] - 1.0
    below = real <= c - w / 2
    above = real > c + w / 2
    y = ((real - c) / w + 0.5) * y_max
    y = np.where(below, 0.0, np.where(above, y_max, y))
    if p["dtype"] == "uint8":
        vol = np.where(np.isnan(y), 0.0, np.rint(y)).astype(np.uint8)
    else:
        vol = y.astype(np.float32)
    return Image(vol, img.affine_lps, slope=1.0, intercept=0.0)


# float32: |apply - reference| <= 1e-6: both evaluate the same linear formula in float64 (the
# fused form a*x+b differs by a few float64 ulps) and round once to float32 (ulp 6e-8 at 1).
# uint8: atol 1: the fused and the step-by-step float64 forms may round an exact .5 tie
# differently (one grey level); ties need x on a 1/510 grid point, rare but reachable.
OP = Op(
    name="window",
    version=1,
    family="intensity",
    summary="DICOM linear window/level (PS3.3 C.11.2.1.2.1) onto [0, 1] or 0..255.",
    params=(
        Param("center", float, "Window centre in real units.", None, unit="HU"),
        Param(
            "width",
            float,
            "Window width in real units, > 1.",
            None,
            unit="HU",
            check=_width_check,
        ),
        Param(
            "preset",
            str,
            "Named window, sets center/width (HU): "
            + ", ".join(f"{name} {c:g}/{w:g}" for name, (c, w) in PRESETS.items())
            + ".",
            None,
            choices=tuple(PRESETS),
        ),
        Param(
            "dtype",
            str,
            "Output: float32 in [0, 1] or uint8 0..255.",
            "float32",
            choices=DTYPES,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=1e-6,
    extra={"int_atol": 1},
    examples=(
        {"center": 40.0, "width": 400.0},
        {"preset": "lung"},
        {"preset": "brain", "dtype": "uint8"},
        {"center": -1000.5, "width": 2.0},
    ),
    resolve=_resolve,
    pointwise=_pointwise,
)
