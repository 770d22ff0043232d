"""Plain records the DICOM room hands to the rest of clisonix (picklable, no patient data).

A :class:`Stack` is one convertible image stack: the files of one series (or the frames of one
enhanced object) that share matrix size, orientation, echo and acquisition, in slice order.
Repeated acquisitions at the same positions make it 4-D (``n_volumes > 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PixelInfo:
    """Pixel layout of one file, read from its header by the index.

    ``offset``/``length`` locate the Pixel Data value in the file for native (uncompressed)
    transfer syntaxes, so that pixels can be read without parsing the header again; both are
    None when unknown or encapsulated.
    """

    transfer_syntax: str
    rows: int
    cols: int
    n_frames: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    offset: int | None = None
    length: int | None = None


@dataclass(frozen=True)
class Stack:
    """One image stack planned for conversion.

    ``files`` are paths relative to the scan root, in acquisition order for 4-D stacks and in
    slice order along the normal within each volume; ``frames`` (enhanced objects) lists the
    frame indices in the same order, empty for one-frame-per-file stacks.
    """

    study_uid: str
    series_uid: str
    stack_key: str  # distinguishes stacks split out of one series ("1", "1-echo2", ...)
    files: tuple[str, ...]
    modality: str
    series_number: int | None
    series_description: str
    rows: int
    cols: int
    n_slices: int
    n_volumes: int
    transfer_syntax: str
    bits_allocated: int
    est_bytes: int
    frames: tuple[int, ...] = ()
    pixels: tuple[PixelInfo, ...] = ()  # one per entry of ``files`` when the index knows it
    kind: str = "slices"  # "slices" | "mosaic" | "enhanced"
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file that is not part of any stack, with the stable code of why."""

    path: str
    code: str
    reason: str


@dataclass
class ScanResult:
    """What ``scan`` found under a root folder."""

    root: str
    stacks: list[Stack]
    skipped: list[Skipped]
    n_files: int
    n_dicom: int
    n_non_dicom: int
    transfer_syntaxes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Volume:
    """Decoded stored values of a stack and its geometry.

    ``data`` is (S, R, C) or (T, S, R, C) in stored units; the real value is
    ``data * slope + intercept``. ``affine_lps`` maps ``(s, r, c, 1)`` to patient LPS mm.
    ``meta`` holds acquisition fields safe for a sidecar (no patient name, ID or birth date).
    """

    data: np.ndarray
    affine_lps: np.ndarray
    slope: float
    intercept: float
    meta: dict[str, Any]
