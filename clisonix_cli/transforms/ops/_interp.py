"""Separable linear and nearest-neighbour resampling on axis-aligned grids.

Both ``resample`` and ``resize`` map output voxel ``o`` along an axis to the input
coordinate ``x = o * zoom`` (voxel centres aligned at 0) or ``x = (o + 0.5) * zoom - 0.5``
(voxel edges aligned, ``half=True``), ``zoom`` being input voxels per output voxel. With
``mode="nearest"`` (scipy.ndimage) the coordinate is clamped to ``[0, n - 1]``:

- linear: ``i0 = floor(x)``, ``i1 = min(i0 + 1, n - 1)``, ``t = x - i0``, value
  ``v[i0] * (1 - t) + v[i1] * t``; applied axis by axis, which is trilinear interpolation.
- nearest: ``floor(x + 0.5)`` (halves round up, as scipy's order 0).

Tables (indices and weights) are computed in float64 with numpy, once per axis; the kernels
do float32 multiply-adds only. Axes are processed from the most shrinking to the most
growing, so the intermediate volumes stay small; an axis whose table is the identity is
skipped. Every output voxel goes through the same operations whatever the thread count.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import kernel, prange
from clisonix_cli.transforms.ops._gather import as_bits


@kernel(parallel=True)
def _lerp_slices(
    src: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
    out: np.ndarray,
) -> None:
    """float32 (S, R, C) -> (S', R, C) along slices; tables of length S'."""
    for s in prange(out.shape[0]):
        a = i0[s]
        b = i1[s]
        u = w0[s]
        v = w1[s]
        for r in range(out.shape[1]):
            ra = src[a, r]
            rb = src[b, r]
            o = out[s, r]
            for c in range(out.shape[2]):
                o[c] = ra[c] * u + rb[c] * v


@kernel(parallel=True)
def _lerp_rows(
    src: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
    out: np.ndarray,
) -> None:
    """float32 (S, R, C) -> (S, R', C) along rows; tables of length R'."""
    for s in prange(out.shape[0]):
        for r in range(out.shape[1]):
            a = i0[r]
            b = i1[r]
            u = w0[r]
            v = w1[r]
            ra = src[s, a]
            rb = src[s, b]
            o = out[s, r]
            for c in range(out.shape[2]):
                o[c] = ra[c] * u + rb[c] * v


@kernel(parallel=True)
def _lerp_cols(
    src: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
    out: np.ndarray,
) -> None:
    """float32 (S, R, C) -> (S, R, C') along columns; tables of length C'."""
    for s in prange(out.shape[0]):
        for r in range(out.shape[1]):
            row = src[s, r]
            o = out[s, r]
            for c in range(out.shape[2]):
                o[c] = row[i0[c]] * w0[c] + row[i1[c]] * w1[c]


@kernel(parallel=True)
def _take(
    src: np.ndarray, i_s: np.ndarray, i_r: np.ndarray, i_c: np.ndarray, out: np.ndarray
) -> None:
    """Any dtype: out[s, r, c] = src[i_s[s], i_r[r], i_c[c]] (nearest-neighbour gather)."""
    for s in prange(out.shape[0]):
        a = i_s[s]
        for r in range(out.shape[1]):
            row = src[a, i_r[r]]
            o = out[s, r]
            for c in range(out.shape[2]):
                o[c] = row[i_c[c]]


def coordinates(n_out: int, zoom: float, *, half: bool) -> np.ndarray:
    """Input coordinate (float64) of each output voxel centre along one axis."""
    o = np.arange(n_out, dtype=np.float64)
    if half:
        return (o + 0.5) * zoom - 0.5
    return o * zoom


def linear_table(
    n_in: int, n_out: int, zoom: float, *, half: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``i0, i1`` (intp) and weights ``1 - t, t`` (float32) for one axis."""
    x = np.clip(coordinates(n_out, zoom, half=half), 0.0, n_in - 1.0)
    i0 = np.floor(x).astype(np.intp)
    t = x - i0
    i1 = np.minimum(i0 + 1, n_in - 1).astype(np.intp)
    return i0, i1, (1.0 - t).astype(np.float32), t.astype(np.float32)


def nearest_table(n_in: int, n_out: int, zoom: float, *, half: bool) -> np.ndarray:
    """Index (intp) of the nearest input voxel for each output voxel along one axis."""
    x = coordinates(n_out, zoom, half=half)
    return np.clip(np.floor(x + 0.5), 0, n_in - 1).astype(np.intp)


def _is_identity(n_in: int, n_out: int, zoom: float) -> bool:
    """Whether an axis maps every output voxel onto the input voxel of the same index."""
    return n_in == n_out and zoom == 1.0


_PASSES = (_lerp_slices, _lerp_rows, _lerp_cols)


def linear(
    vol: np.ndarray,
    shape: tuple[int, int, int],
    zooms: tuple[float, float, float],
    *,
    half: bool,
) -> np.ndarray:
    """Linearly resample a float32 (S, R, C) volume onto ``shape``, axis by axis.

    Parameters
    ----------
    vol : (S, R, C) ndarray of float32
        C-contiguous real values.
    shape : tuple of int
        Output (S', R', C').
    zooms : tuple of float
        Input voxels per output voxel along (S, R, C).
    half : bool
        Align voxel edges (``(o + 0.5) * zoom - 0.5``) instead of voxel centres.

    Returns
    -------
    (S', R', C') ndarray of float32
        A new C-contiguous array (never ``vol`` itself).
    """
    axes = [a for a in range(3) if not _is_identity(vol.shape[a], shape[a], zooms[a])]
    # Most shrinking axis first: the later passes then work on smaller volumes.
    axes.sort(key=lambda a: (shape[a] / max(vol.shape[a], 1), a))
    cur = vol
    for a in axes:
        i0, i1, w0, w1 = linear_table(vol.shape[a], shape[a], zooms[a], half=half)
        nxt_shape = list(cur.shape)
        nxt_shape[a] = shape[a]
        nxt = np.empty(nxt_shape, dtype=np.float32)
        if nxt.size:
            _PASSES[a](cur, i0, i1, w0, w1, nxt)
        cur = nxt
    return cur if cur is not vol else vol.copy()


def nearest(
    vol: np.ndarray,
    shape: tuple[int, int, int],
    zooms: tuple[float, float, float],
    *,
    half: bool,
) -> np.ndarray:
    """Nearest-neighbour resample of any-dtype (S, R, C) ``vol`` onto ``shape``.

    Voxels are moved as raw bits (see :func:`_gather.as_bits`): exact for every dtype.
    """
    tables = [
        nearest_table(vol.shape[a], shape[a], zooms[a], half=half) for a in range(3)
    ]
    src = vol if vol.dtype.isnative else vol.astype(vol.dtype.newbyteorder("="))
    out = np.empty(shape, dtype=src.dtype)
    bits = as_bits(src)
    if out.size and bits is not None:
        _take(bits, tables[0], tables[1], tables[2], out.view(bits.dtype))
    elif out.size:
        out[...] = src[np.ix_(tables[0], tables[1], tables[2])]
    return out
