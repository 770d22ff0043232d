"""reorient: permute and flip voxel axes so the grid is closest to RAS or LPS axis order.

Targets name the world direction in which each voxel axis increases, in the order
(col, row, slice), which is NIfTI's (i, j, k) once written:

- ``RAS`` (default): col -> patient Right, row -> Anterior, slice -> Superior (NIfTI
  canonical). Written as NIfTI this is exactly nibabel's ``as_closest_canonical`` (tested on
  all 48 axis permutations/signs and on oblique grids).
- ``LPS``: col -> patient Left, row -> Posterior, slice -> Superior (DICOM's own frame; an
  axial stack with IOP ``1\\0\\0\\0\\1\\0`` sorted feet to head is already LPS).

Which voxel axis goes where follows nibabel's ``io_orientation``: the direction cosines are
replaced by the closest rotation (polar decomposition), then input axes are assigned, the
strongest first, to the world axis they are most parallel to, with the sign of that cosine.
Oblique grids therefore go to the *closest* orientation; nothing is resampled. The affine
becomes ``A' = A @ T``, ``T`` the index map of the permutation and reversals; a degenerate
affine (zero or parallel axes) fails the task (CLX-E130). A pure index permutation: exact,
dtype and the pending slope/intercept are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.errors import TransformFailedError
from clisonix_cli.transforms._declare import Op, Param
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._gather import contiguous_copy

TARGETS = ("RAS", "LPS")


def orientation(affine_lps: np.ndarray, target: str) -> list[tuple[int, int]]:
    """For each input voxel axis (S, R, C): its output axis and whether it is reversed.

    Parameters
    ----------
    affine_lps : (4, 4) ndarray
        Voxel index (s, r, c, 1) -> patient LPS mm.
    target : {"RAS", "LPS"}
        Target orientation (see the module docstring).

    Returns
    -------
    list of (int, int)
        ``(out_axis, sign)`` per input axis, ``sign`` -1 when the axis must be reversed.

    Raises
    ------
    TransformFailedError
        When the affine is degenerate (a zero or collinear column).
    """
    rzs = np.array(affine_lps, dtype=np.float64)[:3, :3]
    if target == "RAS":
        rzs[:2] = -rzs[:2]  # LPS -> RAS world axes
    zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
    if not np.all(np.isfinite(rzs)) or np.any(zooms == 0):
        raise TransformFailedError(
            f"reorient: the affine has a zero or non-finite axis (voxel sizes {zooms.tolist()} mm)"
            " - the stack has no usable geometry; drop reorient from the pipeline"
        )
    rs = rzs / zooms
    p, sv, qs = np.linalg.svd(rs, full_matrices=False)
    tol = sv.max() * 3 * np.finfo(sv.dtype).eps
    if np.any(sv <= tol):
        raise TransformFailedError(
            "reorient: two voxel axes of the affine are parallel (singular direction matrix)"
            " - the stack geometry is invalid; drop reorient from the pipeline"
        )
    rot = p @ qs
    result = [(0, 1)] * 3
    # Strongest input axes first, ties in axis order (nibabel.orientations.io_orientation).
    for in_ax in np.argsort(np.min(-(rot**2), axis=0), kind="stable"):
        col = rot[:, in_ax]
        world = int(np.argmax(np.abs(col)))
        # world axis x (R or L) is carried by col, y by row, z by slice: out axis = 2 - world
        result[int(in_ax)] = (2 - world, -1 if col[world] < 0 else 1)
        rot[world, :] = 0.0
    return result


def _index_map(shape: tuple[int, ...], orient: list[tuple[int, int]]) -> np.ndarray:
    """4x4 map from an output voxel index to the input voxel index."""
    t = np.zeros((4, 4))
    t[3, 3] = 1.0
    for in_ax, (out_ax, sign) in enumerate(orient):
        t[in_ax, out_ax] = float(sign)
        if sign < 0:
            t[in_ax, 3] = shape[in_ax] - 1
    return t


def _geometry(
    shape: tuple[int, ...], affine_lps: np.ndarray, params: Mapping[str, Any]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Output shape and affine of ``reorient`` for an input grid."""
    orient = orientation(affine_lps, params["target"])
    new_shape = [0, 0, 0]
    for in_ax, (out_ax, _) in enumerate(orient):
        new_shape[out_ax] = shape[in_ax]
    affine = np.asarray(affine_lps, dtype=np.float64) @ _index_map(shape, orient)
    return tuple(new_shape), affine


def apply(img: Image, *, target: str = "RAS") -> Image:
    """Permute and flip the axes of ``img`` to the closest ``target`` orientation."""
    orient = orientation(img.affine_lps, target)
    flipped = tuple(i for i, (_, sign) in enumerate(orient) if sign < 0)
    perm = [0, 0, 0]
    for in_ax, (out_ax, _) in enumerate(orient):
        perm[out_ax] = in_ax
    view = np.flip(img.vol, axis=flipped) if flipped else img.vol
    out = contiguous_copy(np.transpose(view, perm))
    _, affine = _geometry(img.vol.shape, img.affine_lps, {"target": target})
    return Image(vol=out, affine_lps=affine, slope=img.slope, intercept=img.intercept)


def reference(img: Image, *, target: str = "RAS") -> Image:
    """Numpy reference: fancy indexing on an explicit index grid; affine from world points.

    Every output voxel index is mapped to its input index with integer arithmetic, the
    voxels are gathered with ``np.take``-style fancy indexing, and the affine is solved from
    the world positions of output voxels (0,0,0), e_s, e_r and e_c.
    """
    orient = orientation(img.affine_lps, target)
    shape = img.vol.shape
    new_shape = [0, 0, 0]
    for in_ax, (out_ax, _) in enumerate(orient):
        new_shape[out_ax] = shape[in_ax]
    grids = np.meshgrid(*[np.arange(n) for n in new_shape], indexing="ij")
    src: list[np.ndarray] = []
    for in_ax, (out_ax, sign) in enumerate(orient):
        idx = grids[out_ax]
        src.append(shape[in_ax] - 1 - idx if sign < 0 else idx)
    vol = img.vol[src[0], src[1], src[2]]

    def world(out_index: tuple[int, int, int]) -> np.ndarray:
        in_index = np.ones(4)
        for in_ax, (out_ax, sign) in enumerate(orient):
            i = out_index[out_ax]
            in_index[in_ax] = shape[in_ax] - 1 - i if sign < 0 else i
        return np.asarray(img.affine_lps, dtype=np.float64) @ in_index

    origin = world((0, 0, 0))
    affine = np.eye(4)
    affine[:, 3] = origin
    for k, unit in enumerate(((1, 0, 0), (0, 1, 0), (0, 0, 1))):
        affine[:3, k] = (world(unit) - origin)[:3]
    return Image(
        vol=np.ascontiguousarray(vol),
        affine_lps=affine,
        slope=img.slope,
        intercept=img.intercept,
    )


# Exact: a pure index permutation on both sides (atol 0).
OP = Op(
    name="reorient",
    version=1,
    family="spatial",
    summary="Permute/flip voxel axes to the closest RAS or LPS orientation (no resampling).",
    params=(
        Param(
            "target",
            str,
            "Orientation of (col, row, slice): RAS (NIfTI canonical) or LPS (DICOM).",
            default="RAS",
            choices=TARGETS,
        ),
    ),
    apply=apply,
    reference=reference,
    atol=0.0,
    examples=({"target": "RAS"}, {"target": "LPS"}),
    geometry=_geometry,
)
