"""Slice geometry: normals, slice sorting, spacing checks and the (s, r, c) -> LPS affine.

Conventions (PS3.3 C.7.6.2.1.1, Image Plane module):

- (0020,0037) Image Orientation (Patient) holds two unit vectors: the first is the direction
  of increasing *column* index (along a row), the second that of increasing *row* index.
- (0028,0030) Pixel Spacing is [spacing between rows, spacing between columns]: its first
  value goes with the *second* orientation vector.
- The slice normal is cross(row direction, column direction); slices are sorted by
  dot(Image Position (Patient), normal), never by Instance Number.

Every affine here maps an index ``(s, r, c, 1)`` of a (S, R, C) volume to patient LPS mm:
column 0 is the step from one slice to the next, column 1 the step to the next row, column 2
the step to the next column, column 3 the position of voxel (0, 0, 0). The LPS -> RAS flip
happens only when writing NIfTI (:mod:`clisonix_cli.formats.nifti`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from clisonix_cli.dicom.model import Problem
from clisonix_cli.errors import GeometryError, InconsistentStackError

__all__ = [
    "ORIENTATION_TOL",
    "POSITION_TOL_MM",
    "DEFAULT_IOP",
    "cluster_positions",
    "contiguous_runs",
    "directions",
    "mosaic_affine",
    "mosaic_grid",
    "orientation_problem",
    "planar_positions",
    "slice_affine",
    "slice_normal",
    "spacing_problems",
]

POSITION_TOL_MM = 0.01  # positions closer than this along the normal are the same slice
ORIENTATION_TOL = (
    1e-3  # direction cosines that differ less than this are the same plane
)
_SPACING_REL_TOL = 0.01  # relative deviation of a slice step that counts as uneven
_SPACING_ABS_TOL_MM = 0.01


def directions(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Row direction (increasing column index) and column direction (increasing row index).

    Parameters
    ----------
    iop : sequence of 6 float
        (0020,0037) Image Orientation (Patient).

    Returns
    -------
    row_dir, col_dir : (3,) ndarray
        Unit vectors in LPS: ``row_dir`` is the step to the next column, ``col_dir`` the step
        to the next row.
    """
    arr = np.asarray(iop, dtype=np.float64)
    return arr[:3], arr[3:6]


def slice_normal(iop: Sequence[float]) -> np.ndarray:
    """Unit slice normal ``cross(row_dir, col_dir)`` of an orientation.

    Parameters
    ----------
    iop : sequence of 6 float
        Row and column direction cosines, as for :func:`directions`.

    Returns
    -------
    (3,) ndarray
        The unit normal in LPS.
    """
    row_dir, col_dir = directions(iop)
    normal = np.cross(row_dir, col_dir)
    norm = float(np.linalg.norm(normal))
    return normal / norm if norm > 0 else normal


def orientation_problem(iop: Sequence[float] | None) -> str | None:
    """Why an orientation is unusable (missing, not unit length, not orthogonal), or None."""
    if iop is None or len(iop) != 6:
        n = 0 if iop is None else len(iop)
        return (
            f"(0020,0037) 'Image Orientation (Patient)' has {n} values, expected 6 - the "
            "images carry no slice geometry (secondary capture, screenshot)"
        )
    row_dir, col_dir = directions(iop)
    nr, nc = float(np.linalg.norm(row_dir)), float(np.linalg.norm(col_dir))
    dot = float(np.dot(row_dir, col_dir))
    if abs(nr - 1) > 0.01 or abs(nc - 1) > 0.01 or abs(dot) > 0.01:
        return (
            f"(0020,0037) 'Image Orientation (Patient)' vectors have lengths {nr:.4f} and "
            f"{nc:.4f} and dot product {dot:.4f}, expected unit and orthogonal - the header "
            "is corrupt"
        )
    return None


