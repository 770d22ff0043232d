"""The value every pipeline step takes and returns: one 3-D volume and its geometry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Image:
    """A 3-D volume in (slice, row, col) order with its voxel-to-patient affine.

    Parameters
    ----------
    vol : (S, R, C) ndarray
        Voxel values. The real value of a voxel is ``vol * slope + intercept`` (the DICOM
        modality LUT, PS3.3 C.11.1); ``rescale`` applies it and resets slope/intercept to 1/0.
    affine_lps : (4, 4) ndarray
        Maps a voxel index ``(s, r, c, 1)`` to patient LPS millimetres. Column norms of its
        upper 3x3 are the voxel spacings along (S, R, C).
    slope, intercept : float
        Pending modality rescale.
    display : mapping, optional
        The image's display attributes as plain values (photometric interpretation, VOI
        windows and LUTs, presentation LUT shape), read by the ``voi`` op; the pipeline
        carries it past ops that do not set it. None when the reader gave none.
    """

    vol: np.ndarray
    affine_lps: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    display: Mapping[str, Any] | None = None

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing along (S, R, C) in millimetres, from the affine's column norms."""
        norms = np.linalg.norm(self.affine_lps[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))
