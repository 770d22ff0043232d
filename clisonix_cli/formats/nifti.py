"""NIfTI-1 writer: the one place where DICOM LPS becomes NIfTI RAS.

A volume (S, R, C) or (T, S, R, C) in C order has exactly the bytes of a NIfTI image of shape
(C, R, S[, T]) in NIfTI's Fortran order, so the data are written without a transpose: NIfTI
voxel (i, j, k[, t]) is (column, row, slice[, volume]). The affine's columns are reordered to
match, then its first two rows are negated (LPS -> RAS).

The 348-byte header is assembled here with numpy (no nibabel import in the workers: it cost
0.3 s per process), field for field as ``nibabel.Nifti1Header`` fills it (``set_data_dtype``,
``set_data_shape``, ``set_sform``/``set_qform`` code 1, ``set_zooms``, units mm/s,
``set_slope_inter``); the tests check the bytes against nibabel's. The stored integer type
and the scaling (``scl_slope``/``scl_inter``) are exactly the ones given.

The voxels go from the caller's array to the file without an intermediate copy (the array
itself when it is C-contiguous little endian, else one converted slab at a time).
``.nii.gz`` is streamed through :mod:`clisonix_cli.formats._gzip`: fixed 1 MiB blocks
compressed in parallel on the task's threads (:func:`clisonix_cli.runtime.cpu_budget`),
mtime 0, no file name. The same volume gives the same bytes on every run and for any number
of threads.

Registered as ``--format nifti`` (``.nii``) and ``nifti-gz`` (``.nii.gz``); both stream (a
:class:`~clisonix_cli.formats._declare.VolumeSource` is written as it is read).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli import runtime
from clisonix_cli.errors import UsageError, WriteFailedError
from clisonix_cli.formats._declare import (
    SidecarArg,
    Source,
    VolumeSource,
    Writer,
    source_of,
)
from clisonix_cli.formats._gzip import gzip_chunks
from clisonix_cli.fsio import atomic_write_bytes, atomic_write_chunks

__all__ = [
    "WRITERS",
    "lps_to_ras",
    "nifti_affine",
    "nifti_bytes",
    "c_order_slabs",
    "source_chunks",
    "nifti_header",
    "sidecar_path",
    "to_jsonable",
    "write_nifti",
    "RGB24",
]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_VOX_OFFSET = 352  # 348-byte header + 4-byte extension flag (no extensions)
_SLAB_BYTES = (
    8 << 20
)  # converted / compressed at a time when the array is not written as is

#: The NIfTI-1 header (little endian), as nibabel.nifti1.header_dtype.
_HEADER_DTYPE = np.dtype(
    [
        ("sizeof_hdr", "<i4"),
        ("data_type", "S10"),
        ("db_name", "S18"),
        ("extents", "<i4"),
        ("session_error", "<i2"),
        ("regular", "S1"),
        ("dim_info", "u1"),
        ("dim", "<i2", (8,)),
        ("intent_p1", "<f4"),
        ("intent_p2", "<f4"),
        ("intent_p3", "<f4"),
        ("intent_code", "<i2"),
        ("datatype", "<i2"),
        ("bitpix", "<i2"),
        ("slice_start", "<i2"),
        ("pixdim", "<f4", (8,)),
        ("vox_offset", "<f4"),
        ("scl_slope", "<f4"),
        ("scl_inter", "<f4"),
        ("slice_end", "<i2"),
        ("slice_code", "u1"),
        ("xyzt_units", "u1"),
        ("cal_max", "<f4"),
        ("cal_min", "<f4"),
        ("slice_duration", "<f4"),
        ("toffset", "<f4"),
        ("glmax", "<i4"),
        ("glmin", "<i4"),
        ("descrip", "S80"),
        ("aux_file", "S24"),
        ("qform_code", "<i2"),
        ("sform_code", "<i2"),
        ("quatern_b", "<f4"),
        ("quatern_c", "<f4"),
        ("quatern_d", "<f4"),
        ("qoffset_x", "<f4"),
        ("qoffset_y", "<f4"),
        ("qoffset_z", "<f4"),
        ("srow_x", "<f4", (4,)),
        ("srow_y", "<f4", (4,)),
        ("srow_z", "<f4", (4,)),
        ("intent_name", "S16"),
        ("magic", "S4"),
    ]
)
assert _HEADER_DTYPE.itemsize == 348

#: NIfTI-1 datatype code and bitpix per stored type (nifti1.h).
_DATATYPES: dict[str, tuple[int, int]] = {
    "u1": (2, 8),
    "i2": (4, 16),
    "i4": (8, 32),
    "f4": (16, 32),
    "f8": (64, 64),
    "i1": (256, 8),
    "u2": (512, 16),
    "u4": (768, 32),
    "i8": (1024, 64),
    "u8": (1280, 64),
}
_XYZT_MM_SEC = 2 | 8  # NIFTI_UNITS_MM | NIFTI_UNITS_SEC
_SCANNER = 1  # NIFTI_XFORM_SCANNER_ANAT


def source_chunks(
    data: np.ndarray | VolumeSource, dtype: np.dtype[Any]
) -> Iterator[np.ndarray]:
    """The values of an array or a :class:`VolumeSource` in C order as ``dtype``, in
    contiguous pieces; a source's slabs are checked against its declared type and size."""
    if isinstance(data, np.ndarray):
        yield from c_order_slabs(data, dtype)
        return
    want = int(np.prod(data.shape, dtype=np.int64))
    got = 0
    for slab in data.slabs():
        if slab.dtype != data.dtype or slab.shape[-2:] != tuple(data.shape[-2:]):
            raise ValueError(
                f"a volume source declared {data.dtype} {tuple(data.shape)} gave a "
                f"{slab.dtype} slab of {slab.shape}"
            )
        got += int(slab.size)
        if got > want:
            break
        yield from c_order_slabs(slab, dtype)
    if got != want:
        raise ValueError(
            f"a volume source declared {want} voxels {tuple(data.shape)} and gave {got}"
        )


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