def cluster_positions(
    dist: Sequence[float], tol: float = POSITION_TOL_MM
) -> list[list[int]]:
    """Group indices whose positions along the normal lie within ``tol`` of each other.

    Parameters
    ----------
    dist : sequence of float
        dot(IPP, normal) of each image.
    tol : float, optional
        Largest gap in mm between two images of the same slice position.

    Returns
    -------
    list of list of int
        Groups of indices into ``dist``, sorted by ascending position; within a group the
        indices keep their input order (stable).
    """
    order = sorted(range(len(dist)), key=lambda i: dist[i])
    groups: list[list[int]] = []
    last = -math.inf
    for i in order:
        if not groups or dist[i] - last > tol:
            groups.append([i])
        else:
            groups[-1].append(i)
        last = dist[i]
    for g in groups:
        g.sort()
    return groups


def _gap_mask(steps: np.ndarray) -> tuple[np.ndarray, float]:
    """Which steps are gaps (a whole multiple >= 2 of the median step), and that median."""
    med = float(np.median(steps))
    if med <= 0:
        return np.zeros(steps.shape, dtype=bool), med
    ratio = steps / med
    big = (np.round(ratio) >= 2) & (np.abs(ratio - np.round(ratio)) < 0.1)
    return big, med


def contiguous_runs(dist: Sequence[float]) -> list[list[int]]:
    """Split sorted slice positions into the runs between missing slices.

    Parameters
    ----------
    dist : sequence of float
        Sorted, distinct positions along the slice normal (mm).

    Returns
    -------
    list of list of int
        Index runs in order; one run holding every index when no slice is missing (the
        criterion of :func:`spacing_problems`: a step that is a whole multiple, 2 or more,
        of the median step, with at least 3 positions).
    """
    d = np.asarray(dist, dtype=np.float64)
    if d.size < 3:
        return [list(range(d.size))]
    big, _ = _gap_mask(np.diff(d))
    runs: list[list[int]] = [[0]]
    for i in range(1, d.size):
        if big[i - 1]:
            runs.append([])
        runs[-1].append(i)
    return runs


def spacing_problems(
    dist: Sequence[float],
    positions: np.ndarray | None = None,
    normal: np.ndarray | None = None,
) -> list[Problem]:
    """Missing slices, uneven spacing and oblique stepping of sorted slice positions.

    Parameters
    ----------
    dist : sequence of float
        Sorted, distinct positions along the slice normal (mm).
    positions : (S, 3) ndarray, optional
        The matching Image Position (Patient) vectors, to detect stepping that is not along
        the normal (gantry tilt), which gives a sheared affine.
    normal : (3,) ndarray, optional
        The slice normal, with ``positions``.

    Returns
    -------
    list of Problem
        Missing slices and uneven spacing are blocking (CLX-E121); a sheared stack is a
        warning.
    """
    out: list[Problem] = []
    d = np.asarray(dist, dtype=np.float64)
    if d.size < 2:
        return out
    steps = np.diff(d)
    if d.size >= 3:
        # a gap that is a whole multiple (>= 2) of the usual step: slices are missing
        big, med = _gap_mask(steps)
        if med > 0 and bool(big.any()):
            missing = int(sum(round(float(s) / med) - 1 for s in steps[big]))
            k = int(np.argmax(big))
            out.append(
                Problem(
                    InconsistentStackError.code,
                    f"{max(missing, 1)} missing slice(s): a gap of {float(steps[k]):.3f} mm "
                    f"after position {float(d[k]):.3f} mm where the spacing is {med:.3f} mm "
                    "- some files of the series were not exported; export the complete "
                    "series",
                    blocking=True,
                )
            )
            return out
    lo, hi = float(steps.min()), float(steps.max())
    mean = float(steps.mean())
    if hi - lo > max(_SPACING_ABS_TOL_MM, _SPACING_REL_TOL * abs(mean)):
        out.append(
            Problem(
                InconsistentStackError.code,
                f"uneven slice spacing: steps from {lo:.3f} to {hi:.3f} mm along the normal, "
                f"expected one spacing within {_SPACING_REL_TOL:.0%} - the series mixes "
                "slabs of different spacing; resample it or convert the slabs apart",
                blocking=True,
            )
        )
    if positions is not None and normal is not None and len(positions) >= 2:
        span = np.asarray(positions[-1], dtype=np.float64) - np.asarray(positions[0])
        along = float(np.dot(span, normal))
        across = float(np.linalg.norm(span - along * normal))
        if along != 0 and across / abs(along) > 1e-3:
            angle = math.degrees(math.atan2(across, abs(along)))
            out.append(
                Problem(
                    GeometryError.code,
                    f"slices step {angle:.2f} degrees off their normal (gantry tilt): the "
                    "affine is sheared, which NIfTI's qform cannot hold (the sform keeps it)",
                    blocking=False,
                )
            )
    return out


