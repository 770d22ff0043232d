"""voi: the DICOM greyscale display pipeline (PS3.4 N.2) onto 0..255, 0..65535 or [0, 1].

In the standard's order, for a real (modality) input value ``x`` (the pending rescale is
folded in first; a Modality LUT Sequence was applied by the reader):

1. **VOI** (PS3.3 C.11.2), with ``y`` on [0, 1]:

   - a window (centre ``c``, width ``w``), by (0028,1056) VOI LUT Function:
     ``LINEAR`` (C.11.2.1.2.1, ``w >= 1``): ``y = ((x - (c - 0.5)) / (w - 1) + 0.5)``
     clipped to [0, 1] (``w = 1``: a step, 0 for ``x <= c - 0.5``, else 1);
     ``LINEAR_EXACT`` (C.11.2.1.3.2, ``w > 0``): ``y = (x - c) / w + 0.5`` clipped;
     ``SIGMOID`` (C.11.2.1.3.1, ``w > 0``): ``y = 1 / (1 + exp(-4 (x - c) / w))``;
   - a VOI LUT (C.11.2.1.1): ``y = LUT[clip(rint(x) - first, 0, n - 1)] / (2**bits - 1)``;
   - which one: ``center``/``width`` when given; else (``source=auto``) the file's VOI
     LUT number ``index`` when it has one, else its window number ``index``, else the
     image's own range (``LINEAR_EXACT`` from its minimum to its maximum). ``source=lut``,
     ``window`` or ``minmax`` picks one; a missing one fails the task (CLX-E174).
2. **Presentation** (C.11.6): ``y = 1 - y`` for MONOCHROME1 (minimum is white) or a
   Presentation LUT Shape of INVERSE (``invert=auto``; ``yes``/``no`` force it).
3. **Output range**: ``dtype=uint8`` (default) ``rint(255 y)``, ``uint16`` ``rint(65535 y)``,
   ``float32`` ``y``; rounding half to even.

The file's attributes reach the op as plain values (``Image.display``, filled by the
reader); without them (a volume built in Python) only ``center``/``width`` or the image's
range apply. Colour images pass through unchanged (PS3.4 N.2: no VOI for colour).
Linear windows and their inversion are clamp maps and fuse with the other intensity ops
into one pass; a sigmoid, a step or a LUT is one pass of its own.

Tested against pydicom: ``apply_modality_lut`` -> ``apply_voi_lut`` (``prefer_lut=True``)
-> inversion, scaled from pydicom's output range to 0..255, within one grey level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import ParameterRangeError, VoiLutError
from clisonix_cli.transforms._declare import Op, Param, kernel, non_negative, prange
from clisonix_cli.transforms.fuse import (
    CHUNK,
    INT_RANGES,
    Clamp,
    PointContext,
    PointStep,
    _mapv,
    apply_one,
)
from clisonix_cli.transforms.image import Image

DTYPES = ("uint8", "uint16", "float32")
FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
SOURCES = ("auto", "lut", "window", "minmax")
INVERTS = ("auto", "yes", "no")
_Y_MAX = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}

# modes of the non-clamp kernel
_STEP, _SIGMOID, _LUT = 0, 1, 2


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    given = [params["center"] is not None, params["width"] is not None]
    if any(given) and not all(given):
        raise ParameterRangeError(
            "op 'voi': give center and width together (or neither, to use the file's VOI)"
        )
    if all(given):
        fn = params["function"] or "LINEAR"
        w = params["width"]
        if (fn == "LINEAR" and w < 1) or w <= 0:
            raise ParameterRangeError(
                f"op 'voi' parameter 'width': {w!r} must be >= 1 for LINEAR and > 0 for "
                "LINEAR_EXACT and SIGMOID (PS3.3 C.11.2.1.2)"
            )
    return params


def _invert(display: Mapping[str, Any] | None, how: str) -> bool:
    if how != "auto":
        return how == "yes"
    if not display:
        return False
    return display.get("photometric") == "MONOCHROME1" or (
        display.get("presentation") == "INVERSE"
    )


def choose(
    display: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> tuple[str, Any]:
    """What the op applies: ``("window", (c, w, function))``, ``("lut", item)`` or
    ``("minmax", None)``.

    Raises
    ------
    VoiLutError
        ``source`` names a VOI the file does not have, or ``index`` is out of range.
    """
    if params["center"] is not None:
        return "window", (
            params["center"],
            params["width"],
            params["function"] or "LINEAR",
        )
    source, index = params["source"], params["index"]
    d = display or {}
    luts = list(d.get("voi_luts") or ())
    windows = list(d.get("windows") or ())
    if source in ("auto", "lut") and luts:
        if index >= len(luts):
            raise VoiLutError(
                f"op 'voi': index={index} but the file has {len(luts)} VOI LUT(s) "
                f"(0028,3010); use index 0 to {len(luts) - 1}"
            )
        return "lut", luts[index]
    if source == "lut":
        raise VoiLutError(
            "op 'voi': source=lut but the file has no (0028,3010) VOI LUT"
        )
    if source in ("auto", "window") and windows:
        if index >= len(windows):
            raise VoiLutError(
                f"op 'voi': index={index} but the file has {len(windows)} window(s) "
                f"(0028,1050)/(0028,1051); use index 0 to {len(windows) - 1}"
            )
        c, w = windows[index]
        fn = str(d.get("function") or "LINEAR")
        fn = fn if fn in FUNCTIONS else "LINEAR"
        if (fn == "LINEAR" and w < 1) or w <= 0:
            raise VoiLutError(
                f"op 'voi': the file's window {index} has width {w:g}, expected >= 1 "
                "(LINEAR) or > 0 - the header is corrupt; give center= and width="
            )
        return "window", (float(c), float(w), fn)
    if source == "window":
        raise VoiLutError(
            "op 'voi': source=window but the file has no (0028,1050)/(0028,1051) window"
        )
    return "minmax", None


def _linear01(c: float, w: float, fn: str) -> Clamp | None:
    """The window onto [0, 1] as a clamp map; None for a sigmoid and the LINEAR step."""
    if fn == "SIGMOID":
        return None
    if fn == "LINEAR":
        if w == 1.0:
            return None
        a = 1.0 / (w - 1.0)
        return Clamp(a, 0.5 - a * (c - 0.5), 0.0, 1.0)
    a = 1.0 / w
    return Clamp(a, 0.5 - a * c, 0.0, 1.0)


def _out_clamp(invert: bool, dtype: str) -> Clamp:
    """[0, 1] -> the output range, inverted when asked."""
    y = _Y_MAX[dtype]
    return Clamp(-y, y, 0.0, y) if invert else Clamp(y, 0.0, 0.0, y)


@kernel(parallel=True)
def _display(
    src: np.ndarray,
    a: float,
    b: float,
    lo: float,
    hi: float,
    mode: int,
    c: float,
    w: float,
    lut: np.ndarray,
    first: float,
    lut_scale: float,
    invert: bool,
    y_max: float,
    rounding: bool,
    out: np.ndarray,
) -> None:
    """1-D any numeric in, 1-D out: the input map, then a step/sigmoid/LUT onto [0, 1],
    then inversion and the output range (rounded half to even for integer outputs)."""
    n = src.shape[0]
    n_lut = lut.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    for ch in prange(nchunks):
        start = ch * CHUNK
        stop = min(start + CHUNK, n)
        for i in range(start, stop):
            x = _mapv(src[i], a, b, lo, hi)
            if x != x:
                y = 0.0
            elif mode == 0:
                y = 0.0 if x <= c - 0.5 else 1.0
            elif mode == 1:
                y = 1.0 / (1.0 + math.exp(-4.0 * (x - c) / w))
            else:
                k = np.rint(x) - first
                if k < 0.0:
                    k = 0.0
                if k > n_lut - 1:
                    k = n_lut - 1.0
                y = lut[int(k)] * lut_scale
            if invert:
                y = 1.0 - y
            y = y * y_max
            if rounding:
                y = np.rint(y)
            out[i] = y


def _materialize(
    mode: int, c: float, w: float, lut: np.ndarray, first: float, lut_scale: float,
    invert: bool, dtype: str,
) -> Any:  # fmt: skip
    def run(vol: np.ndarray, clamp: Clamp) -> np.ndarray:
        src = np.ascontiguousarray(vol)
        if src.dtype == np.bool_:
            src = src.view(np.uint8)
        out = np.empty(src.shape, dtype=dtype)
        table = np.ascontiguousarray(lut, dtype=np.float64)
        _display(
            src.reshape(-1), clamp.a, clamp.b, clamp.lo, clamp.hi, mode, c, w, table,
            first, lut_scale, invert, _Y_MAX[dtype], dtype in INT_RANGES, out.reshape(-1),
        )  # fmt: skip
        return out

    return run


_NO_LUT = np.zeros(1, dtype=np.float64)


def _pointwise(ctx: PointContext, params: Mapping[str, Any]) -> PointStep:
    dtype = params["dtype"]
    display = ctx.display
    if display and display.get("colour"):
        kind = ctx.vol.dtype.name
        return PointStep(Clamp(), kind if kind in INT_RANGES else "float32")
    invert = _invert(display, params["invert"])
    what, arg = choose(display, params)
    if what == "minmax":
        n, lo, hi = ctx.extrema()
        if n == 0 or hi <= lo:
            y = 1.0 if invert else 0.0
            const = y * _Y_MAX[dtype]
            return PointStep(Clamp(0.0, const, const, const), dtype)
        arg = ((lo + hi) / 2.0, hi - lo, "LINEAR_EXACT")
        what = "window"
    if what == "window":
        c, w, fn = arg
        lin = _linear01(c, w, fn)
        if lin is not None:
            return PointStep(lin.then(_out_clamp(invert, dtype)), dtype)
        mode = _STEP if fn == "LINEAR" else _SIGMOID
        run = _materialize(mode, c, w, _NO_LUT, 0.0, 1.0, invert, dtype)
        return PointStep(Clamp(), dtype, materialize=run)
    lut = arg
    scale = 1.0 / (2.0 ** int(lut["bits"]) - 1.0)
    run = _materialize(
        _LUT,
        0.0,
        1.0,
        np.asarray(lut["data"]),
        float(lut["first"]),
        scale,
        invert,
        dtype,
    )
    return PointStep(Clamp(), dtype, materialize=run)


def apply(img: Image, **params: Any) -> Image:
    """The display pipeline of ``img`` (its ``display`` attributes) onto ``dtype``."""
    return apply_one(OP, img, OP.bind(params))


def reference(img: Image, **params: Any) -> Image:
    """numpy, float64: PS3.3 C.11.2 written out as pydicom's ``apply_windowing`` and
    ``apply_voi`` do (three cases for the linear functions), then inversion and scaling."""
    p = OP.bind(params)
    dtype = p["dtype"]
    display = img.display
    if display and display.get("colour"):
        return Image(img.vol, img.affine_lps, img.slope, img.intercept)
    real = img.vol.astype(np.float64) * img.slope + img.intercept
    invert = _invert(display, p["invert"])
    what, arg = choose(display, p)
    if what == "minmax":
        finite = real[~np.isnan(real)]
        lo, hi = (
            (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        )
        if hi <= lo:
            y = np.zeros_like(real)
            what = "const"
        else:
            what, arg = "window", ((lo + hi) / 2.0, hi - lo, "LINEAR_EXACT")
    if what == "window":
        c, w, fn = arg
        if fn == "SIGMOID":
            y = 1.0 / (1.0 + np.exp(-4.0 * (real - c) / w))
        else:
            if fn == "LINEAR":
                c, w = c - 0.5, w - 1.0
            below = real <= c - w / 2
            above = real > c + w / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                y = (real - c) / w + 0.5
            y = np.where(below, 0.0, np.where(above, 1.0, y))
    elif what == "lut":
        table = np.asarray(arg["data"], dtype=np.float64)
        k = np.clip(np.rint(real) - float(arg["first"]), 0, table.size - 1)
        y = table[np.nan_to_num(k).astype(np.int64)] / (2.0 ** int(arg["bits"]) - 1.0)
    y = np.where(np.isnan(real), 0.0, y)
    if invert:
        y = 1.0 - y
    y = y * _Y_MAX[dtype]
    if dtype == "float32":
        vol = y.astype(np.float32)
    else:
        vol = np.rint(y).astype(dtype)
    return Image(vol, img.affine_lps, slope=1.0, intercept=0.0)


# float32: the fused clamp a*x+b and the three-case form differ by float64 ulps, then one
# rounding to float32 (ulp 6e-8 at 1). Integer outputs: atol 1, the two forms may round an
# exact .5 tie differently (one grey level).
OP = Op(
    name="voi",
    version=1,
    family="intensity",
    summary="DICOM display pipeline (PS3.4 N.2): the file's VOI window or LUT, "
    "MONOCHROME1 inversion, onto 0..255 (PNG-ready).",
    params=(
        Param(
            "index",
            int,
            "Which of the file's windows or VOI LUTs (0 = first).",
            0,
            check=non_negative,
        ),
        Param(
            "source",
            str,
            "auto (VOI LUT, else window, else the image's range), lut, "
            "window or minmax.",
            "auto",
            choices=SOURCES,
        ),
        Param(
            "center",
            float,
            "Window centre in modality units, instead of the file's.",
            None,
            unit="modality",
        ),
        Param(
            "width",
            float,
            "Window width, instead of the file's (>= 1 LINEAR, > 0).",
            None,
            unit="modality",
        ),
        Param(
            "function",
            str,
            "VOI LUT Function with center/width (default LINEAR).",
            None,
            choices=FUNCTIONS,
        ),
        Param(
            "invert",
            str,
            "auto (MONOCHROME1 or Presentation LUT Shape INVERSE), yes or no.",
            "auto",
            choices=INVERTS,
        ),
        Param(
            "dtype",
            str,
            "Output: uint8 0..255, uint16 0..65535 or float32 [0, 1].",
            "uint8",
            choices=DTYPES,
        ),
    ),  # fmt: skip
    apply=apply,
    reference=reference,
    atol=1e-6,
    extra={"int_atol": 1},
    examples=(
        {},
        {"center": 40.0, "width": 400.0},
        {"center": 40.0, "width": 400.0, "function": "SIGMOID", "dtype": "float32"},
        {"center": 100.0, "width": 300.0, "function": "LINEAR_EXACT", "invert": "yes"},
        {"center": 0.0, "width": 1.0, "dtype": "uint16"},
        {"dtype": "float32"},
    ),
    resolve=_resolve,
    pointwise=_pointwise,
)