#: NIfTI RGB24 (datatype 128): one R, G, B byte triple per voxel, as nibabel reads it.
RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def _stored_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The little-endian type a voxel type is stored as (bool -> uint8, float16 -> float32,
    RGB of any channel width -> RGB24)."""
    if dtype.names == ("R", "G", "B"):
        return RGB24
    if dtype == np.bool_:
        return np.dtype("u1")
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise UsageError(
            f"NIfTI cannot store {dtype} voxels - convert to an integer or float type"
        )
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype("<f4")
    return dtype.newbyteorder("<")


def _mat2quat(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (nibabel.quaternions)."""
    qxx, qyx, qzx, qxy, qyy, qzy, qxz, qyz, qzz = rot.flat
    k = (
        np.array(
            [
                [qxx - qyy - qzz, 0, 0, 0],
                [qyx + qxy, qyy - qxx - qzz, 0, 0],
                [qzx + qxz, qzy + qyz, qzz - qxx - qyy, 0],
                [qyz - qzy, qzx - qxz, qxy - qyx, qxx + qyy + qzz],
            ]
        )
        / 3.0
    )
    vals, vecs = np.linalg.eigh(k)
    q: np.ndarray = vecs[[3, 0, 1, 2], np.argmax(vals)]
    if q[0] < 0:
        q *= -1
    return q


def _set_qform(hdr: np.ndarray, aff: np.ndarray) -> None:
    """qform fields of a RAS affine, as ``Nifti1Header.set_qform(aff, code=1)``.

    The rotation is made proper (``qfac`` = -1 for a left-handed grid) and orthogonal (polar
    decomposition: the nearest rotation, shears dropped) before it becomes a quaternion.
    """
    rzs = aff[:3, :3]
    zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rot = rzs / zooms
    if np.linalg.det(rot) > 0:
        qfac = 1.0
    else:
        qfac = -1.0
        rot[:, -1] *= -1
    try:
        p, _s, qs = np.linalg.svd(rot)
    except np.linalg.LinAlgError:
        raise UsageError(
            f"the affine cannot be decomposed into a NIfTI qform: {aff.tolist()}"
        ) from None
    quat = _mat2quat(np.dot(p, qs))
    hdr["qform_code"] = _SCANNER
    hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"] = aff[:3, 3]
    hdr["pixdim"][0] = qfac
    hdr["pixdim"][1:4] = zooms
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = quat[1:]