def slice_affine(
    iop: Sequence[float],
    pixel_spacing: Sequence[float],
    positions: np.ndarray,
    slice_spacing: float | None = None,
    step: Sequence[float] | None = None,
) -> np.ndarray:
    """The (s, r, c, 1) -> LPS affine of a stack of sorted slices.

    Parameters
    ----------
    iop : sequence of 6 float
        (0020,0037) Image Orientation (Patient).
    pixel_spacing : sequence of 2 float
        (0028,0030) Pixel Spacing = (spacing between rows, spacing between columns).
    positions : (S, 3) ndarray
        Image Position (Patient) of each slice, sorted along the normal.
    slice_spacing : float, optional
        Used as the slice step along the normal when there is a single slice.
    step : sequence of 3 float, optional
        The slice step vector to use instead of the mean (a stack kept whole across missing
        slices: ``--gaps keep``).

    Returns
    -------
    (4, 4) ndarray
        Column 0 = mean slice step vector, column 1 = column direction * row spacing, column
        2 = row direction * column spacing, column 3 = position of the first slice.
    """
    row_dir, col_dir = directions(iop)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    aff = np.eye(4)
    if step is not None:
        aff[:3, 0] = np.asarray(step, dtype=np.float64)
    elif len(pos) > 1:
        aff[:3, 0] = (pos[-1] - pos[0]) / (len(pos) - 1)
    else:
        dz = slice_spacing if slice_spacing and slice_spacing > 0 else 1.0
        aff[:3, 0] = slice_normal(iop) * dz
    aff[:3, 1] = col_dir * float(pixel_spacing[0])
    aff[:3, 2] = row_dir * float(pixel_spacing[1])
    aff[:3, 3] = pos[0]
    return aff


#: The orientation given to images that carry none (projection X-ray, ultrasound, secondary
#: captures): rows along +x, columns along +y (LPS), the normal along +z, as dcm2niix does.
DEFAULT_IOP: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def planar_positions(
    rows: int, cols: int, n_frames: int, pixel_spacing: Sequence[float]
) -> tuple[tuple[float, float, float], ...]:
    """Positions of the frames of a 2-D image without patient geometry.

    The image is centred on the origin in the :data:`DEFAULT_IOP` plane (as dcm2niix
    places such images) and its frames follow each other one unit apart along the normal;
    nothing here is a patient position.

    Parameters
    ----------
    rows, cols : int
        Matrix size.
    n_frames : int
        Frames stacked along the normal (1 for a single image).
    pixel_spacing : sequence of 2 float
        (spacing between rows, spacing between columns) in mm, or 1 for unit pixels.

    Returns
    -------
    tuple of (x, y, z)
        One LPS position per frame, in order.
    """
    ps_r, ps_c = float(pixel_spacing[0]), float(pixel_spacing[1])
    x0 = -(cols - 1) / 2.0 * ps_c
    y0 = -(rows - 1) / 2.0 * ps_r
    z0 = -(n_frames - 1) / 2.0
    return tuple((x0, y0, z0 + k) for k in range(n_frames))


