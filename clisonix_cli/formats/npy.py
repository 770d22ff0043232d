"""NumPy writer: the (S, R, C) or (T, S, R, C) array as ``.npy`` plus a JSON sidecar.

The array keeps DICOM index order and LPS geometry (no flip here): the sidecar holds
``affine_lps`` (index ``(s, r, c, 1)`` -> LPS mm), ``slope`` and ``intercept`` next to the
acquisition fields. Both files are written atomically; the array goes to the file as it is
(C-contiguous) or one slab at a time, never through a second full-size buffer.
``--format npy`` streams: a slice source is written as it is read.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.errors import UsageError, WriteFailedError
from clisonix_cli.formats._declare import (
    SidecarArg,
    Source,
    VolumeSource,
    Writer,
    source_of,
)
from clisonix_cli.formats.nifti import sidecar_bytes, sidecar_path, source_chunks
from clisonix_cli.fsio import atomic_write_bytes, atomic_write_chunks

__all__ = ["WRITERS", "npy_bytes", "npy_chunks", "write_npy"]


def npy_chunks(data: np.ndarray | VolumeSource) -> Iterator[bytes | np.ndarray]:
    """The ``.npy`` file of an array, in pieces: the format 1.0 header, then the values in C
    order (the array itself when C-contiguous, else slabs of about 8 MiB, never a full copy).

    The concatenation is what ``np.save(f, np.ascontiguousarray(data), allow_pickle=False)``
    writes.
    """
    from numpy.lib import format as npformat

    if data.dtype.hasobject:
        raise UsageError(f"cannot write {data.dtype} arrays as .npy without pickle")
    head = io.BytesIO()
    shape = tuple(int(n) for n in data.shape)
    descr = data.dtype
    if data.dtype.names == (
        "R",
        "G",
        "B",
    ):  # RGB triples: a trailing axis of 3, same bytes
        descr = data.dtype.fields["R"][0]  # type: ignore[index]
        shape = (*shape, 3)
    npformat.write_array_header_1_0(
        head,
        {
            "shape": shape,
            "fortran_order": False,
            "descr": npformat.dtype_to_descr(descr),
        },
    )
    yield head.getvalue()
    yield from source_chunks(data, data.dtype)


def npy_bytes(data: np.ndarray) -> bytes:
    """The ``.npy`` bytes of an array (C order, no pickle), in memory."""
    return b"".join(
        c if isinstance(c, bytes) else c.tobytes() for c in npy_chunks(data)
    )


def write_npy(
    path: Path,
    data: np.ndarray | VolumeSource,
    affine_lps: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    sidecar: SidecarArg = None,
    digests: MutableMapping[Path, str] | None = None,
) -> list[Path]:
    """Write ``data`` as ``.npy`` and its geometry and scaling as ``<name>.json``.

    Parameters
    ----------
    path : Path
        Destination ending in ``.npy``.
    data : (S, R, C) or (T, S, R, C) ndarray, or VolumeSource
        Stored values, written as they are; a
        :class:`~clisonix_cli.formats._declare.VolumeSource` slab by slab.
    affine_lps : (4, 4) ndarray
        Maps ``(s, r, c, 1)`` to LPS mm.
    slope, intercept : float, optional
        Real value = stored * slope + intercept.
    sidecar : mapping or callable, optional
        Extra fields (acquisition metadata), or a function returning them, called once the
        array is written; ``affine_lps``, ``slope``, ``intercept``,
        ``shape``, ``dtype`` and ``axes`` are added (and win over same-named keys).
    digests : dict, optional
        When given, receives ``{path: labelled digest}`` of both files, computed from the bytes
        as they are written (no second read).

    Returns
    -------
    list of Path
        The ``.npy`` file, then the ``.json`` sidecar.

    Raises
    ------
    WriteFailedError
        The destination cannot be written.
    UsageError
        Wrong suffix or shape.
    """
    src = source_of(data, affine_lps, slope=slope, intercept=intercept, sidecar=sidecar)
    return _write(path, src, digests)


def _write(
    path: Path, src: Source, digests: MutableMapping[Path, str] | None
) -> list[Path]:
    """:func:`write_npy` of a :class:`Source`: the registry's write function."""
    data = src.data
    if not path.name.endswith(".npy"):
        raise UsageError(f"{path}: a NumPy output path ends in .npy")
    if len(data.shape) not in (3, 4):
        raise UsageError(
            f"write_npy takes (S, R, C) or (T, S, R, C) data, got {data.shape}"
        )
    aff = np.asarray(src.affine_lps, dtype=np.float64)
    if aff.shape != (4, 4):
        raise UsageError(f"affine_lps must be 4x4, got {aff.shape}")
    geometry = {
        "affine_lps": aff.tolist(),
        "slope": float(src.slope),
        "intercept": float(src.intercept),
        "shape": [int(n) for n in data.shape],
        "dtype": np.dtype(data.dtype).str,
        "axes": "TSRC" if len(data.shape) == 4 else "SRC",
    }
    if data.dtype.names == ("R", "G", "B"):
        base = data.dtype.fields["R"][0]  # type: ignore[index]
        geometry.update(
            shape=[*geometry["shape"], 3], dtype=base.str, axes=f"{geometry['axes']}K"
        )
    side = sidecar_path(path)
    want = digests is not None
    try:
        sha_npy = atomic_write_chunks(path, npy_chunks(data), digest=want)
        extra = src.sidecar() if src.sidecar is not None else {}
        doc: dict[str, Any] = {**extra, **geometry}
        sha_side = atomic_write_bytes(side, sidecar_bytes(doc), digest=want)
    except OSError as exc:
        raise WriteFailedError(
            f"{path}: cannot write ({exc.strerror}) - check free space and permissions"
        ) from None
    if digests is not None and sha_npy is not None and sha_side is not None:
        digests[path] = sha_npy
        digests[side] = sha_side
    return [path, side]


WRITERS = (
    Writer(name="npy", suffix=".npy", streams=True, write=_write, kinds="biufc"),
)
