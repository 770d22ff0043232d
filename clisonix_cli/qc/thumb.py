"""Thumbnails for the report: the central slice, windowed, at most 64 pixels a side, PNG.

Small on purpose: a 64-pixel thumbnail shows the anatomy and the window, and no burned-in
text stays legible at that size. The PNG encoding (deterministic: no time or text chunk) is
the PNG writer's (:func:`clisonix_cli.formats.png.png_bytes`).
"""

from __future__ import annotations

import math

import numpy as np

SIDE = 64
#: CT thumbnails use a soft-tissue window (centre 40, width 400 HU).
CT_WINDOW = (40.0, 400.0)


def shrink(img: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Block-average an (R, C) image so that its longer side is at most ``side``."""
    f = max(1, math.ceil(max(img.shape) / side))
    rows, cols = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    if rows == 0 or cols == 0:
        return np.asarray(img, dtype=np.float64)
    x = np.asarray(img[:rows, :cols], dtype=np.float64)
    out: np.ndarray = x.reshape(rows // f, f, cols // f, f).mean(axis=(1, 3))
    return out


def window_of(img: np.ndarray, kind: str) -> tuple[float, float]:
    """(low, high) display limits: CT's soft-tissue window, else the 0.5-99.5 percentiles."""
    if kind == "ct":
        c, w = CT_WINDOW
        return (c - w / 2, c + w / 2)
    lo, hi = np.quantile(img, [0.005, 0.995], method="inverted_cdf")
    return (float(lo), float(hi))


def thumbnail(img: np.ndarray, kind: str, *, invert: bool = False) -> np.ndarray:
    """One slice shrunk, windowed onto 0-255 (uint8), inverted for MONOCHROME1."""
    small = shrink(img)
    lo, hi = window_of(small, kind)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    grey = np.clip(np.rint((small - lo) * scale), 0, 255).astype(np.uint8)
    return 255 - grey if invert else grey