def mosaic_grid(rows: int, cols: int, n_tiles: int) -> tuple[int, int, int]:
    """Tiles per side and tile size of a Siemens mosaic.

    Parameters
    ----------
    rows, cols : int
        Size of the mosaic frame.
    n_tiles : int
        NumberOfImagesInMosaic from the CSA header.

    Returns
    -------
    per_side, tile_rows, tile_cols : int
        The tiles sit in a square grid of ``ceil(sqrt(n_tiles))`` per side.

    Raises
    ------
    GeometryError
        The frame does not divide into that grid.
    """
    if n_tiles <= 0:
        raise GeometryError(
            f"NumberOfImagesInMosaic is {n_tiles}, expected > 0 - the Siemens CSA header is "
            "missing or corrupt"
        )
    per_side = math.ceil(math.sqrt(n_tiles))
    if rows // per_side < 2 or cols // per_side < 2:
        raise GeometryError(
            f"a {rows}x{cols} mosaic does not divide into a {per_side}x{per_side} grid of "
            f"{n_tiles} tiles - the CSA NumberOfImagesInMosaic does not match the image"
        )
    # Tiles that do not fill the mosaic exactly (a 256x256 mosaic of 7x7 tiles of 36x36):
    # the tile is the whole number of pixels that fit, the rest of the frame is padding,
    # as dcm2niix reads it.
    return per_side, rows // per_side, cols // per_side


def mosaic_affine(
    iop: Sequence[float],
    pixel_spacing: Sequence[float],
    ipp: Sequence[float],
    rows: int,
    cols: int,
    n_tiles: int,
    csa_normal: Sequence[float] | None,
    slice_spacing: float | None,
) -> np.ndarray:
    """The (s, r, c, 1) -> LPS affine of the slices tiled in one Siemens mosaic frame.

    Siemens stores the position of the whole mosaic frame, not of the first tile: the tile
    origin lies half the difference between mosaic and tile size further along the row and
    column directions. The tiles advance along the CSA SliceNormalVector, whose sign may be
    opposite to cross(row, col) (nibabel ``MosaicWrapper`` does the same).

    Parameters
    ----------
    iop : sequence of 6 float
        (0020,0037) Image Orientation (Patient).
    pixel_spacing : sequence of 2 float
        (0028,0030) Pixel Spacing.
    ipp : sequence of 3 float
        (0020,0032) Image Position (Patient) as stored (of the mosaic frame).
    rows, cols : int
        Size of the mosaic frame.
    n_tiles : int
        NumberOfImagesInMosaic.
    csa_normal : sequence of 3 float, optional
        CSA SliceNormalVector; its sign sets the slice direction.
    slice_spacing : float, optional
        Distance between slice centres: (0018,0088) Spacing Between Slices, else (0018,0050)
        Slice Thickness.

    Returns
    -------
    (4, 4) ndarray
        Affine of the (n_tiles, tile_rows, tile_cols) volume, tile 0 first.
    """
    _, tile_rows, tile_cols = mosaic_grid(rows, cols, n_tiles)
    row_dir, col_dir = directions(iop)
    ps_r, ps_c = float(pixel_spacing[0]), float(pixel_spacing[1])
    origin = (
        np.asarray(ipp, dtype=np.float64)
        + col_dir * ps_r * (rows - tile_rows) / 2.0
        + row_dir * ps_c * (cols - tile_cols) / 2.0
    )
    normal = slice_normal(iop)
    if csa_normal is not None and float(np.dot(np.asarray(csa_normal), normal)) < 0:
        normal = -normal
    step = slice_spacing if slice_spacing and slice_spacing > 0 else 1.0
    aff = np.eye(4)
    aff[:3, 0] = normal * step
    aff[:3, 1] = col_dir * ps_r
    aff[:3, 2] = row_dir * ps_c
    aff[:3, 3] = origin
    return aff
