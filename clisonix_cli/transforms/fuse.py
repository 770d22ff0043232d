"""Pointwise fusion: a run of intensity ops collapses into one pass over the volume.

Every fusable op (``rescale``, ``window``, ``clip``, ``normalize``, ``cast``: marked
*fusable* in ``clisonix ops``) maps a real voxel value ``x`` to::

    y = clip(a * x + b, lo, hi)          (+ a final rounding cast for integer outputs)

``normalize`` and ``cast:scale=fit`` first need whole-volume statistics of their input;
those come from a statistics pass that reads the *original* input through the maps composed
so far (nothing is materialised). Two such maps compose into one (:meth:`Clamp.then`)::

    a2 * clip(u, lo1, hi1) + b2 = clip(a2 * u + b2, a2*lo1 + b2, a2*hi1 + b2)  (bounds swap if a2 < 0)
    clip(clip(v, L1, H1), lo2, hi2) = clip(v, min(max(L1, lo2), hi2), max(min(H1, hi2), lo2))

(the second rule also covers disjoint intervals, which give a constant; ``a2 = 0`` gives a
constant). The input's pending modality rescale (``vol * slope + intercept``) is the first
map of every chain, so it is folded in for free. A chain costs one read of the input and
one write of the output, in its input and output dtypes (``rescale -> window ->
cast:dtype=uint8`` reads int16 and writes uint8), whatever its length. A rounding cast in
the middle of a chain is not affine: the chain is split there.

Precision: the fused kernel is parallel over chunks of ``CHUNK`` voxels and computes each
voxel in float64 (one multiply-add, two compares, one rounding), then stores once. float64
keeps the composed map exact to ~1e-16 relative (float32 would put ~1e-6 absolute error on
a window of HU values, where ``a * x`` and ``b`` nearly cancel, and would move integer
rounding); the pass is memory-bound, so float64 arithmetic costs little against float32
(measured: docs/ops-intensity.md). Fused and op-by-op runs agree within float32 rounding
(op by op rounds to float32 between ops; fused does not) and one integer step at exact
``.5`` ties (tested).

Statistics of 8- and 16-bit integer inputs (CT, MR: the usual stored values) come from one
histogram pass over the stored values (:func:`value_histogram`): the map and the mask are
then evaluated once per distinct value, moments summed over the distinct values (two-pass,
float64), extrema and percentiles read off the cumulative counts (the same order
statistics as a sort). Other dtypes take per-voxel kernels: mean and std from float64 sums
per slice of the values shifted by an estimate of the mean (a strided sample), extrema per
slice, and percentiles by selection among the selected stored values, gathered in a buffer
of the input dtype (no float64 copy of the volume). The maps are monotone, so the order
statistics of the mapped values are the mapped order statistics of the stored values (a
decreasing map reverses the order).

Determinism: pointwise results do not depend on the partition; histogram counts are exact
integers; per-voxel statistics are reduced per slice into fixed slots and summed in slice
order. None of them depends on the thread count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from clisonix_cli.transforms._declare import Op, kernel, prange
from clisonix_cli.transforms.image import Image

INF = math.inf

#: Integer output dtypes a pointwise chain may end with (name -> (min, max)).
INT_RANGES: dict[str, tuple[int, int]] = {
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
}

#: Voxels per parallel chunk of the fused map (256 KiB of float32: fits L2, balances).
CHUNK = 1 << 16

MASKS = ("all", "nonzero", "above")


@dataclass(frozen=True)
class Clamp:
    """The map ``y = min(max(a * x + b, lo), hi)`` on real values (NaN propagates)."""

    a: float = 1.0
    b: float = 0.0
    lo: float = -INF
    hi: float = INF

    def __call__(self, x: float) -> float:
        """Evaluate the map on one value (Python floats; used for statistics)."""
        y = self.a * x + self.b
        return min(max(y, self.lo), self.hi)

    @property
    def is_identity(self) -> bool:
        return self == Clamp()

    def then(self, nxt: Clamp) -> Clamp:
        """The composed map ``nxt(self(x))`` as one :class:`Clamp`.

        ``nxt.a * clip(u, lo, hi) + nxt.b = clip(nxt.a * u + nxt.b, ...)`` with the bounds
        mapped (swapped when ``nxt.a < 0``); two clips compose to one clip whose bounds are
        clamped into the outer interval (a disjoint pair gives a constant).
        """
        a2, b2 = nxt.a, nxt.b
        if a2 == 0.0:
            const = min(max(b2, nxt.lo), nxt.hi)
            return Clamp(0.0, const, const, const)
        a = a2 * self.a
        b = a2 * self.b + b2
        m_lo = a2 * self.lo + b2
        m_hi = a2 * self.hi + b2
        lo1, hi1 = (m_lo, m_hi) if a2 > 0 else (m_hi, m_lo)
        lo = min(max(lo1, nxt.lo), nxt.hi)
        hi = max(min(hi1, nxt.hi), nxt.lo)
        return Clamp(a, b, lo, hi)


@dataclass(frozen=True)
class PointStep:
    """What one pointwise op does, as :mod:`fuse` needs it.

    ``clamp`` maps real input values to the op's output values; ``dtype`` is the output
    dtype name (``float32`` or an :data:`INT_RANGES` key: round half to even, saturate,
    NaN -> 0); ``slope``/``intercept`` are the output's pending rescale (``cast:scale=fit``).
    """

    clamp: Clamp
    dtype: str = "float32"
    slope: float = 1.0
    intercept: float = 0.0
    #: For a step that is not a clamp map (a sigmoid, a lookup table): computes its output
    #: from the chain's input volume and the map composed so far; the chain restarts there.
    materialize: Callable[[np.ndarray, Clamp], np.ndarray] | None = None


@dataclass(frozen=True)
class Moments:
    """Count, mean and standard deviation (population, ddof=0) of the selected values."""

    count: int
    mean: float
    std: float


class PointContext:
    """The input of the next pointwise op: the original volume seen through a map.

    Ops call :meth:`moments`, :meth:`extrema` or :meth:`percentiles` to get statistics of
    their input values; NaN values are left out of every statistic.
    """

    def __init__(
        self,
        vol: np.ndarray,
        clamp: Clamp,
        display: Mapping[str, Any] | None = None,
    ) -> None:
        self.vol = vol
        self.clamp = clamp
        self.display = display  # the image's display attributes (the voi op reads them)
        self._hist: tuple[np.ndarray, np.ndarray] | None = None

    def _mask_args(self, mask: str, threshold: float) -> tuple[int, float]:
        return MASKS.index(mask), float(threshold)

    def _selected_values(
        self, mask: str, threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """For a <= 16-bit integer volume: the selected distinct stored values (ascending),
        their mapped values and their counts, from one histogram pass; None otherwise.

        The map and the mask are evaluated once per distinct value exactly as the
        per-voxel kernels evaluate them (float64 ``x * a + b``, then the two compares).
        """
        if self._hist is None:
            hist = value_histogram(self.vol)
            if hist is None:
                return None
            self._hist = hist
        values, counts = self._hist
        c = self.clamp
        v = values * c.a + c.b
        v = np.where(v < c.lo, c.lo, v)
        v = np.where(v > c.hi, c.hi, v)
        keep = ~np.isnan(v)
        if mask == "nonzero":
            keep &= v != 0.0
        elif mask == "above":
            keep &= v > float(threshold)
        return values[keep], v[keep], counts[keep]

    def moments(self, mask: str = "all", threshold: float = 0.0) -> Moments:
        """Mean and std of the (masked) values, float64 accumulation."""
        m, t = self._mask_args(mask, threshold)
        c = self.clamp
        sel = self._selected_values(mask, threshold)
        if sel is not None:
            _, v, cnt = sel
            count = int(cnt.sum())
            if count == 0:
                return Moments(0, 0.0, 0.0)
            w = cnt.astype(np.float64)
            mean = float(np.sum(w * v)) / count
            var = float(np.sum(w * (v - mean) ** 2)) / count  # two-pass
            return Moments(count, mean, math.sqrt(var))
        flat = self.vol.reshape(self.vol.shape[0], -1)
        shift = _shift_estimate(flat, c, m, t)
        parts = np.zeros((flat.shape[0], 3), dtype=np.float64)
        _moments(flat, c.a, c.b, c.lo, c.hi, m, t, shift, parts)
        n = float(parts[:, 0].sum())
        if n == 0:
            return Moments(0, 0.0, 0.0)
        s1 = float(parts[:, 1].sum()) / n
        s2 = float(parts[:, 2].sum()) / n
        var = max(s2 - s1 * s1, 0.0)
        return Moments(int(n), shift + s1, math.sqrt(var))

    def extrema(
        self, mask: str = "all", threshold: float = 0.0
    ) -> tuple[int, float, float]:
        """Count, min and max of the (masked) values (0, 0.0, 0.0 when none)."""
        m, t = self._mask_args(mask, threshold)
        c = self.clamp
        sel = self._selected_values(mask, threshold)
        if sel is not None:
            _, v, cnt = sel
            if not v.size:
                return 0, 0.0, 0.0
            return int(cnt.sum()), float(v.min()), float(v.max())
        flat = self.vol.reshape(self.vol.shape[0], -1)
        parts = np.zeros((flat.shape[0], 3), dtype=np.float64)
        _extrema(flat, c.a, c.b, c.lo, c.hi, m, t, parts)
        n = int(parts[:, 0].sum())
        if n == 0:
            return 0, 0.0, 0.0
        has = parts[:, 0] > 0
        return n, float(parts[has, 1].min()), float(parts[has, 2].max())

    def percentiles(
        self, qs: Sequence[float], mask: str = "all", threshold: float = 0.0
    ) -> tuple[float, ...] | None:
        """Percentiles (numpy's default ``linear`` method) of the (masked) values.

        The map is monotone, so the order statistics of the mapped values are the mapped
        order statistics of the stored values: the selected stored values are gathered
        into one buffer of the *input* dtype (no float64 copy) and partially sorted in place.
        Returns None when no value is selected.
        """
        m, t = self._mask_args(mask, threshold)
        c = self.clamp
        sel = self._selected_values(mask, threshold)
        if sel is not None:
            xs, _, cnt = sel
            n = int(cnt.sum())
            if n == 0:
                return None
            ends = np.cumsum(cnt)

            def kth(k: int) -> float:  # k-th smallest selected stored value
                return float(xs[int(np.searchsorted(ends, k, side="right"))])

        else:
            flat = self.vol.reshape(-1)
            buf = np.empty(flat.shape[0], dtype=flat.dtype)
            n = int(_gather(flat, c.a, c.b, c.lo, c.hi, m, t, buf))
            if n == 0:
                return None
            buf = buf[:n]

            def kth(k: int) -> float:
                return float(select_kth(buf, k))

        out = []
        for q in qs:
            h = (n - 1) * (q / 100.0)
            k = int(math.floor(h))
            k1 = min(k + 1, n - 1)
            frac = h - k
            if (
                c.a < 0
            ):  # decreasing map: the k-th smallest output is the k-th largest input
                k, k1 = n - 1 - k, n - 1 - k1
            lo_v = c(kth(k))
            hi_v = c(kth(k1))
            out.append(_lerp(lo_v, hi_v, frac))
        return tuple(out)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp`` (the ``linear`` percentile method), same rounding."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def _shift_estimate(flat: np.ndarray, c: Clamp, mask: int, thr: float) -> float:
    """A value near the mean (strided sample) to shift sums by: keeps the variance exact."""
    sample = flat.reshape(-1)[:: max(1, flat.size // 4096)].astype(np.float64)
    vals = np.clip(sample * c.a + c.b, c.lo, c.hi)
    vals = vals[~np.isnan(vals)]
    if mask == 1:
        vals = vals[vals != 0]
    elif mask == 2:
        vals = vals[vals > thr]
    return float(vals.mean()) if vals.size else 0.0


# --- kernels ------------------------------------------------------------------------------


@kernel()
def _mapv(x: float, a: float, b: float, lo: float, hi: float) -> float:
    """One value through the map (float64); NaN propagates."""
    v = x * a + b
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


_Real = TypeVar("_Real", float, np.floating[Any])


@kernel()
def widen(v: _Real, mn: _Real, mx: _Real) -> tuple[_Real, _Real]:
    """Running extrema: ``(mn, mx)`` widened to take in ``v``; NaN leaves both as they are."""
    if v < mn:
        mn = v
    if v > mx:
        mx = v
    return mn, mx


@kernel()
def _selected(v: float, mask: int, thr: float) -> bool:
    """Mask predicate on a mapped value: 0 all, 1 nonzero, 2 above ``thr``; never NaN."""
    if v != v:
        return False
    if mask == 1:
        return v != 0.0
    if mask == 2:
        return v > thr
    return True


@kernel(parallel=True)
def _map_float(
    src: np.ndarray, a: float, b: float, lo: float, hi: float, out: np.ndarray
) -> None:
    """1-D any numeric in, 1-D float out: out = clip(src * a + b, lo, hi) in float64."""
    n = src.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    for ch in prange(nchunks):
        start = ch * CHUNK
        stop = min(start + CHUNK, n)
        for i in range(start, stop):
            v = src[i] * a + b
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out[i] = v


@kernel(parallel=True)
def _map_int(
    src: np.ndarray, a: float, b: float, lo: float, hi: float, out: np.ndarray
) -> None:
    """1-D any numeric in, 1-D integer out: rint(clip(src * a + b, lo, hi)), NaN -> 0.

    ``lo``/``hi`` already include the output dtype's range (saturation).
    """
    n = src.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    for ch in prange(nchunks):
        start = ch * CHUNK
        stop = min(start + CHUNK, n)
        for i in range(start, stop):
            v = src[i] * a + b
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            if v != v:
                v = 0.0
            out[i] = np.rint(v)


@kernel(parallel=True)
def _moments(
    flat: np.ndarray,
    a: float,
    b: float,
    lo: float,
    hi: float,
    mask: int,
    thr: float,
    shift: float,
    parts: np.ndarray,
) -> None:
    """(S, N) in; parts[s] = (count, sum(v - shift), sum((v - shift)^2)) per slice."""
    for s in prange(flat.shape[0]):
        n = 0.0
        s1 = 0.0
        s2 = 0.0
        for i in range(flat.shape[1]):
            v = _mapv(flat[s, i], a, b, lo, hi)
            if _selected(v, mask, thr):
                d = v - shift
                n += 1.0
                s1 += d
                s2 += d * d
        parts[s, 0] = n
        parts[s, 1] = s1
        parts[s, 2] = s2


@kernel(parallel=True)
def _extrema(
    flat: np.ndarray,
    a: float,
    b: float,
    lo: float,
    hi: float,
    mask: int,
    thr: float,
    parts: np.ndarray,
) -> None:
    """(S, N) in; parts[s] = (count, min, max) of the selected mapped values per slice."""
    for s in prange(flat.shape[0]):
        n = 0.0
        mn = np.inf
        mx = -np.inf
        for i in range(flat.shape[1]):
            v = _mapv(flat[s, i], a, b, lo, hi)
            if _selected(v, mask, thr):
                n += 1.0
                mn, mx = widen(v, mn, mx)
        parts[s, 0] = n
        parts[s, 1] = mn
        parts[s, 2] = mx


@kernel()
def _gather(
    flat: np.ndarray,
    a: float,
    b: float,
    lo: float,
    hi: float,
    mask: int,
    thr: float,
    buf: np.ndarray,
) -> int:
    """Copy the stored values whose mapped value is selected into ``buf``; return count."""
    n = 0
    for i in range(flat.shape[0]):
        x = flat[i]
        v = _mapv(x, a, b, lo, hi)
        if _selected(v, mask, thr) and x == x:
            buf[n] = x
            n += 1
    return n


@kernel()
def select_kth(buf: np.ndarray, k: int) -> float:
    """k-th smallest of ``buf`` (partially reorders it in place; Hoare quickselect)."""
    left = 0
    right = buf.shape[0] - 1
    while right > left:
        mid = (left + right) // 2
        # median of three as the pivot keeps sorted and constant runs O(n)
        x0 = buf[left]
        x1 = buf[mid]
        x2 = buf[right]
        if x1 < x0:
            x0, x1 = x1, x0
        if x2 < x1:
            x1 = x2
            if x1 < x0:
                x1 = x0
        pivot = x1
        i = left
        j = right
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                t = buf[i]
                buf[i] = buf[j]
                buf[j] = t
                i += 1
                j -= 1
        if k <= j:
            right = j
        elif k >= i:
            left = i
        else:
            return float(buf[k])
    return float(buf[k])


@kernel(parallel=True)
def _histogram16(bits: np.ndarray, flip: int, counts: np.ndarray) -> None:
    """counts[p, j, bits[i] ^ flip] += 1 over part p of ``bits`` (1-D uint8/uint16).

    ``counts`` is (parts, 4, bins): each part is one parallel task, and four interleaved
    sub-histograms break the store-to-load chain of runs of equal values (CT air).
    """
    n = bits.shape[0]
    parts = counts.shape[0]
    step = (n + parts - 1) // parts
    step += (-step) % 4
    for p in prange(parts):
        c = counts[p]
        start = min(n, p * step)
        stop = min(n, start + step)
        i = start
        while i + 4 <= stop:
            c[0, bits[i] ^ flip] += 1
            c[1, bits[i + 1] ^ flip] += 1
            c[2, bits[i + 2] ^ flip] += 1
            c[3, bits[i + 3] ^ flip] += 1
            i += 4
        while i < stop:
            c[0, bits[i] ^ flip] += 1
            i += 1


def value_histogram(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct values and their counts of an 8- or 16-bit integer volume (one pass).

    Returns
    -------
    (values, counts) or None
        ``values`` float64 ascending, ``counts`` int64 (> 0); None for other dtypes and
        for 16-bit volumes too small to pay for the counters (under 2 MiB; the statistics
        then take the per-voxel kernels). Counts are exact integers, so the result does
        not depend on the number of threads.
    """
    dt = vol.dtype
    if dt.kind not in "iu" or dt.itemsize > 2 or not dt.isnative:
        return None
    import numba

    nbits = 8 * dt.itemsize
    bits = np.ascontiguousarray(vol).reshape(-1).view(f"u{dt.itemsize}")
    flip = 1 << (nbits - 1) if dt.kind == "i" else 0  # signed: bin = value - min
    ctype = np.int32 if bits.shape[0] < 2**31 else np.int64
    per_part = 4 * (1 << nbits) * np.dtype(ctype).itemsize
    # the counters may take at most half the input's bytes (peak memory): small 16-bit
    # volumes take the per-voxel kernels, which are fast enough there
    parts = min(
        int(numba.get_num_threads()), bits.shape[0] >> 16, bits.nbytes // (2 * per_part)
    )
    if bits.shape[0] and dt.itemsize == 1:
        parts = max(parts, 1)
    if parts < 1:
        return None
    counts = np.zeros((parts, 4, 1 << nbits), dtype=ctype)
    _histogram16(bits, flip, counts)
    total = counts.sum(axis=(0, 1), dtype=np.int64)
    idx = np.flatnonzero(total)
    return (idx - flip).astype(np.float64), total[idx]


# --- drivers ------------------------------------------------------------------------------


def map_volume(vol: np.ndarray, clamp: Clamp, dtype: str) -> np.ndarray:
    """Apply ``clamp`` (and the rounding cast of ``dtype``) to ``vol`` in one pass.

    Parameters
    ----------
    vol : (S, R, C) ndarray
        Stored values, any numeric dtype and strides (made contiguous if needed).
    clamp : Clamp
        The composed map from stored values to output values.
    dtype : str
        ``float32`` or a key of :data:`INT_RANGES`.

    Returns
    -------
    (S, R, C) ndarray of ``dtype``
        A new array, or ``vol`` itself when the map is the identity and the dtype matches.
    """
    if clamp.is_identity and vol.dtype == np.dtype(dtype):
        return vol
    src = np.ascontiguousarray(vol)
    if src.dtype == np.bool_:
        src = src.view(np.uint8)
    out = np.empty(src.shape, dtype=dtype)
    flat_in = src.reshape(-1)
    flat_out = out.reshape(-1)
    if dtype in INT_RANGES:
        dmin, dmax = INT_RANGES[dtype]
        c = clamp.then(Clamp(1.0, 0.0, float(dmin), float(dmax)))
        _map_int(flat_in, c.a, c.b, c.lo, c.hi, flat_out)
    else:
        c = clamp
        _map_float(flat_in, c.a, c.b, c.lo, c.hi, flat_out)
    return out


def start_clamp(img: Image) -> Clamp:
    """The map from ``img``'s stored values to its real values (the pending rescale)."""
    return Clamp(float(img.slope), float(img.intercept))


def run_pointwise(img: Image, steps: Sequence[tuple[Op, Mapping[str, Any]]]) -> Image:
    """Run consecutive pointwise ops as few passes as possible (one, unless a step casts
    to an integer dtype before the end of the chain, which ends a pass there).

    Parameters
    ----------
    img : Image
        Input image; its pending slope/intercept is folded into the first map.
    steps : sequence of (Op, params)
        Ops that declare ``pointwise``, with bound parameters (:meth:`Op.bind`).

    Returns
    -------
    Image
        Same affine; dtype, slope and intercept from the last step.
    """
    if not steps:
        return img
    clamp = start_clamp(img)
    vol = img.vol
    step = PointStep(clamp=Clamp())
    pending = False
    for k, (op, params) in enumerate(steps):
        if op.pointwise is None:
            raise ValueError(f"op '{op.name}' is not pointwise")
        step = op.pointwise(PointContext(vol, clamp, img.display), params)
        if step.materialize is not None:
            vol = step.materialize(vol, clamp)
            clamp = Clamp(step.slope, step.intercept)
            pending = False
            continue
        clamp = clamp.then(step.clamp)
        pending = True
        if step.dtype != "float32" and k < len(steps) - 1:
            # a rounding cast is not affine: materialise it, start a new chain
            vol = map_volume(vol, clamp, step.dtype)
            clamp = Clamp(step.slope, step.intercept)
            pending = False
    if pending:
        vol = map_volume(vol, clamp, step.dtype)
    return Image(vol, img.affine_lps, slope=step.slope, intercept=step.intercept)


class NeedsTheImage(Exception):
    """A pointwise step looked at its input: statistics (``normalize``, ``cast:fit``), the
    voxels themselves or the image's display attributes (``voi``)."""


class _Blind(PointContext):
    """A context with no image behind it: whatever looks at the image raises."""

    def __init__(self) -> None:  # no volume, no display attributes
        self.clamp = Clamp()
        self._hist = None

    def __getattr__(self, name: str) -> Any:
        raise NeedsTheImage  # ``vol``, ``display``: the image this context has not

    def moments(self, mask: str = "all", threshold: float = 0.0) -> Moments:
        raise NeedsTheImage

    def extrema(self, *args: Any, **kwargs: Any) -> Any:
        raise NeedsTheImage

    def percentiles(self, *args: Any, **kwargs: Any) -> Any:
        raise NeedsTheImage


def chain_output(
    steps: Sequence[tuple[Op, Mapping[str, Any]]],
) -> tuple[str, float, float] | None:
    """Output dtype, slope and intercept of a pointwise chain whose maps do not depend on
    the image; None when a step looks at its input (statistics, voxels, display
    attributes).

    Such a chain maps every voxel on its own: :func:`run_pointwise` on any piece of a
    volume gives that piece of its result, byte for byte, so the volume can be
    transformed slab by slab as it is read.
    """
    step = PointStep(clamp=Clamp())
    for op, params in steps:
        if op.pointwise is None:
            return None
        try:
            step = op.pointwise(_Blind(), params)
        except NeedsTheImage:
            return None
    return step.dtype, step.slope, step.intercept


def apply_one(op: Op, img: Image, params: Mapping[str, Any]) -> Image:
    """``apply`` of a single pointwise op: a chain of one."""
    return run_pointwise(img, [(op, params)])
