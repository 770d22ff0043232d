"""CT image-quality metrics of a slice sample, in Hounsfield units.

Definitions:

- **Body**: per slice, the region above -500 HU with its holes filled, largest 4-connected
  part (lungs and bowel gas stay inside; the table, a separate region, does not count).
- **Air**: pixels outside the body, above the padding level (-1500 HU) and at least 2 pixels
  from the body: ``air_mean_hu`` and ``air_sd_hu`` (about -1000 HU on a calibrated scanner).
- **Local windows**: squares of side ``2 rad + 1`` pixels, ``rad`` = 3 mm in pixels clamped
  to [2, 7], centred every ``WINDOW_STEP`` pixels along rows and columns and lying entirely
  in the body. Their local mean and SD (n - 1 denominator).
- **Global noise level** ``gnl_hu`` (Christianson et al., AJR 2015): the mode of the
  histogram of local SDs over windows whose local mean is soft tissue (0-100 HU), in bins of
  0.1 HU smoothed with a Gaussian of 5 % of the median local SD. For white noise of SD s
  the mode lies at about ``s * sqrt((n - 2) / (n - 1))`` with n pixels per window (0.98 s
  for 5x5).
- **Soft tissue** ``tissue_mean_hu`` / ``tissue_sd_hu``: the centre pixels of the windows
  whose local mean falls in the 21 one-HU bins centred on the most common bin in
  [-50, 150) HU (the dominant soft tissue, +-10 HU).
- **Quantiles** ``hu_p05`` / ``hu_p50`` / ``hu_p95`` of the body's HU, from 1-HU bins (lower
  bin edge: exact for integer HU, as ``numpy.quantile(method="inverted_cdf")`` floored).
- **Field of view**: the FOV edge is every non-padding pixel on the image border or next to
  padding. ``fov_edge_body_frac`` is the share of the edge covered by body;
  ``fov_truncated_frac`` the share of slices whose body covers at least 0.5 % (and 3
  pixels) of their edge: the patient extends beyond the reconstruction. Axial slices only
  (a coronal or sagittal reformat cuts the body at its top and bottom by design).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clisonix_cli.qc.kernels import (
    CT_OBJECT_HU,
    CT_PADDING_HU,
    HU_BINS,
    HU_LO,
    MEAN_BINS,
    MEAN_LO,
    SD_BIN,
    SD_BINS,
    _ct_slices,
)

#: Half-width of the local windows in millimetres, and its clamp in pixels.
WINDOW_HALF_MM = 3.0
WINDOW_RAD = (2, 7)
#: Window centres every this many pixels (neighbouring windows overlap: no loss of data).
WINDOW_STEP = 2
#: Air pixels keep at least this many pixels from the body (partial-volume edge).
AIR_GAP = 2
#: Soft-tissue region: local means within this many 1-HU bins of the most common one.
TISSUE_HALF_BINS = 10
#: Smoothing of the local-SD histogram before its mode is taken: a Gaussian whose SD is
#: this share of the median local SD (at least one bin).
SD_SMOOTH = 0.05
#: A slice is truncated when its body covers at least this share of its FOV edge.
TRUNCATED_FRAC = 0.005
QUANTILES = {"hu_p05": 0.05, "hu_p50": 0.50, "hu_p95": 0.95}


def window_radius(spacing_rc_mm: tuple[float, float]) -> int:
    """Half-width in pixels of the local windows: 3 mm, clamped to [2, 7] pixels."""
    pixel = max(min(spacing_rc_mm), 1e-3)
    return int(min(max(round(WINDOW_HALF_MM / pixel), WINDOW_RAD[0]), WINDOW_RAD[1]))


def hist_quantile(hist: np.ndarray, q: float, lo: float, width: float = 1.0) -> float:
    """Lower edge of the bin holding the ``q`` quantile (inverted CDF) of a histogram."""
    total = int(hist.sum())
    cum = np.cumsum(hist)
    idx = int(np.searchsorted(cum, max(1, int(np.ceil(q * total))), side="left"))
    return lo + idx * width


def measure(
    hu: np.ndarray, spacing_rc_mm: tuple[float, float], *, axial: bool = True
) -> dict[str, Any]:
    """CT metrics of a sample of slices.

    Parameters
    ----------
    hu : (K, R, C) ndarray
        Real values in HU (stored values with the modality rescale applied).
    spacing_rc_mm : (float, float)
        Pixel spacing between rows and between columns.
    axial : bool
        Whether the slices are axial; the field-of-view metrics are None otherwise.

    Returns
    -------
    dict
        The metrics of the module docstring (None where the sample has no such region).
    """
    hu = np.ascontiguousarray(hu, dtype=np.float32)
    n_sl = hu.shape[0]
    rad = window_radius(spacing_rc_mm)
    stats = np.zeros((n_sl, 6), np.float64)
    hist_hu = np.zeros((n_sl, HU_BINS), np.int64)
    hist_sd = np.zeros((n_sl, SD_BINS), np.int64)
    by_mean = np.zeros((n_sl, MEAN_BINS, 3), np.float64)
    _ct_slices(hu, rad, WINDOW_STEP, AIR_GAP, stats, hist_hu, hist_sd, by_mean)
    tot = stats.sum(axis=0)
    out: dict[str, Any] = {"window_px": 2 * rad + 1}
    out.update(_air(tot))
    out["gnl_hu"] = _gnl(hist_sd.sum(axis=0))
    out.update(_tissue(by_mean.sum(axis=0)))
    hh = hist_hu.sum(axis=0)
    for name, q in QUANTILES.items():
        out[name] = hist_quantile(hh, q, HU_LO) if hh.sum() else None
    ring, ring_body = stats[:, 3], stats[:, 4]
    out["body_frac"] = float(tot[5] / hu[0].size / n_sl)
    out["fov_edge_body_frac"] = float(tot[4] / tot[3]) if tot[3] and axial else None
    truncated = (ring_body >= np.maximum(3.0, TRUNCATED_FRAC * ring)) & (ring > 0)
    out["fov_truncated_frac"] = float(truncated.mean()) if axial else None
    return out


def _air(tot: np.ndarray) -> dict[str, float | None]:
    n, s, ss = float(tot[0]), float(tot[1]), float(tot[2])
    if n < 2:
        return {"air_mean_hu": None, "air_sd_hu": None}
    mean = s / n
    var = max((ss - s * mean) / (n - 1), 0.0)
    return {"air_mean_hu": mean - 1000.0, "air_sd_hu": float(np.sqrt(var))}


def _gnl(hist: np.ndarray) -> float | None:
    total = int(hist.sum())
    if total == 0:
        return None
    median = int(np.searchsorted(np.cumsum(hist), (total + 1) // 2))
    width = max(1.0, SD_SMOOTH * (median + 0.5))  # in bins
    half = int(np.ceil(3 * width))
    taps = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    smooth = np.convolve(hist.astype(np.float64), taps, mode="same")
    return (int(np.argmax(smooth)) + 0.5) * SD_BIN


def _tissue(by_mean: np.ndarray) -> dict[str, float | None]:
    """Mean and SD of the centre pixels in the band of local-mean bins around the mode."""
    counts = by_mean[:, 0]
    if counts.sum() == 0:
        return {"tissue_mean_hu": None, "tissue_sd_hu": None}
    mode = int(np.argmax(counts))
    lo, hi = (
        max(mode - TISSUE_HALF_BINS, 0),
        min(mode + TISSUE_HALF_BINS + 1, MEAN_BINS),
    )
    band = by_mean[lo:hi]
    shift = MEAN_LO + np.arange(lo, hi, dtype=np.float64) - (MEAN_LO + mode)
    n = float(band[:, 0].sum())
    if n < 2:
        return {"tissue_mean_hu": None, "tissue_sd_hu": None}
    # every bin's sums re-centred on the mode bin's lower edge
    s = float((band[:, 1] + band[:, 0] * shift).sum())
    ss = float((band[:, 2] + 2 * shift * band[:, 1] + band[:, 0] * shift**2).sum())
    mean = s / n
    var = max((ss - s * mean) / (n - 1), 0.0)
    return {
        "tissue_mean_hu": mean + MEAN_LO + mode,
        "tissue_sd_hu": float(np.sqrt(var)),
    }


def reference(hu: np.ndarray, spacing_rc_mm: tuple[float, float]) -> dict[str, Any]:
    """The same metrics with scipy.ndimage in float64 (tests only)."""
    from scipy import ndimage

    hu = np.asarray(hu, dtype=np.float64)
    rad = window_radius(spacing_rc_mm)
    side = 2 * rad + 1
    four = ndimage.generate_binary_structure(2, 1)
    body = np.zeros(hu.shape, bool)
    for k, img in enumerate(hu):
        lab, n = ndimage.label(
            ndimage.binary_fill_holes(img > CT_OBJECT_HU, four), four
        )
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            body[k] = lab == 1 + int(np.argmax(sizes))
    valid = hu > CT_PADDING_HU
    near = np.stack(
        [
            ndimage.maximum_filter(b.astype(np.uint8), 2 * AIR_GAP + 1, mode="constant")
            for b in body
        ]  # fmt: skip
    )
    air = valid & ~body & (near == 0)
    out: dict[str, Any] = {"window_px": side}
    a = hu[air]
    out["air_mean_hu"] = float(a.mean()) if a.size > 1 else None
    out["air_sd_hu"] = float(a.std(ddof=1)) if a.size > 1 else None
    # Local statistics of windows lying entirely in the body (edges excluded).
    inner = np.zeros(hu.shape, bool)
    mean = np.zeros(hu.shape)
    sd = np.zeros(hu.shape)
    for k, img in enumerate(hu):
        full = ndimage.uniform_filter(body[k].astype(np.float64), side, mode="constant")
        inside = np.isclose(full, 1.0)
        inside[:rad], inside[-rad:], inside[:, :rad], inside[:, -rad:] = (False,) * 4
        grid = np.zeros(inside.shape, bool)
        grid[rad::WINDOW_STEP, rad::WINDOW_STEP] = True
        inside &= grid
        # rounded to 1e-9: exact local means (integer sums / n), as the kernel's
        m = np.round(ndimage.uniform_filter(img, side, mode="constant"), 9)
        m2 = ndimage.uniform_filter(img * img, side, mode="constant")
        inner[k], mean[k] = inside, m
        sd[k] = np.sqrt(np.maximum((m2 - m * m) * side**2 / (side**2 - 1), 0.0))
    soft = inner & (mean >= 0) & (mean <= 100)
    hist_sd = np.bincount(
        np.minimum((sd[soft] / SD_BIN).astype(np.int64), SD_BINS - 1), minlength=SD_BINS
    )
    out["gnl_hu"] = _gnl(hist_sd)
    sel = inner & (mean >= MEAN_LO) & (mean < MEAN_LO + MEAN_BINS)
    hist_mean = np.bincount(
        np.floor(mean[sel]).astype(np.int64) - MEAN_LO, minlength=MEAN_BINS
    )
    if hist_mean.sum():
        mode = MEAN_LO + int(np.argmax(hist_mean))
        band = (np.floor(mean) >= mode - TISSUE_HALF_BINS) & (
            np.floor(mean) <= mode + TISSUE_HALF_BINS
        )
        t = hu[inner & band]
        out["tissue_mean_hu"] = float(t.mean())
        out["tissue_sd_hu"] = float(t.std(ddof=1))
    vals = np.floor(hu[body])
    for name, q in QUANTILES.items():
        out[name] = float(np.quantile(vals, q, method="inverted_cdf"))
    out["body_frac"] = float(body.mean())
    edge = valid.copy()
    for k in range(hu.shape[0]):
        pad = ~valid[k]
        nxt = ndimage.binary_dilation(pad, four) if pad.any() else pad
        e = np.zeros(pad.shape, bool)
        e[0], e[-1], e[:, 0], e[:, -1] = (True,) * 4
        edge[k] &= e | nxt
    ring = edge.sum(axis=(1, 2)).astype(np.float64)
    ring_body = (edge & body).sum(axis=(1, 2)).astype(np.float64)
    out["fov_edge_body_frac"] = float(ring_body.sum() / ring.sum())
    trunc = (ring_body >= np.maximum(3.0, TRUNCATED_FRAC * ring)) & (ring > 0)
    out["fov_truncated_frac"] = float(trunc.mean())
    return out
