"""Pure index moves shared by flip, reorient and crop_pad: a strided view copied into place.

These ops only move voxels: the output is a numpy view of the input (reversed, permuted or
sliced axes, any strides) copied into a contiguous array of the same dtype, so the result
is exact whatever the dtype and the pending slope/intercept travel unchanged.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import kernel, prange


@kernel(parallel=True)
def _copy(src: np.ndarray, out: np.ndarray) -> None:
    """Same-shape (S, R, C) arrays, any strides: out[...] = src[...], parallel over slices."""
    for s in prange(out.shape[0]):
        for r in range(out.shape[1]):
            o = out[s, r]  # 1-D row views: strides looked up once per row
            i = src[s, r]
            for c in range(out.shape[2]):
                o[c] = i[c]


def copy_into(src: np.ndarray, out: np.ndarray) -> None:
    """Copy the (S, R, C) view ``src`` into ``out`` (same shape and dtype, any strides).

    The kernel copies bits: both arrays are viewed as unsigned integers of the same
    width, so one compiled kernel serves every dtype of that width (fewer compilations).
    Empty arrays are skipped; other layouts (non-native byte order, 16-byte items) take
    numpy's copy.
    """
    if src.shape != out.shape or src.dtype != out.dtype:
        raise ValueError(
            f"copy_into: {src.shape}/{src.dtype} vs {out.shape}/{out.dtype}"
        )
    if not src.size:
        return
    bits = as_bits(src)
    if bits is None or not out.dtype.isnative:
        np.copyto(out, src)
        return
    if src.flags.c_contiguous and out.flags.c_contiguous:
        np.copyto(out, src)  # a plain memcpy
        return
    _copy(bits, out.view(bits.dtype))


_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def as_bits(vol: np.ndarray) -> np.ndarray | None:
    """``vol`` viewed as unsigned integers of its item size (no copy), or None.

    None for non-native byte orders and item sizes other than 1, 2, 4 or 8 bytes. Moving
    these bits is exact for every dtype, NaN payloads and signed zeros included.
    """
    bits = _BITS.get(vol.dtype.itemsize)
    if bits is None or not vol.dtype.isnative:
        return None
    return vol.view(bits)


def contiguous_copy(src: np.ndarray) -> np.ndarray:
    """Return a new C-contiguous array with the values of the (S, R, C) view ``src``."""
    out = np.empty(src.shape, dtype=src.dtype)
    copy_into(src, out)
    return out
