"""Projection X-ray (CR, DX, MG, ...) image-quality metrics, per frame, averaged.

- **Border bands** (collimator shutters, electronic masking): from each edge, the run of
  whole rows (top, bottom) or columns (left, right) whose SD is below 2 % of the frame's
  robust range (0.5th to 99.5th percentile); each band at most 45 % of the frame.
  ``border_frac`` is the share of the frame the bands cover (rectangular shutters only).
- **Saturation**: ``sat_low_frac`` / ``sat_high_frac``, the share of pixels inside the bands'
  frame at the lowest or highest value the stored bits can hold (``BitsStored``, signed or
  not, through the modality rescale).
- **Dynamic range used**: ``range_used_frac`` = (99.5th - 0.5th percentile inside the bands'
  frame) / (the representable range).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clisonix_cli.qc.kernels import _row_sd

BORDER_TOL = 0.02
BORDER_MAX = 0.45
LOW_Q, HIGH_Q = 0.005, 0.995


def representable(
    bits_stored: int, signed: bool, slope: float, intercept: float
) -> tuple[float, float]:
    """Lowest and highest real value the stored bits can hold."""
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (
        0, 2**bits_stored - 1)  # fmt: skip
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b))


def _band(sd: np.ndarray, tol: float, limit: int) -> int:
    n = 0
    while n < limit and sd[n] < tol:
        n += 1
    return n


def bands(img: np.ndarray) -> tuple[int, int, int, int]:
    """Widths (top, bottom, left, right) in pixels of the uniform border bands."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    rows, cols = img.shape
    row_sd = np.zeros(rows, np.float64)
    col_sd = np.zeros(cols, np.float64)
    _row_sd(img, row_sd)
    _row_sd(np.ascontiguousarray(img.T), col_sd)
    lo, hi = np.quantile(img, [LOW_Q, HIGH_Q], method="inverted_cdf")
    tol = BORDER_TOL * float(hi - lo)
    if tol <= 0:
        return (0, 0, 0, 0)
    rmax, cmax = int(BORDER_MAX * rows), int(BORDER_MAX * cols)
    return (
        _band(row_sd, tol, rmax),
        _band(row_sd[::-1], tol, rmax),
        _band(col_sd, tol, cmax),
        _band(col_sd[::-1], tol, cmax),
    )


def measure(frames: np.ndarray, value_range: tuple[float, float]) -> dict[str, Any]:
    """X-ray metrics of a sample of frames.

    Parameters
    ----------
    frames : (K, R, C) ndarray
        Real values.
    value_range : (float, float)
        The representable range (:func:`representable`).

    Returns
    -------
    dict
        The metrics of the module docstring, means over the frames.
    """
    lo, hi = value_range
    span = max(hi - lo, 1e-12)
    rows: list[dict[str, float]] = []
    for img in frames:
        t, b, left, right = bands(img)
        inner = img[t : img.shape[0] - b, left : img.shape[1] - right]
        q_lo, q_hi = np.quantile(inner, [LOW_Q, HIGH_Q], method="inverted_cdf")
        rows.append(
            {
                "border_frac": 1.0 - inner.size / img.size,
                "sat_low_frac": float(np.count_nonzero(inner <= lo)) / inner.size,
                "sat_high_frac": float(np.count_nonzero(inner >= hi)) / inner.size,
                "range_used_frac": float(q_hi - q_lo) / span,
                "p005": float(q_lo),
                "p995": float(q_hi),
            }
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def reference_bands(img: np.ndarray) -> tuple[int, int, int, int]:
    """:func:`bands` with numpy's row and column SDs (tests only)."""
    x = np.asarray(img, dtype=np.float64)
    lo, hi = np.quantile(x.astype(np.float32), [LOW_Q, HIGH_Q], method="inverted_cdf")
    tol = BORDER_TOL * float(hi - lo)
    rmax, cmax = int(BORDER_MAX * x.shape[0]), int(BORDER_MAX * x.shape[1])
    rs, cs = x.std(axis=1), x.std(axis=0)
    return (
        _band(rs, tol, rmax),
        _band(rs[::-1], tol, rmax),
        _band(cs, tol, cmax),
        _band(cs[::-1], tol, cmax),
    )
