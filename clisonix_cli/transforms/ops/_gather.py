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


@kernel(parallel=True)
def _copy_flat(
    base: np.ndarray, off: int, ss: int, sr: int, sc: int, out: np.ndarray
) -> None:
    """out[s, r, c] = base[off + s*ss + r*sr + c*sc] (element strides), parallel over slices.

    ``base`` is the C-contiguous 1-D buffer the view lives in. A row whose step ``sc`` is
    +1 or -1 (a plain or a reversed row: flip, crop, LPS <-> RAS) is read through a
    contiguous 1-D slice with non-negative indices, so LLVM vectorises the copy (the
    generic strided form, with a signed index, cannot be: numba's negative-index check
    sits in the loop).
    """
    n_c = out.shape[2]
    for s in prange(out.shape[0]):
        for r in range(out.shape[1]):
            p = off + s * ss + r * sr
            o = out[s, r]
            if sc == 1:
                i = base[p : p + n_c]
                for c in range(n_c):
                    o[c] = i[c]
            elif sc == -1:
                i = base[p - n_c + 1 : p + 1]
                last = np.uint64(n_c - 1)  # unsigned: no negative-index check
                for c in range(n_c):
                    o[c] = i[last - np.uint64(c)]
            else:
                for c in range(n_c):
                    o[c] = base[p + c * sc]


def _flat_source(
    src: np.ndarray, bits: np.ndarray
) -> tuple[np.ndarray, int, list[int]] | None:
    """``src`` as (1-D bit buffer of its base array, element offset, element strides).

    None when the base is not a C-contiguous ndarray or the offsets do not fall on whole
    elements inside it (the caller then takes the generic kernel).
    """
    base = src.base
    item = src.itemsize
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    if base.nbytes % item or any(st % item for st in src.strides):
        return None
    delta = src.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    if delta % item:
        return None
    flat = base.reshape(-1).view(np.uint8).view(bits.dtype)
    off = delta // item
    strides = [st // item for st in src.strides]
    lo = off + sum(
        min(0, (n - 1) * st) for n, st in zip(src.shape, strides, strict=True)
    )
    hi = off + sum(
        max(0, (n - 1) * st) for n, st in zip(src.shape, strides, strict=True)
    )
    if lo < 0 or hi >= flat.shape[0]:
        return None
    return flat, off, strides


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
    out_bits = out.view(bits.dtype)
    flat = _flat_source(src, bits) if src.ndim == 3 else None
    if flat is not None:
        base, off, (ss, sr, sc) = flat
        _copy_flat(base, off, ss, sr, sc, out_bits)
        return
    _copy(bits, out_bits)


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
