"""threshold: a uint8 mask, 1 where the real value is above a threshold, else 0.

    mask = 1 if x > t else 0        uint8; NaN -> 0

``method=fixed`` takes ``t = value`` (real units). ``method=otsu`` picks ``t`` with Otsu's
method exactly as ``skimage.filters.threshold_otsu(x)`` does on the float32 real values ``x``:
a 256-bin ``numpy.histogram`` over ``[min, max]`` (same float32 bin arithmetic and edge
corrections), float32 counts, the between-class variance maximised at the first maximum, the
threshold being that bin's centre; a constant volume's threshold is its value. The
histogram is one numba pass; the 256-bin search is numpy. Foreground is ``x > t``
(skimage's convention); NaN is background and left out of the histogram. Tested with
hypothesis: the same threshold as skimage, to the bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clisonix_cli.errors import MissingParameterError, ParameterRangeError
from clisonix_cli.transforms._declare import Op, Param, kernel, prange
from clisonix_cli.transforms.fuse import widen
from clisonix_cli.transforms.image import Image

METHODS = ("fixed", "otsu")
NBINS = 256


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    if params["method"] == "fixed" and params["value"] is None:
        raise MissingParameterError(
            "op 'threshold': missing parameter 'value' for method=fixed "
            "(e.g. threshold:value=-500) or use method=otsu"
        )
    if params["method"] == "otsu" and params["value"] is not None:
        raise ParameterRangeError(
            "op 'threshold' parameter 'value': not used with method=otsu; remove it"
        )
    return params


@kernel(parallel=True)
def _real_f32(
    flat: np.ndarray, slope: float, intercept: float, out: np.ndarray, parts: np.ndarray
) -> None:
    """(S, N) stored -> (S, N) float32 real values; parts[s] = (min, max) ignoring NaN."""
    for s in prange(flat.shape[0]):
        mn = np.float32(np.inf)
        mx = np.float32(-np.inf)
        for i in range(flat.shape[1]):
            v = np.float32(flat[s, i] * slope + intercept)
            out[s, i] = v
            mn, mx = widen(v, mn, mx)
        parts[s, 0] = mn
        parts[s, 1] = mx


@kernel(parallel=True)
def _histogram(
    flat: np.ndarray,
    first: np.float32,
    denom: np.float32,
    edges: np.ndarray,
    counts: np.ndarray,
) -> None:
    """(S, N) float32 -> counts[s, bin], numpy's uniform-bin rule in float32 arithmetic."""
    nb = edges.shape[0] - 1
    fnb = np.float32(nb)
    for s in prange(flat.shape[0]):
        for i in range(flat.shape[1]):
            x = flat[s, i]
            if x != x:
                continue
            f = ((x - first) / denom) * fnb
            k = int(f)
            if k == nb:
                k -= 1
            if x < edges[k]:
                k -= 1
            if k != nb - 1 and x >= edges[k + 1]:
                k += 1
            counts[s, k] += 1


@kernel(parallel=True)
def _above(flat: np.ndarray, t: np.float32, out: np.ndarray) -> None:
    """(S, N) float32 -> uint8 mask of x > t (NaN -> 0)."""
    for s in prange(flat.shape[0]):
        for i in range(flat.shape[1]):
            out[s, i] = 1 if flat[s, i] > t else 0


@kernel(parallel=True)
def _above_real(
    flat: np.ndarray, slope: float, intercept: float, t: float, out: np.ndarray
) -> None:
    """(S, N) stored -> uint8 mask of float64 real value > t (NaN -> 0)."""
    for s in prange(flat.shape[0]):
        for i in range(flat.shape[1]):
            out[s, i] = 1 if flat[s, i] * slope + intercept > t else 0


def otsu_from_counts(counts: np.ndarray, centers: np.ndarray) -> float:
    """skimage's Otsu search on a histogram (float32 counts, first maximum)."""
    counts = counts.astype(np.float32)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean1 = np.cumsum(counts * centers) / weight1
        mean2 = (np.cumsum((counts * centers)[::-1]) / weight2[::-1])[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centers[int(np.argmax(variance12))])


def otsu(real: np.ndarray, lo: np.float32, hi: np.float32) -> np.float32:
    """Otsu threshold of C-contiguous float32 (S, R, C) values in [lo, hi] (skimage's).

    ``lo``/``hi`` are the min/max of the non-NaN values (NaN when there are none).
    """
    if not lo <= hi:
        return np.float32(np.nan)
    if lo == hi:
        return lo
    flat = real.reshape(real.shape[0], -1)
    edges = np.linspace(lo, hi, NBINS + 1, endpoint=True, dtype=np.float32)
    counts = np.zeros((flat.shape[0], NBINS), dtype=np.int64)
    _histogram(flat, lo, np.float32(hi - lo), edges, counts)
    centers = (edges[:-1] + edges[1:]) / np.float32(2.0)
    return np.float32(otsu_from_counts(counts.sum(axis=0), centers))


def apply(img: Image, **params: Any) -> Image:
    """uint8 mask (0/1) of real values above ``value`` or the Otsu threshold."""
    p = OP.bind(params)
    src = np.ascontiguousarray(img.vol)
    flat = src.reshape(src.shape[0], -1)
    out = np.empty(src.shape, dtype=np.uint8)
    slope, intercept = float(img.slope), float(img.intercept)
    if p["method"] == "fixed":
        _above_real(flat, slope, intercept, float(p["value"]), out.reshape(flat.shape))
    else:
        real = np.empty(src.shape, dtype=np.float32)
        parts = np.empty((flat.shape[0], 2), dtype=np.float32)
        _real_f32(flat, slope, intercept, real.reshape(flat.shape), parts)
        lo = np.float32(parts[:, 0].min()) if parts.size else np.float32(np.nan)
        hi = np.float32(parts[:, 1].max()) if parts.size else np.float32(np.nan)
        t = otsu(real, lo, hi)
        _above(real.reshape(flat.shape), t, out.reshape(flat.shape))
    return Image(out, img.affine_lps, slope=1.0, intercept=0.0)


def reference(img: Image, **params: Any) -> Image:
    """numpy ``>`` and ``skimage.filters.threshold_otsu`` on the float32 real values."""
    from skimage.filters import threshold_otsu

    p = OP.bind(params)
    if p["method"] == "fixed":
        real64 = img.vol.astype(np.float64) * img.slope + img.intercept
        return Image((real64 > p["value"]).astype(np.uint8), img.affine_lps)
    real = (img.vol.astype(np.float64) * img.slope + img.intercept).astype(np.float32)
    # flat: skimage flattens anyway (and guesses RGB from a 3-D shape)
    t = threshold_otsu(real.reshape(-1))  # type: ignore[no-untyped-call]
    return Image((real > t).astype(np.uint8), img.affine_lps)


# Exact (atol 0): the same comparisons on the same float32 (otsu) or float64 (fixed) values,
# and the Otsu threshold itself is the same bin centre as skimage's (tested separately).
OP = Op(
    name="threshold",
    version=1,
    family="intensity",
    summary="uint8 mask (0/1) of real values above a fixed value or Otsu's threshold.",
    params=(
        Param(
            "value", float, "Threshold in real units (method=fixed).", None, unit="HU"
        ),
        Param(
            "method",
            str,
            "fixed or otsu (skimage's, 256 bins).",
            "fixed",
            choices=METHODS,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    examples=({"value": 0.0}, {"value": -500.5}, {"method": "otsu"}),
    resolve=_resolve,
)
