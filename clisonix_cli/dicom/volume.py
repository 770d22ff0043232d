"""Load one indexed stack as a volume: stored values plus the (s, r, c) -> LPS affine.

Nothing is parsed again: the :class:`~clisonix_cli.dicom.model.Stack` from the scan carries the
file order, pixel layout (offsets of native pixel data), positions, orientation, spacing and
rescale values. Pixels come from :func:`clisonix_cli.dicom.pixels.read_frames`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.geometry import mosaic_affine, mosaic_grid, slice_affine
from clisonix_cli.dicom.model import Stack, StackGeometry, Volume
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.errors import (
    ClisonixError,
    GeometryError,
    InconsistentStackError,
    InputError,
    all_errors,
)

__all__ = ["load_stack", "stack_label", "unpack_mosaic"]


def stack_label(stack: Stack) -> str:
    """How messages name a stack: series number, stack key and the folder of its files."""
    folder = (
        stack.files[0].rsplit("/", 1)[0]
        if stack.files and "/" in stack.files[0]
        else "."
    )
    num = stack.series_number if stack.series_number is not None else "?"
    return f"{folder} (series {num}, stack {stack.stack_key})"


def _error_class(code: str) -> type[InputError]:
    for cls in all_errors():
        if cls.code == code and issubclass(cls, InputError):
            return cls
    return InputError


def unpack_mosaic(frame: np.ndarray, n_tiles: int) -> np.ndarray:
    """Cut a Siemens mosaic frame into its tiles.

    Parameters
    ----------
    frame : (R, C) ndarray
        The mosaic as stored.
    n_tiles : int
        NumberOfImagesInMosaic; the tiles fill a ``ceil(sqrt(n))`` square grid row by row.

    Returns
    -------
    (n_tiles, R / m, C / m) ndarray
        Tile ``k`` is grid row ``k // m``, grid column ``k % m``.
    """
    per_side, tile_rows, tile_cols = mosaic_grid(
        frame.shape[0], frame.shape[1], n_tiles
    )
    tiles = frame.reshape(per_side, tile_rows, per_side, tile_cols).transpose(
        0, 2, 1, 3
    )
    return np.ascontiguousarray(
        tiles.reshape(per_side * per_side, tile_rows, tile_cols)[:n_tiles]
    )


def _read_entries(root: Path, stack: Stack) -> list[np.ndarray]:
    """One (R, C) frame per entry of ``stack.files``, each file opened once."""
    out: list[np.ndarray | None] = [None] * len(stack.files)
    if stack.frames:
        by_file: dict[str, list[int]] = defaultdict(list)
        for i, rel in enumerate(stack.files):
            by_file[rel].append(i)
        for rel in sorted(by_file):
            idx = by_file[rel]
            info = stack.pixels[idx[0]] if stack.pixels else None
            arr = read_frames(
                root / rel, frames=[stack.frames[i] for i in idx], info=info, label=rel
            )
            for k, i in enumerate(idx):
                out[i] = arr[k]
    else:
        for i, rel in enumerate(stack.files):
            info = stack.pixels[i] if stack.pixels else None
            arr = read_frames(root / rel, frames=[0], info=info, label=rel)
            out[i] = arr[0]
    return [a for a in out if a is not None]


def _check_frames(
    frames: list[np.ndarray], stack: Stack, shape: tuple[int, int]
) -> None:
    for rel, f in zip(stack.files, frames, strict=True):
        if f.shape != shape:
            raise InconsistentStackError(
                f"{rel}: frame is {f.shape[0]}x{f.shape[1]}, expected {shape[0]}x{shape[1]} "
                f"like the rest of {stack_label(stack)} - the file changed since the scan; "
                "scan again"
            )
        if f.dtype != frames[0].dtype:
            raise InconsistentStackError(
                f"{rel}: stored values are {f.dtype}, expected {frames[0].dtype} like the "
                f"rest of {stack_label(stack)} - mixed pixel formats in one stack"
            )


def _rescale(
    data: np.ndarray, geo: StackGeometry, per_slice: int
) -> tuple[np.ndarray, float, float]:
    """One slope/intercept for the whole stack, or float32 real values when they differ.

    ``per_slice`` is how many leading-axis entries of ``data`` share one rescale entry
    (mosaic tiles share their file's).
    """
    pairs = set(geo.rescale)
    if len(pairs) <= 1:
        slope, inter = next(iter(pairs)) if pairs else (1.0, 0.0)
        return data, float(slope), float(inter)
    slopes = np.repeat(
        np.asarray([p[0] for p in geo.rescale], dtype=np.float64), per_slice
    )
    inters = np.repeat(
        np.asarray([p[1] for p in geo.rescale], dtype=np.float64), per_slice
    )
    flat = data.reshape(-1, *data.shape[-2:])
    real = (flat * slopes[:, None, None] + inters[:, None, None]).astype(np.float32)
    return real.reshape(data.shape), 1.0, 0.0


def load_stack(root: Path, stack: Stack) -> Volume:
    """Read a stack's pixels and build its affine.

    Parameters
    ----------
    root : Path
        The scan root (``stack.files`` are relative to it).
    stack : Stack
        A stack from :func:`clisonix_cli.dicom.index.scan`.

    Returns
    -------
    Volume
        ``data`` (S, R, C) or (T, S, R, C) stored values (float32 real values with slope 1,
        intercept 0 when slices disagree on rescaling), ``affine_lps`` mapping
        ``(s, r, c, 1)`` to LPS mm, and sidecar-safe ``meta``.

    Raises
    ------
    GeometryError
        No usable geometry (no positions or orientation, bad mosaic header).
    InconsistentStackError
        Missing slices, uneven spacing, uneven repeats, or files changed since the scan.
    InputError
        Any pixel reading error of :func:`~clisonix_cli.dicom.pixels.read_frames`.
    """
    label = stack_label(stack)
    for prob in stack.problems:
        if prob.blocking:
            raise _error_class(prob.code)(f"{label}: {prob.message}")
    geo = stack.geometry
    if geo is None:
        raise GeometryError(
            f"{label}: the scan found no usable geometry for this stack"
        )
    if len(geo.positions) != len(stack.files) or len(geo.rescale) != len(stack.files):
        raise InconsistentStackError(
            f"{label}: {len(geo.positions)} positions for {len(stack.files)} files - the stack "
            "record is inconsistent; scan again"
        )
    try:
        frames = _read_entries(root, stack)
    except ClisonixError:
        raise
    except OSError as exc:
        raise InputError(f"{label}: cannot read pixel data ({exc.strerror})") from None
    if not frames:
        raise InconsistentStackError(f"{label}: the stack holds no images")

    if stack.kind == "mosaic":
        data, affine = _mosaic_volume(stack, geo, frames)
        per_slice = stack.n_slices
    else:
        _check_frames(frames, stack, (stack.rows, stack.cols))
        s, t = stack.n_slices, stack.n_volumes
        if s * t != len(frames):
            raise InconsistentStackError(
                f"{label}: {len(frames)} images for {t} volume(s) of {s} slices"
            )
        data = np.stack(frames)
        if t > 1:
            data = data.reshape(t, s, stack.rows, stack.cols)
        affine = slice_affine(
            geo.orientation,
            geo.pixel_spacing,
            np.asarray(geo.positions[:s], dtype=np.float64),
            geo.slice_spacing,
        )
        per_slice = 1
    data, slope, inter = _rescale(data, geo, per_slice)
    return Volume(
        data=data,
        affine_lps=affine,
        slope=slope,
        intercept=inter,
        meta=_meta(stack, data, affine),
    )


def _mosaic_volume(
    stack: Stack, geo: StackGeometry, frames: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    label = stack_label(stack)
    first = stack.pixels[0] if stack.pixels else None
    full = (first.rows, first.cols) if first is not None else frames[0].shape
    _check_frames(frames, stack, (int(full[0]), int(full[1])))
    n = geo.mosaic_tiles
    try:
        vols = [unpack_mosaic(f, n) for f in frames]
    except GeometryError as exc:
        raise GeometryError(f"{label}: {exc.message}") from None
    data = np.stack(vols) if len(vols) > 1 else vols[0]
    affine = mosaic_affine(
        geo.orientation,
        geo.pixel_spacing,
        geo.positions[0],
        int(full[0]),
        int(full[1]),
        n,
        geo.mosaic_normal,
        geo.slice_spacing,
    )
    return data, affine


def _meta(stack: Stack, data: np.ndarray, affine: np.ndarray) -> dict[str, Any]:
    meta: dict[str, Any] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in stack.meta
    }
    spacing = [float(np.linalg.norm(affine[:3, k])) for k in range(3)]
    meta.update(
        {
            "StackKey": stack.stack_key,
            "StorageKind": stack.kind,
            "Shape": [int(n) for n in data.shape],
            "VoxelSpacing": [round(v, 6) for v in spacing],
        }
    )
    return dict(sorted(meta.items()))
