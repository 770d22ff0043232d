"""flip: reverse one voxel axis; the affine follows, so every voxel keeps its world position.

Output voxel ``i`` along the flipped axis ``j`` (``slice``, ``row`` or ``col``) is input
voxel ``n - 1 - i``, and::

    A'[:3, j] = -A[:3, j]
    A'[:3, 3] = A @ (n - 1 along j, 0 elsewhere, 1)

i.e. ``A' = A @ F`` with ``F`` the index map ``i -> n - 1 - i``: the image *looks* the same
in world space, only the storage order changes. A pure index move: exact for every dtype,
the pending slope/intercept are kept; flipping twice gives the input back, bytes and
affine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.transforms._declare import Op, Param
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._gather import contiguous_copy

AXES = ("slice", "row", "col")


def _geometry(
    shape: tuple[int, ...], affine_lps: np.ndarray, params: Mapping[str, Any]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Output shape (unchanged) and affine of ``flip`` for an input grid."""
    j = AXES.index(params["axis"])
    index_map = np.eye(4)
    index_map[j, j] = -1.0
    index_map[j, 3] = shape[j] - 1
    return tuple(shape), np.asarray(affine_lps, dtype=np.float64) @ index_map


def apply(img: Image, *, axis: str) -> Image:
    """Reverse ``axis`` (``slice``, ``row`` or ``col``) of ``img``; dtype and rescale kept."""
    j = AXES.index(axis)
    out = contiguous_copy(np.flip(img.vol, axis=j))
    _, affine = _geometry(img.vol.shape, img.affine_lps, {"axis": axis})
    return Image(vol=out, affine_lps=affine, slope=img.slope, intercept=img.intercept)


def reference(img: Image, *, axis: str) -> Image:
    """Numpy reference: ``np.flip`` and the affine rebuilt from the last voxel's position."""
    j = AXES.index(axis)
    n = img.vol.shape[j]
    affine = np.array(img.affine_lps, dtype=np.float64)
    last = np.zeros(4)
    last[j] = n - 1
    last[3] = 1.0
    affine[:, 3] = np.asarray(img.affine_lps, dtype=np.float64) @ last
    affine[:3, j] = -affine[:3, j]
    vol = np.flip(img.vol, axis=j).copy()
    return Image(vol=vol, affine_lps=affine, slope=img.slope, intercept=img.intercept)


# Exact: a pure index move, both sides copy the same voxels (atol 0).
OP = Op(
    name="flip",
    version=1,
    family="spatial",
    summary="Reverse one voxel axis; the affine keeps every voxel's world position.",
    params=(
        Param("axis", str, "Voxel axis to reverse: slice, row or col.", choices=AXES),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    examples=({"axis": "slice"}, {"axis": "row"}, {"axis": "col"}),
    geometry=_geometry,
)
