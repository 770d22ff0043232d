"""Numba kernels of the QC metrics: arrays in, arrays out, nothing of DICOM.

Every kernel works on a *sample* of whole slices, ``vol`` of shape (K, R, C), C-contiguous
float32 real values (HU for CT), and writes one row of per-slice results per slice; the
drivers in :mod:`clisonix_cli.qc.ct`, :mod:`~clisonix_cli.qc.mr` and
:mod:`~clisonix_cli.qc.xr` add the rows in slice order. The kernels are serial: QC runs
inside a task, and tasks already run side by side (a parallel kernel would also start
numba's thread pool, about a second per process, for a few milliseconds of work).

All kernels live in this one module because a numba kernel that calls a kernel of another
file keeps a stale on-disk cache when only that other file changes.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import kernel

#: CT: a pixel above this (HU) is part of an object (body, table) rather than air.
CT_OBJECT_HU = -500.0
#: CT: a pixel at or below this (HU) is padding outside the reconstructed field of view.
CT_PADDING_HU = -1500.0
#: CT histogram of body HU for the quantiles: 1-HU bins over [HU_LO, HU_LO + HU_BINS).
HU_LO = -1500
HU_BINS = 5500
#: CT local-SD histogram: bins of SD_BIN HU over [0, SD_BINS * SD_BIN).
SD_BIN = 0.1
SD_BINS = 5000
#: CT local-mean histogram: 1-HU bins over [MEAN_LO, MEAN_LO + MEAN_BINS).
MEAN_LO = -50
MEAN_BINS = 200
#: CT per-slice accumulators (columns of ``stats``).
CT_STATS = (
    "air_n", "air_sum", "air_sumsq", "ring_n", "ring_body_n", "body_n",
)  # fmt: skip
#: MR: the foreground is cut into this many blocks per axis for the non-uniformity.
MR_BLOCKS = 4
#: MR accumulators (columns of ``sums``).
MR_SUMS = (
    "fg_n", "fg_sum", "fg_sumsq", "bg_n", "bg_sum", "bg_sumsq", "all_sum", "all_sumsq",
    "all_xlogx",
)  # fmt: skip


@kernel()
def _find(parent: np.ndarray, i: int) -> int:
    """Root of ``i`` in a union-find forest, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@kernel()
