"""NumPy writer: the (S, R, C) or (T, S, R, C) array as ``.npy`` plus a JSON sidecar.

The array keeps DICOM index order and LPS geometry (no flip here): the sidecar holds
``affine_lps`` (index ``(s, r, c, 1)`` -> LPS mm), ``slope`` and ``intercept`` next to the
acquisition fields. Both files are written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.errors import UsageError, WriteFailedError
from clisonix_cli.formats.nifti import sidecar_bytes, sidecar_path
from clisonix_cli.fsio import atomic_write_bytes

__all__ = ["write_npy"]


def npy_bytes(data: np.ndarray) -> bytes:
    """The ``.npy`` bytes of an array (C order, no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(data), allow_pickle=False)
    return buf.getvalue()


def write_npy(
    path: Path,
    data: np.ndarray,
    affine_lps: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    sidecar: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``data`` as ``.npy`` and its geometry and scaling as ``<name>.json``.

    Parameters
    ----------
    path : Path
        Destination ending in ``.npy``.
    data : (S, R, C) or (T, S, R, C) ndarray
        Stored values, written as they are.
    affine_lps : (4, 4) ndarray
        Maps ``(s, r, c, 1)`` to LPS mm.
    slope, intercept : float, optional
        Real value = stored * slope + intercept.
    sidecar : mapping, optional
        Extra fields (acquisition metadata); ``affine_lps``, ``slope``, ``intercept``,
        ``shape``, ``dtype`` and ``axes`` are added (and win over same-named keys).

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
    if not path.name.endswith(".npy"):
        raise UsageError(f"{path}: a NumPy output path ends in .npy")
    if data.ndim not in (3, 4):
        raise UsageError(
            f"write_npy takes (S, R, C) or (T, S, R, C) data, got {data.shape}"
        )
    aff = np.asarray(affine_lps, dtype=np.float64)
    if aff.shape != (4, 4):
        raise UsageError(f"affine_lps must be 4x4, got {aff.shape}")
    doc: dict[str, Any] = dict(sidecar or {})
    doc.update(
        {
            "affine_lps": aff.tolist(),
            "slope": float(slope),
            "intercept": float(intercept),
            "shape": [int(n) for n in data.shape],
            "dtype": np.dtype(data.dtype).str,
            "axes": "TSRC" if data.ndim == 4 else "SRC",
        }
    )
    side = sidecar_path(path)
    try:
        atomic_write_bytes(path, npy_bytes(data))
        atomic_write_bytes(side, sidecar_bytes(doc))
    except OSError as exc:
        raise WriteFailedError(
            f"{path}: cannot write ({exc.strerror}) - check free space and permissions"
        ) from None
    return [path, side]