def nifti_header(
    dtype: np.dtype[Any] | type,
    shape: tuple[int, ...],
    affine_lps: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    repetition_time_s: float | None = None,
) -> bytes:
    """The 352 bytes before the voxels of a single-file NIfTI-1 image.

    Parameters
    ----------
    dtype : numpy dtype
        Voxel type of the data (stored as :func:`_stored_dtype` says).
    shape : tuple of int
        Data shape (S, R, C) or (T, S, R, C); the NIfTI dims are its reverse.
    affine_lps : (4, 4) ndarray
        ``(s, r, c, 1)`` -> LPS mm.
    slope, intercept : float
        ``scl_slope``/``scl_inter``: real value = stored * slope + intercept.
    repetition_time_s : float, optional
        Spacing of the 4th dimension (seconds) for 4-D data (1.0 when not given).

    Returns
    -------
    bytes
        The header (sform and qform, code 1 = scanner) and an empty extension flag: the
        same bytes ``nibabel.Nifti1Header`` gives for these settings.

    Raises
    ------
    UsageError
        Wrong dimensionality, a dimension over 32767, an unstorable voxel type, a zero or
        infinite slope, an infinite intercept.
    """
    if len(shape) not in (3, 4):
        raise UsageError(
            f"write_nifti takes (S, R, C) or (T, S, R, C) data, got {tuple(shape)}"
        )
    stored = _stored_dtype(np.dtype(dtype))
    dims = [int(n) for n in shape[::-1]]  # (C, R, S[, T])
    if any(not 0 <= n <= 32767 for n in dims):
        raise UsageError(
            f"NIfTI-1 stores dimensions up to 32767, got {tuple(shape)} - split the volume"
        )
    slope, intercept = float(slope), float(intercept)
    if slope == 0 or math.isinf(slope) or math.isinf(intercept):
        raise UsageError(
            f"scl_slope {slope} / scl_inter {intercept}: the slope must be finite and "
            "non-zero and the intercept finite"
        )
    if math.isnan(slope) != math.isnan(intercept):
        raise UsageError("scl_slope and scl_inter must be both NaN or both numbers")
    hdr = np.zeros((), dtype=_HEADER_DTYPE)
    hdr["sizeof_hdr"] = 348
    hdr["dim"] = [len(dims), *dims, *([1] * (7 - len(dims)))]
    hdr["datatype"], hdr["bitpix"] = (
        (128, 24) if stored == RGB24 else _DATATYPES[stored.str[1:]]
    )
    hdr["pixdim"] = 1.0
    aff = nifti_affine(affine_lps)
    hdr["sform_code"] = _SCANNER
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = aff[0], aff[1], aff[2]
    _set_qform(hdr, aff)
    zooms = [float(np.linalg.norm(aff[:3, k])) for k in range(3)]
    if len(dims) == 4:
        zooms.append(float(repetition_time_s) if repetition_time_s else 1.0)
    if any(z < 0 for z in zooms):
        raise UsageError(f"voxel sizes must be positive, got {zooms}")
    hdr["pixdim"][1 : len(zooms) + 1] = zooms
    hdr["xyzt_units"] = _XYZT_MM_SEC
    hdr["scl_slope"], hdr["scl_inter"] = slope, intercept
    hdr["vox_offset"] = _VOX_OFFSET
    hdr["magic"] = b"n+1"
    return hdr.tobytes() + b"\x00\x00\x00\x00"


