"""crop_pad: centre the volume in a new (S, R, C) shape, cropping or padding each axis.

Per axis, input size ``n``, requested size ``m`` (``0`` keeps ``n``)::

    o = trunc((n - m) / 2)                 (rounded toward zero)
    out[i] = in[i + o]  when 0 <= i + o < n, else value
    A'[:3, 3] = A @ (o_s, o_r, o_c, 1)     (the kept voxels keep their world positions)

A crop drops ``(n - m) // 2`` voxels before and the rest after; a pad adds ``(m - n) // 2``
voxels before and the rest after, filled with ``value``. The axes of the affine are
unchanged.

``value`` is a real value (after the pending rescale, e.g. ``-1024`` for CT air); it is
stored as ``(value - intercept) / slope``, rounded half to even and clipped to the range of
an integer dtype. A pure index move: exact, dtype and the pending slope/intercept are kept.
Reference: ``np.pad(mode="constant")`` and slicing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.transforms._declare import Op, Param
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._gather import copy_into


def _whole_sizes(value: Any) -> str | None:
    """``check``: three whole numbers >= 0 (0 keeps that axis)."""
    values = value if isinstance(value, tuple) else (value,)
    if all(float(v).is_integer() and v >= 0 for v in values):
        return None
    return "must be whole numbers >= 0 (0 keeps that axis' size)"


def target_shape(
    shape: tuple[int, ...], size: tuple[float, ...]
) -> tuple[int, int, int]:
    """Requested (S, R, C) shape with ``0`` entries replaced by the input size."""
    return (
        int(size[0]) or shape[0],
        int(size[1]) or shape[1],
        int(size[2]) or shape[2],
    )


def offsets(shape: tuple[int, ...], new_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Input index of output voxel 0 along each axis: ``trunc((n - m) / 2)``."""
    out = []
    for n, m in zip(shape, new_shape, strict=True):
        out.append((n - m) // 2 if n >= m else -((m - n) // 2))
    return (out[0], out[1], out[2])


def stored_value(
    value: float, dtype: np.dtype[Any], slope: float, intercept: float
) -> Any:
    """The stored voxel value whose real value is ``value``, in ``dtype``."""
    raw = (value - intercept) / slope if slope != 0.0 else 0.0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return dtype.type(min(max(np.rint(raw), info.min), info.max))
    if dtype == np.bool_:
        return np.bool_(raw != 0.0)
    return dtype.type(raw)


def _geometry(
    shape: tuple[int, ...], affine_lps: np.ndarray, params: Mapping[str, Any]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Output shape and affine of ``crop_pad`` for an input grid."""
    new_shape = target_shape(shape, params["shape"])
    o = offsets(shape, new_shape)
    affine = np.array(affine_lps, dtype=np.float64)
    affine[:, 3] = affine @ np.array([o[0], o[1], o[2], 1.0])
    return new_shape, affine


def apply(
    img: Image, *, shape: tuple[float, float, float], value: float = 0.0
) -> Image:
    """Crop or pad ``img`` to ``shape`` (centred); dtype and rescale kept."""
    vol = img.vol
    new_shape, affine = _geometry(vol.shape, img.affine_lps, {"shape": shape})
    o = offsets(vol.shape, new_shape)
    fill = stored_value(value, vol.dtype, img.slope, img.intercept)
    src: list[slice] = []
    dst: list[slice] = []
    for n, m, k in zip(vol.shape, new_shape, o, strict=True):
        lo = max(k, 0)
        hi = min(n, m + k)
        src.append(slice(lo, hi))
        dst.append(slice(lo - k, hi - k))
    out = np.empty(new_shape, dtype=vol.dtype)
    covered = all(
        d.start == 0 and d.stop == m for d, m in zip(dst, new_shape, strict=True)
    )
    if not covered:
        out.fill(fill)
    copy_into(vol[tuple(src)], out[tuple(dst)])
    return Image(vol=out, affine_lps=affine, slope=img.slope, intercept=img.intercept)


def reference(
    img: Image, *, shape: tuple[float, float, float], value: float = 0.0
) -> Image:
    """Numpy reference: ``np.pad(mode="constant")`` then centred slicing, axis by axis."""
    vol = img.vol
    fill = stored_value(value, vol.dtype, img.slope, img.intercept)
    origin_shift = np.zeros(3)
    for axis in range(3):
        n = vol.shape[axis]
        m = int(shape[axis]) or n
        if m > n:
            before = (m - n) // 2
            pad = [(0, 0)] * 3
            pad[axis] = (before, m - n - before)
            vol = np.pad(vol, pad, mode="constant", constant_values=fill)
            origin_shift[axis] = -before
        elif m < n:
            start = (n - m) // 2
            vol = np.take(vol, np.arange(start, start + m), axis=axis)
            origin_shift[axis] = start
    affine = np.array(img.affine_lps, dtype=np.float64)
    affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ origin_shift
    return Image(
        vol=np.ascontiguousarray(vol),
        affine_lps=affine,
        slope=img.slope,
        intercept=img.intercept,
    )


# Exact: a pure index move plus a constant fill computed by the same function (atol 0).
OP = Op(
    name="crop_pad",
    version=1,
    family="spatial",
    summary="Centre the volume in a new (S, R, C) shape: crop or pad each axis.",
    params=(
        Param(
            "shape",
            tuple,
            "Output size along (S, R, C) in voxels; 0 keeps that axis.",
            unit="voxels",
            check=_whole_sizes,
        ),
        Param(
            "value",
            float,
            "Real value (after the pending rescale) of padded voxels, e.g. -1024 for CT air.",
            default=0.0,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    examples=(
        {"shape": (8.0, 8.0, 8.0)},
        {"shape": (0.0, 5.0, 13.0), "value": -1024.0},
        {"shape": (3.0, 0.0, 0.0), "value": 7.5},
    ),
    geometry=_geometry,
)
