"""Real voxel values for the value-using spatial and filter ops.

The real value of a voxel is ``vol * slope + intercept`` (the pending modality rescale,
PS3.3 C.11.1). Interpolating and filtering ops work on real values: they fold the rescale
in once, here, as contiguous float32, and return ``slope=1, intercept=0``. The fold is
computed in float64 and rounded once to float32, in the kernel and in the reference alike,
so both start from bit-identical values.
"""

from __future__ import annotations

import numpy as np

from clisonix_cli.transforms._declare import kernel, prange
from clisonix_cli.transforms.image import Image


@kernel(parallel=True)
def _fold(vol: np.ndarray, slope: float, intercept: float, out: np.ndarray) -> None:
    """Any numeric (S, R, C) in, preallocated float32 out: out = f32(vol * slope + intercept)."""
    for s in prange(vol.shape[0]):
        for r in range(vol.shape[1]):
            for c in range(vol.shape[2]):
                out[s, r, c] = vol[s, r, c] * slope + intercept


def real_f32(img: Image) -> np.ndarray:
    """Return the real voxel values of ``img`` as a C-contiguous float32 (S, R, C) array.

    Parameters
    ----------
    img : Image
        Input image; ``vol`` may have any numeric dtype and any strides.

    Returns
    -------
    (S, R, C) ndarray of float32
        ``vol * slope + intercept`` computed in float64, rounded once to float32. When the
        volume is already float32 with slope 1 and intercept 0 it is returned as is (made
        contiguous if needed), without a copy.
    """
    vol = img.vol
    if vol.dtype == np.float32 and img.slope == 1.0 and img.intercept == 0.0:
        return np.ascontiguousarray(vol)
    out = np.empty(vol.shape, dtype=np.float32)
    _fold(vol, float(img.slope), float(img.intercept), out)
    return out


def real_f32_reference(img: Image) -> np.ndarray:
    """Numpy twin of :func:`real_f32` (same float64 arithmetic, one rounding to float32)."""
    return (img.vol.astype(np.float64) * img.slope + img.intercept).astype(np.float32)


def with_real(
    img: Image, vol: np.ndarray, affine_lps: np.ndarray | None = None
) -> Image:
    """New :class:`Image` holding real values: ``slope=1, intercept=0``, optional new affine."""
    return Image(
        vol=vol,
        affine_lps=img.affine_lps if affine_lps is None else affine_lps,
        slope=1.0,
        intercept=0.0,
    )
