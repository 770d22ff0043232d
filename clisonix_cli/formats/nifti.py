"""NIfTI-1 writer: the one place where DICOM LPS becomes NIfTI RAS.

A volume (S, R, C) or (T, S, R, C) in C order has exactly the bytes of a NIfTI image of shape
(C, R, S[, T]) in NIfTI's Fortran order, so the data are written without a transpose: NIfTI
voxel (i, j, k[, t]) is (column, row, slice[, volume]). The affine's columns are reordered to
match, then its first two rows are negated (LPS -> RAS). The header is built with nibabel and
the bytes are assembled here, so that the stored integer type and the scaling
(``scl_slope``/``scl_inter``) are exactly the ones given. ``.nii.gz`` is gzip with mtime 0 and
no file name: the same volume gives the same bytes on every run.
"""

from __future__ import annotations

import gzip
import importlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.errors import UsageError, WriteFailedError
from clisonix_cli.fsio import atomic_write_bytes

__all__ = ["lps_to_ras", "nifti_affine", "sidecar_path", "to_jsonable", "write_nifti"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_VOX_OFFSET = 352  # 348-byte header + 4-byte extension flag (no extensions)
_GZIP_LEVEL = 1  # nibabel's default: fast; the bytes are still deterministic


def lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """Negate the first two rows of a 4x4 affine (DICOM LPS -> NIfTI RAS)."""
    return _LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def nifti_affine(affine_lps: np.ndarray) -> np.ndarray:
    """The NIfTI (i, j, k) = (col, row, slice) -> RAS affine of a (s, r, c) -> LPS affine.

    Parameters
    ----------
    affine_lps : (4, 4) ndarray
        Maps ``(s, r, c, 1)`` to LPS mm.

    Returns
    -------
    (4, 4) ndarray
        Maps ``(i, j, k, 1)`` = ``(c, r, s, 1)`` to RAS mm.
    """
    aff = np.asarray(affine_lps, dtype=np.float64)
    return lps_to_ras(aff[:, [2, 1, 0, 3]])


def sidecar_path(path: Path) -> Path:
    """``x.nii.gz`` / ``x.nii`` / ``x.npy`` -> ``x.json``."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".npy"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_name(name + ".json")


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for numpy scalars/arrays, tuples and nested mappings."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sidecar_bytes(sidecar: Mapping[str, Any]) -> bytes:
    """The JSON text of a sidecar: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(to_jsonable(sidecar), indent=2, sort_keys=True) + "\n").encode()


def _nifti_dtype(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if data.dtype.kind not in "iuf" or data.dtype.itemsize > 8:
        raise UsageError(
            f"NIfTI cannot store {data.dtype} voxels - convert to an integer or float type"
        )
    if data.dtype.kind == "f" and data.dtype.itemsize == 2:
        return data.astype(np.float32)
    return data.astype(data.dtype.newbyteorder("<"), copy=False)


def nifti_bytes(
    data: np.ndarray, affine_lps: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0,
    repetition_time_s: float | None = None,
) -> bytes:  # fmt: skip
    """The bytes of a single-file NIfTI-1 image (uncompressed).

    Parameters
    ----------
    data : (S, R, C) or (T, S, R, C) ndarray
        Stored values.
    affine_lps : (4, 4) ndarray
        ``(s, r, c, 1)`` -> LPS mm.
    slope, intercept : float
        Written as ``scl_slope``/``scl_inter``: real value = stored * slope + intercept.
    repetition_time_s : float, optional
        Spacing of the 4th dimension (seconds) for 4-D data.

    Returns
    -------
    bytes
        Header (sform and qform, code 1 = scanner) followed by the voxels.
    """
    nib: Any = importlib.import_module(
        "nibabel"
    )  # untyped calls: keep mypy --strict quiet

    if data.ndim not in (3, 4):
        raise UsageError(
            f"write_nifti takes (S, R, C) or (T, S, R, C) data, got {data.shape}"
        )
    arr = np.ascontiguousarray(_nifti_dtype(data))
    shape = tuple(int(n) for n in arr.shape[::-1])  # (C, R, S[, T])
    aff = nifti_affine(affine_lps)
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(arr.dtype)
    hdr.set_data_shape(shape)
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    zooms = [float(np.linalg.norm(aff[:3, k])) for k in range(3)]
    if arr.ndim == 4:
        zooms.append(float(repetition_time_s) if repetition_time_s else 1.0)
    hdr.set_zooms(zooms)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_slope_inter(float(slope), float(intercept))
    hdr["vox_offset"] = _VOX_OFFSET
    hdr["magic"] = b"n+1"
    return bytes(hdr.binaryblock) + b"\x00\x00\x00\x00" + arr.tobytes(order="C")


def write_nifti(
    path: Path,
    data: np.ndarray,
    affine_lps: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    sidecar: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a volume as NIfTI-1 (``.nii`` or ``.nii.gz`` by suffix), atomically.

    Parameters
    ----------
    path : Path
        Destination ending in ``.nii`` or ``.nii.gz``.
    data : (S, R, C) or (T, S, R, C) ndarray
        Stored values; their integer type is kept.
    affine_lps : (4, 4) ndarray
        Maps ``(s, r, c, 1)`` to LPS mm; converted to RAS here, and only here.
    slope, intercept : float, optional
        Real value = stored * slope + intercept (``scl_slope``/``scl_inter``).
    sidecar : mapping, optional
        Written as ``<name>.json`` next to the image, keys sorted. Its ``RepetitionTime``
        (ms, DICOM units) sets the time spacing of 4-D images.

    Returns
    -------
    list of Path
        The image, then the sidecar when one was written.

    Raises
    ------
    WriteFailedError
        The destination cannot be written.
    UsageError
        Wrong suffix, dimensionality or voxel type.
    """
    name = path.name
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise UsageError(f"{path}: a NIfTI path ends in .nii or .nii.gz")
    tr_s = None
    if sidecar is not None and data.ndim == 4:
        tr = sidecar.get("RepetitionTime")
        if isinstance(tr, int | float) and tr > 0:
            tr_s = float(tr) / 1000.0
    payload = nifti_bytes(
        data, affine_lps, slope=slope, intercept=intercept, repetition_time_s=tr_s
    )
    if name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=_GZIP_LEVEL, mtime=0)
    written = [path]
    try:
        atomic_write_bytes(path, payload)
        if sidecar is not None:
            side = sidecar_path(path)
            atomic_write_bytes(side, sidecar_bytes(sidecar))
            written.append(side)
    except OSError as exc:
        raise WriteFailedError(
            f"{path}: cannot write ({exc.strerror}) - check free space and permissions"
        ) from None
    return written
