"""MR image-quality metrics of a slice sample, without a brain mask (MRQy-style, 3-D).

MRQy (Sadri et al., Med Phys 2020) computes its measures per 2-D slice and averages them;
here each measure is computed once over the whole sample (a 3-D measure), with the same
definitions.

- **Foreground** (head): per slice, the region above the Otsu threshold of the sample
  (scikit-image's, 256 bins) with its holes filled, largest 4-connected part (a scalp ring
  counts with the brain it encloses). **Background** (air): pixels outside it and at least
  2 pixels away.
- ``noise_sd``: the noise SD of the complex signal, from the background SD of a magnitude
  image (Rayleigh): ``sd_bg / sqrt(2 - pi / 2)``.
- ``snr = mean_fg / noise_sd`` (Dietrich et al. 2007); ``cnr = (mean_fg - mean_bg) / sd_bg``
  and ``cjv = (sd_fg + sd_bg) / |mean_fg - mean_bg|`` as MRQy defines them;
  ``efc`` the entropy focus criterion over the sample (Atkinson 1997, MRIQC's formula:
  ``sum((x / B) ln((x + 1e-16) / B)) / (-sqrt(N) ln sqrt(N))``, ``B = sqrt(sum x**2)``);
  ``fber = median(fg**2) / median(bg**2)`` (MRIQC, MRQy); medians from a histogram of
  ``FINE_BINS`` bins over the sample's range (exact for integer data up to 65535).
- ``inu_cv_pct``: a coarse intensity non-uniformity, the coefficient of variation (%) of the
  foreground mean in a 4 x 4 x 4 grid of blocks (slabs of the sample x rows x columns)
  holding at least 25 % foreground. Tissue contrast adds to it: compare it within a
  protocol, not across.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clisonix_cli.qc.kernels import MR_BLOCKS, _mr_masks, _mr_stats
from clisonix_cli.transforms.ops.threshold import otsu

FINE_BINS = 65536
BG_GAP = 2
#: A block counts for the non-uniformity when this share of it is foreground.
BLOCK_FILL = 0.25
RAYLEIGH = math.sqrt(2.0 - math.pi / 2.0)


def _hist_median(hist: np.ndarray, lo: float, width: float) -> float | None:
    total = int(hist.sum())
    if total == 0:
        return None
    idx = int(np.searchsorted(np.cumsum(hist), (total + 1) // 2, side="left"))
    return lo + idx * width


def _fine_bins(vol: np.ndarray, lo: float, hi: float) -> tuple[float, int]:
    """Bin width and count: 1 for integer data that fits, else FINE_BINS over the range."""
    span = hi - lo
    if span < FINE_BINS and np.array_equal(vol, np.round(vol)):
        return 1.0, int(span) + 1
    return max(span, 1e-12) / FINE_BINS, FINE_BINS


def measure(vol: np.ndarray) -> dict[str, Any]:
    """MR metrics of a sample of slices.

    Parameters
    ----------
    vol : (K, R, C) ndarray
        Real values (magnitude images).

    Returns
    -------
    dict
        The metrics of the module docstring (None where undefined, e.g. no background).
    """
    vol = np.ascontiguousarray(vol, dtype=np.float32)
    lo, hi = float(vol.min()), float(vol.max())
    if hi <= lo:
        return {"fg_frac": 0.0}
    thr = float(otsu(vol, np.float32(lo), np.float32(hi)))
    body = np.zeros(vol.shape, np.uint8)
    _mr_masks(vol, thr, body)
    width, nb = _fine_bins(vol, lo, hi)
    hist_fg = np.zeros(nb, np.int64)
    hist_bg = np.zeros(nb, np.int64)
    sums = np.zeros(9, np.float64)
    blocks = np.zeros((MR_BLOCKS**3, 2), np.float64)
    _mr_stats(vol, body, BG_GAP, lo, 1.0 / width, hist_fg, hist_bg, sums, blocks)
    fg_n, fg_s, fg_ss, bg_n, bg_s, bg_ss, all_s, all_ss, all_xlx = (
        float(v) for v in sums
    )
    out: dict[str, Any] = {"otsu": thr, "fg_frac": fg_n / vol.size}
    mean_fg, sd_fg = _mean_sd(fg_n, fg_s, fg_ss)
    mean_bg, sd_bg = _mean_sd(bg_n, bg_s, bg_ss)
    out["fg_mean"] = mean_fg
    noise = sd_bg / RAYLEIGH if sd_bg else None
    out["noise_sd"] = noise
    out["snr"] = mean_fg / noise if noise and mean_fg is not None else None
    ok = mean_fg is not None and mean_bg is not None
    out["cnr"] = (mean_fg - mean_bg) / sd_bg if ok and sd_bg else None  # type: ignore[operator]
    gap = abs(mean_fg - mean_bg) if ok else 0.0  # type: ignore[operator]
    out["cjv"] = (sd_fg + sd_bg) / gap if ok and gap else None  # type: ignore[operator]
    out["efc"] = _efc(vol.size, all_ss, all_s, all_xlx)
    med_fg = _hist_median(hist_fg, lo, width)
    med_bg = _hist_median(hist_bg, lo, width)
    out["fber"] = (med_fg / med_bg) ** 2 if med_fg is not None and med_bg else None
    out["inu_cv_pct"] = _inu(blocks, vol.shape)
    return out


def _mean_sd(n: float, s: float, ss: float) -> tuple[float | None, float | None]:
    if n < 2:
        return None, None
    mean = s / n
    return mean, math.sqrt(max((ss - s * mean) / (n - 1), 0.0))


def _efc(n: int, sumsq: float, s: float, xlogx: float) -> float | None:
    if sumsq <= 0 or n < 2:
        return None
    b = math.sqrt(sumsq)
    efc_max = n * (1.0 / math.sqrt(n)) * math.log(1.0 / math.sqrt(n))
    # sum((x / B) ln(x / B)) = (sum x ln x - ln B sum x) / B (the 1e-16 is below rounding)
    return (xlogx - math.log(b) * s) / b / efc_max


def _inu(blocks: np.ndarray, shape: tuple[int, ...]) -> float | None:
    n_sl, rows, cols = shape
    sizes = np.zeros(MR_BLOCKS**3)
    for i in range(MR_BLOCKS**3):
        slab, rest = divmod(i, MR_BLOCKS**2)
        br, bc = divmod(rest, MR_BLOCKS)
        sizes[i] = (
            _span(slab, n_sl) * _span(br, rows) * _span(bc, cols)
        )  # pixels of the block
    use = (blocks[:, 0] >= BLOCK_FILL * sizes) & (blocks[:, 0] > 0)
    if use.sum() < 2:
        return None
    means = blocks[use, 1] / blocks[use, 0]
    return float(100.0 * means.std() / means.mean()) if means.mean() else None


def _span(b: int, n: int) -> int:
    """How many of ``n`` indices ``i`` have ``i * MR_BLOCKS // n == b``."""
    return sum(1 for i in range(n) if (i * MR_BLOCKS) // n == b)


def reference(vol: np.ndarray) -> dict[str, Any]:
    """The same metrics with numpy/scipy/scikit-image in float64 (tests only)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    x = np.asarray(vol, dtype=np.float64)
    thr = float(threshold_otsu(x.astype(np.float32)))  # type: ignore[no-untyped-call]
    four = ndimage.generate_binary_structure(2, 1)
    fg = np.zeros(x.shape, bool)
    for k, img in enumerate(x.astype(np.float32)):
        lab, n = ndimage.label(ndimage.binary_fill_holes(img > thr, four), four)
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            fg[k] = lab == 1 + int(np.argmax(sizes))
    near = np.stack(
        [
            ndimage.maximum_filter(f.astype(np.uint8), 2 * BG_GAP + 1, mode="constant")
            for f in fg
        ]  # fmt: skip
    )
    bg = ~fg & (near == 0)
    f, b = x[fg], x[bg]
    out: dict[str, Any] = {"otsu": thr, "fg_frac": float(fg.mean())}
    out["fg_mean"] = float(f.mean())
    noise = float(b.std(ddof=1)) / RAYLEIGH
    out["noise_sd"] = noise
    out["snr"] = float(f.mean()) / noise
    out["cnr"] = (f.mean() - b.mean()) / b.std(ddof=1)
    out["cjv"] = (f.std(ddof=1) + b.std(ddof=1)) / abs(f.mean() - b.mean())
    n = x.size
    bmax = np.sqrt((x**2).sum())
    efc_max = n * (1.0 / np.sqrt(n)) * np.log(1.0 / np.sqrt(n))
    pos = np.maximum(x, 0)
    out["efc"] = float(np.sum((pos / bmax) * np.log((pos + 1e-16) / bmax)) / efc_max)
    out["fber"] = float(np.median(f**2) / np.median(b**2))
    means = []
    n_sl, rows, cols = x.shape
    ks = (np.arange(n_sl) * MR_BLOCKS) // n_sl
    rs = (np.arange(rows) * MR_BLOCKS) // rows
    cs = (np.arange(cols) * MR_BLOCKS) // cols
    for i in range(MR_BLOCKS**3):
        slab, rest = divmod(i, MR_BLOCKS**2)
        br, bc = divmod(rest, MR_BLOCKS)
        sel = np.ix_(ks == slab, rs == br, cs == bc)
        blk, msk = x[sel], fg[sel]
        if msk.sum() > 0 and msk.sum() >= BLOCK_FILL * msk.size:
            means.append(blk[msk].mean())
    m = np.asarray(means)
    out["inu_cv_pct"] = float(100 * m.std() / m.mean())
    return out