def c_order_slabs(
    data: np.ndarray, dtype: np.dtype[Any], slab_bytes: int = _SLAB_BYTES
) -> Iterator[np.ndarray]:
    """The values of ``data`` in C order as ``dtype``, in contiguous pieces of about
    ``slab_bytes``: the array itself when nothing needs converting, else slabs along the
    leading axes (never a full-size copy)."""
    if data.size == 0:
        return
    if data.dtype == dtype and data.flags.c_contiguous:
        yield data
        return
    if data.ndim > 3:
        for sub in data:
            yield from c_order_slabs(sub, dtype, slab_bytes)
        return
    row = int(np.prod(data.shape[1:], dtype=np.int64)) * dtype.itemsize
    per = max(1, slab_bytes // max(1, row))
    for at in range(0, data.shape[0], per):
        yield np.ascontiguousarray(data[at : at + per], dtype=dtype)


def _image_chunks(
    data: np.ndarray | VolumeSource,
    affine_lps: np.ndarray,
    slope: float,
    intercept: float,
    repetition_time_s: float | None,
) -> Iterator[Any]:
    header = nifti_header(
        data.dtype,
        tuple(data.shape),
        affine_lps,
        slope=slope,
        intercept=intercept,
        repetition_time_s=repetition_time_s,
    )
    yield header
    stored = _stored_dtype(data.dtype)
    if stored == RGB24 and data.dtype != RGB24:
        yield from (_rgb24(slab) for slab in source_chunks(data, data.dtype))
        return
    yield from source_chunks(data, stored)


def _rgb24(slab: np.ndarray) -> np.ndarray:
    """RGB with 16- or 32-bit channels to RGB24: ``rint(x * 255 / (2**bits - 1))``, so
    that the full range maps onto 0..255 (a 16-bit palette entry ``k * 257`` gives ``k``)."""
    base = slab.dtype.fields["R"][0]  # type: ignore[index]
    chan = slab.view(base).reshape(*slab.shape, 3)
    top = float(2 ** (8 * base.itemsize) - 1)
    small = np.rint(chan * (255.0 / top)).astype(np.uint8)
    return np.ascontiguousarray(small).view(RGB24).reshape(slab.shape)


def nifti_bytes(
    data: np.ndarray, affine_lps: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0,
    repetition_time_s: float | None = None,
) -> bytes:  # fmt: skip
    """The bytes of a single-file NIfTI-1 image (uncompressed), in memory.

    :func:`write_nifti` streams the same bytes to the file without building them here.

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
    return b"".join(
        bytes(memoryview(c).cast("B"))
        for c in _image_chunks(data, affine_lps, slope, intercept, repetition_time_s)
    )


def write_nifti(
    path: Path,
    data: np.ndarray | VolumeSource,
    affine_lps: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    sidecar: SidecarArg = None,
    digests: MutableMapping[Path, str] | None = None,
    repetition_time_s: float | None = None,
) -> list[Path]:
    """Write a volume as NIfTI-1 (``.nii`` or ``.nii.gz`` by suffix), atomically.

    Parameters
    ----------
    path : Path
        Destination ending in ``.nii`` or ``.nii.gz``.
    data : (S, R, C) or (T, S, R, C) ndarray, or VolumeSource
        Stored values; their integer type is kept. Written from the array as it is (no
        copy) when it is C-contiguous and little endian. A :class:`VolumeSource` is
        written slab by slab as it delivers them (the volume is never whole in memory).
    affine_lps : (4, 4) ndarray
        Maps ``(s, r, c, 1)`` to LPS mm; converted to RAS here, and only here.
    slope, intercept : float, optional
        Real value = stored * slope + intercept (``scl_slope``/``scl_inter``).
    sidecar : mapping or callable, optional
        Written as ``<name>.json`` next to the image, keys sorted. Its ``RepetitionTime``
        (ms, DICOM units) sets the time spacing of 4-D images. A callable is called once
        the image is written and returns the mapping (pass ``repetition_time_s`` then).
    digests : dict, optional
        When given, receives ``{path: labelled digest}`` of every file written, computed from
        the bytes as they are written (no second read).
    repetition_time_s : float, optional
        Time spacing of a 4-D image in seconds; when not given, the sidecar's
        ``RepetitionTime`` (ms) is used (a mapping sidecar only).

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
    src = source_of(data, affine_lps, slope=slope, intercept=intercept, sidecar=sidecar)
    return _write(path, src, digests, repetition_time_s)


def _time_spacing_s(meta: Mapping[str, Any]) -> float | None:
    """The time spacing (s) of a 4-D image from its ``RepetitionTime`` (ms, DICOM units).

    Returns
    -------
    float or None
        None when the field is missing, not a number or not positive.
    """
    tr = meta.get("RepetitionTime")
    if isinstance(tr, int | float) and tr > 0:
        return float(tr) / 1000.0
    return None


def _write(
    path: Path,
    src: Source,
    digests: MutableMapping[Path, str] | None,
    tr_s: float | None = None,
) -> list[Path]:
    """:func:`write_nifti` of a :class:`Source`; the time spacing from ``src.meta`` when
    ``tr_s`` is not given. The registry's write function."""
    name = path.name
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise UsageError(f"{path}: a NIfTI path ends in .nii or .nii.gz")
    if tr_s is None:
        tr_s = _time_spacing_s(src.meta)
    chunks = _image_chunks(src.data, src.affine_lps, src.slope, src.intercept, tr_s)
    header = next(chunks)  # validates before anything is created on disk
    parts: Iterator[Any] = _prepend(header, chunks)
    if name.endswith(".gz"):
        parts = gzip_chunks(parts, threads=runtime.cpu_budget())
    want = digests is not None
    written = [path]
    try:
        sha = atomic_write_chunks(path, parts, digest=want)
        if digests is not None and sha is not None:
            digests[path] = sha
        if src.sidecar is not None:
            side = sidecar_path(path)
            sha = atomic_write_bytes(side, sidecar_bytes(src.sidecar()), digest=want)
            if digests is not None and sha is not None:
                digests[side] = sha
            written.append(side)
    except OSError as exc:
        raise WriteFailedError(
            f"{path}: cannot write ({exc.strerror}) - check free space and permissions"
        ) from None
    return written


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


WRITERS = (
    Writer(name="nifti", suffix=".nii", streams=True, write=_write),
    Writer(name="nifti-gz", suffix=".nii.gz", streams=True, write=_write),
)