def _runs(
    obj: np.ndarray, want: int, row: np.ndarray, start: np.ndarray, stop: np.ndarray,
    parent: np.ndarray,
) -> int:  # fmt: skip
    """Runs of pixels with ``(obj != 0) == want``, row by row, joined (union-find in
    ``parent``) with the 4-connected runs of the row above. Returns the number of runs."""
    rows, cols = obj.shape
    wanted = want != 0
    n = 0
    prev_lo, prev_hi = 0, 0
    for r in range(rows):
        first = n
        c = 0
        while c < cols:
            if (obj[r, c] != 0) != wanted:
                c += 1
                continue
            c0 = c
            while c < cols and (obj[r, c] != 0) == wanted:
                c += 1
            row[n] = r
            start[n] = c0
            stop[n] = c
            parent[n] = n
            j = prev_lo
            while j < prev_hi and stop[j] <= c0:
                j += 1
            while j < prev_hi and start[j] < c:  # overlaps [c0, c): same component
                a, b = _find(parent, n), _find(parent, j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
                j += 1
            n += 1
        prev_lo, prev_hi = first, n
    return n


@kernel()
def _largest_filled(obj: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> int:
    """``out`` = the largest 4-connected component of ``obj`` (uint8 0/1, (R, C)) after
    its holes are filled (a hole: pixels not joined to the image border through pixels
    outside ``obj``). A ring (scalp around a brain) so counts with what it encloses; a
    separate object (the table, noise specks) is dropped. ``scratch`` is int32
    (5, R * C // 2 + R + 1). Returns the size of ``out``.

    Run-length connected components: each row is cut into runs, and runs that overlap a
    run of the row above are merged (union-find), so each pixel is read about twice."""
    rows, cols = obj.shape
    row, start, stop, parent, flag = (
        scratch[0], scratch[1], scratch[2], scratch[3], scratch[4],
    )  # fmt: skip
    # 1. Fill: pieces of the complement that do not touch the border join the object.
    m = _runs(obj, 0, row, start, stop, parent)
    for i in range(m):
        flag[i] = 0
    for i in range(m):
        if row[i] == 0 or row[i] == rows - 1 or start[i] == 0 or stop[i] == cols:
            flag[_find(parent, i)] = 1
    out[:, :] = 1
    for i in range(m):
        if flag[_find(parent, i)] == 1:
            r = row[i]
            for c in range(start[i], stop[i]):
                out[r, c] = 0
    # 2. Keep the largest component of the filled object.
    n = _runs(out, 1, row, start, stop, parent)
    if n == 0:
        return 0
    for i in range(n):
        flag[i] = 0
    for i in range(n):
        flag[_find(parent, i)] += stop[i] - start[i]
    best = 0
    for i in range(n):  # roots are the smallest index of their component: raster order
        if flag[i] > flag[best]:
            best = i
    size = 0
    for i in range(n):
        if _find(parent, i) != best:
            r = row[i]
            for c in range(start[i], stop[i]):
                out[r, c] = 0
        else:
            size += stop[i] - start[i]
    return size


def fill_scratch(rows: int, cols: int) -> np.ndarray:
    """Scratch space for :func:`_largest_filled` on an (R, C) image."""
    return np.empty((5, rows * cols // 2 + rows + 1), np.int32)


@kernel()
def _integral(img: np.ndarray, mask: np.ndarray, s1: np.ndarray, s2: np.ndarray,
              sm: np.ndarray) -> None:  # fmt: skip
    """Summed-area tables ((R+1, C+1) float64) of ``img``, ``img**2`` and ``mask``."""
    rows, cols = img.shape
    for c in range(cols + 1):
        s1[0, c] = 0.0
        s2[0, c] = 0.0
        sm[0, c] = 0.0
    for r in range(rows):
        a1 = 0.0
        a2 = 0.0
        am = 0.0
        s1[r + 1, 0] = 0.0
        s2[r + 1, 0] = 0.0
        sm[r + 1, 0] = 0.0
        for c in range(cols):
            v = np.float64(img[r, c])
            a1 += v
            a2 += v * v
            am += np.float64(mask[r, c])
            s1[r + 1, c + 1] = s1[r, c + 1] + a1
            s2[r + 1, c + 1] = s2[r, c + 1] + a2
            sm[r + 1, c + 1] = sm[r, c + 1] + am


@kernel()
def _box(s: np.ndarray, r0: int, c0: int, r1: int, c1: int) -> float:
    """Sum over rows [r0, r1) and columns [c0, c1) from a summed-area table."""
    return float(s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0])


@kernel()
def _ct_slices(
    hu: np.ndarray,
    rad: int,
    step: int,
    gap: int,
    stats: np.ndarray,
    hist_hu: np.ndarray,
    hist_sd: np.ndarray,
    by_mean: np.ndarray,
) -> None:
    """Per slice: body mask, air outside it, FOV edge, HU and local mean/SD histograms.

    ``stats`` (K, 6) receives the accumulators of :data:`CT_STATS`; ``hist_hu`` (K, HU_BINS)
    body HU; ``hist_sd`` (K, SD_BINS) the local SD of windows of side ``2 rad + 1`` centred
    every ``step`` pixels, lying in the body, whose local mean is soft tissue (0-100 HU);
    ``by_mean`` (K, MEAN_BINS, 3), per 1-HU bin of the local mean of those windows, the
    count, sum and sum of squares of their centre pixels (minus the bin's lower edge), so
    that any band of local means can be summarised afterwards. Air pixels lie
    outside the body, above the padding level and at least ``gap`` pixels from it.
    """
    n_sl, rows, cols = hu.shape
    win = (2 * rad + 1) * (2 * rad + 1)
    for k in range(n_sl):
        img = hu[k]
        obj = np.empty((rows, cols), np.uint8)
        for r in range(rows):
            for c in range(cols):
                obj[r, c] = 1 if img[r, c] > CT_OBJECT_HU else 0
        bk = np.empty((rows, cols), np.uint8)
        _largest_filled(obj, bk, np.empty((5, rows * cols // 2 + rows + 1), np.int32))
        s1 = np.empty((rows + 1, cols + 1), np.float64)
        s2 = np.empty((rows + 1, cols + 1), np.float64)
        sm = np.empty((rows + 1, cols + 1), np.float64)
        _integral(img, bk, s1, s2, sm)
        air_n = 0.0
        air_sum = 0.0
        air_sq = 0.0
        ring_n = 0.0
        ring_body = 0.0
        body_n = 0.0
        for r in range(rows):
            for c in range(cols):
                v = img[r, c]
                valid = v > CT_PADDING_HU
                if bk[r, c] != 0:
                    body_n += 1.0
                    b = int(np.floor(v)) - HU_LO
                    b = min(max(b, 0), HU_BINS - 1)
                    hist_hu[k, b] += 1
                elif valid:
                    r0, r1 = max(r - gap, 0), min(r + gap + 1, rows)
                    c0, c1 = max(c - gap, 0), min(c + gap + 1, cols)
                    if _box(sm, r0, c0, r1, c1) == 0.0:
                        d = np.float64(v) + 1000.0  # shifted: no cancellation in the SD
                        air_n += 1.0
                        air_sum += d
                        air_sq += d * d
                if valid:
                    edge = r == 0 or r == rows - 1 or c == 0 or c == cols - 1
                    if not edge:
                        edge = (
                            img[r - 1, c] <= CT_PADDING_HU
                            or img[r + 1, c] <= CT_PADDING_HU
                            or img[r, c - 1] <= CT_PADDING_HU
                            or img[r, c + 1] <= CT_PADDING_HU
                        )
                    if edge:
                        ring_n += 1.0
                        if bk[r, c] != 0:
                            ring_body += 1.0
        for r in range(rad, rows - rad, step):
            for c in range(rad, cols - rad, step):
                r0, r1, c0, c1 = r - rad, r + rad + 1, c - rad, c + rad + 1
                if _box(sm, r0, c0, r1, c1) != win:
                    continue
                t1 = _box(s1, r0, c0, r1, c1)
                t2 = _box(s2, r0, c0, r1, c1)
                mean = t1 / win
                var = (t2 - t1 * mean) / (win - 1)
                sd = np.sqrt(var) if var > 0.0 else 0.0
                if 0.0 <= mean <= 100.0:
                    hist_sd[k, min(int(sd / SD_BIN), SD_BINS - 1)] += 1
                if MEAN_LO <= mean < MEAN_LO + MEAN_BINS:
                    b = int(np.floor(mean)) - MEAN_LO
                    d = np.float64(img[r, c]) - (MEAN_LO + b)
                    by_mean[k, b, 0] += 1.0
                    by_mean[k, b, 1] += d
                    by_mean[k, b, 2] += d * d
        stats[k, 0] = air_n
        stats[k, 1] = air_sum
        stats[k, 2] = air_sq
        stats[k, 3] = ring_n
        stats[k, 4] = ring_body
        stats[k, 5] = body_n


@kernel()
def _mr_masks(vol: np.ndarray, thr: float, body: np.ndarray) -> None:
    """Per slice: ``body`` = the filled largest component of ``vol > thr``."""
    n_sl, rows, cols = vol.shape
    for k in range(n_sl):
        obj = np.empty((rows, cols), np.uint8)
        for r in range(rows):
            for c in range(cols):
                obj[r, c] = 1 if vol[k, r, c] > thr else 0
        _largest_filled(
            obj, body[k], np.empty((5, rows * cols // 2 + rows + 1), np.int32)
        )


@kernel()
def _mr_stats(
    vol: np.ndarray,
    body: np.ndarray,
    gap: int,
    lo: float,
    inv_bin: float,
    hist_fg: np.ndarray,
    hist_bg: np.ndarray,
    sums: np.ndarray,
    blocks: np.ndarray,
) -> None:
    """One serial pass: foreground/background histograms and sums (:data:`MR_SUMS`),
    and per-block foreground sums ``blocks`` (MR_BLOCKS**3, 2) over (slab, row, col).

    Background pixels lie outside the body and at least ``gap`` pixels from it; histogram
    bin ``b`` holds values in ``[lo + b / inv_bin, lo + (b + 1) / inv_bin)``.
    """
    n_sl, rows, cols = vol.shape
    nb = hist_fg.shape[0]
    s1 = np.empty((rows + 1, cols + 1), np.float64)
    s2 = np.empty((rows + 1, cols + 1), np.float64)
    sm = np.empty((rows + 1, cols + 1), np.float64)
    for k in range(n_sl):
        img = vol[k]
        bk = body[k]
        _integral(img, bk, s1, s2, sm)
        slab = (k * MR_BLOCKS) // n_sl
        for r in range(rows):
            br = (r * MR_BLOCKS) // rows
            for c in range(cols):
                v = np.float64(img[r, c])
                b = int((v - lo) * inv_bin)
                b = min(max(b, 0), nb - 1)
                sums[6] += v
                sums[7] += v * v
                if v > 0.0:
                    sums[8] += v * np.log(v + 1e-16)
                if bk[r, c] != 0:
                    hist_fg[b] += 1
                    sums[0] += 1.0
                    sums[1] += v
                    sums[2] += v * v
                    i = (slab * MR_BLOCKS + br) * MR_BLOCKS + (c * MR_BLOCKS) // cols
                    blocks[i, 0] += 1.0
                    blocks[i, 1] += v
                    continue
                r0, r1 = max(r - gap, 0), min(r + gap + 1, rows)
                c0, c1 = max(c - gap, 0), min(c + gap + 1, cols)
                if _box(sm, r0, c0, r1, c1) == 0.0:
                    hist_bg[b] += 1
                    sums[3] += 1.0
                    sums[4] += v
                    sums[5] += v * v


@kernel()
def _row_sd(img: np.ndarray, out: np.ndarray) -> None:
    """Population standard deviation of every row of one image ((R, C) float32)."""
    rows, cols = img.shape
    for r in range(rows):
        t = 0.0
        tt = 0.0
        for c in range(cols):
            v = np.float64(img[r, c])
            t += v
            tt += v * v
        m = t / cols
        var = tt / cols - m * m
        out[r] = np.sqrt(var) if var > 0.0 else 0.0
