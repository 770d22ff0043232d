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
class Problem:
    """A problem the index found in a stack, with the stable code of the error it maps to.

    ``blocking`` problems make :func:`clisonix_cli.dicom.volume.load_stack` raise the error of
    ``code`` (missing slices, uneven spacing, no geometry); the others are warnings only.
    """

    code: str
    message: str
    blocking: bool = False


@dataclass(frozen=True)
class StackGeometry:
    """What the index read about a stack's geometry, so that conversion parses nothing again.

    ``positions`` and ``rescale`` have one entry per entry of :attr:`Stack.files`, in the same
    order: (0020,0032) Image Position (Patient) in LPS mm and (slope, intercept).
    ``orientation`` is (0020,0037) (row direction, then column direction) and ``pixel_spacing``
    is (0028,0030) = (spacing between rows, spacing between columns). ``slice_spacing`` is
    (0018,0088) Spacing Between Slices, else (0018,0050) Slice Thickness, used only where the
    positions cannot give the slice step (one slice, mosaics). For Siemens mosaics,
    ``mosaic_tiles`` is NumberOfImagesInMosaic and ``mosaic_normal`` the CSA SliceNormalVector.
    """

    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    positions: tuple[tuple[float, float, float], ...]
    rescale: tuple[tuple[float, float], ...]
    slice_spacing: float | None = None
    mosaic_tiles: int = 0
    mosaic_normal: tuple[float, ...] | None = None
    # the slice step vector when it is not the mean of the positions (``--gaps keep``)
    slice_step: tuple[float, float, float] | None = None
    # mosaic tile size (rows, cols) when the tiles do not fill the mosaic exactly
    mosaic_tile: tuple[int, int] | None = None


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
    pixels: tuple[
        PixelInfo, ...
    ] = ()  # one per entry of ``files`` when the index knows it
    kind: str = "slices"  # "slices" | "mosaic" | "enhanced"
    warnings: tuple[str, ...] = ()
    # None when the files carry no usable geometry
    geometry: StackGeometry | None = None
    # every problem found, blocking or not
    problems: tuple[Problem, ...] = ()
    # why this series was split into several stacks ("" if it was not)
    split_reason: str = ""
    # sidecar-safe acquisition fields (no patient identifiers), sorted by key
    meta: tuple[tuple[str, Any], ...] = ()
    # "" for a volume placed by its headers; "projection" (X-ray), "plane" (in-plane spacing
    # only) or "pixel" (no spacing: unit steps) for 2-D images without patient geometry;
    # "frames" for multi-frame objects whose frames have no position (4th axis)
    geometry_kind: str = ""
    # the colour model of a colour stack as stored ("RGB", "YBR_FULL_422", "PALETTE
    # COLOR"...); "" for greyscale. Colour stacks decode to RGB (see dicom/colour.py)
    colour: str = ""
    # (0008,0016) SOP Class UID of the first image
    sop_class: str = ""
    # display attributes of the first image (photometric, windows, LUT flags) for the
    # ``voi`` op: plain values, sorted by key (see dicom/display.py)
    display: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file that is not part of any stack, with the stable code of why."""

    path: str
    code: str
    reason: str
    # other input files the reason names (a duplicate's kept file), so that a
    # de-identifying run can replace them by tokens too
    others: tuple[str, ...] = ()


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
    # paths of the files that are not DICOM (text, PDF, NIfTI...)
    non_dicom: list[str] = field(default_factory=list)
    # files that could not be opened or hold no bytes (also listed in ``skipped``)
    n_unreadable: int = 0


@dataclass(frozen=True)
class Volume:
    """Decoded stored values of a stack and its geometry.

    ``data`` is (S, R, C) or (T, S, R, C) in stored units; the real value is
    ``data * slope + intercept``. ``affine_lps`` maps ``(s, r, c, 1)`` to patient LPS mm.
    ``meta`` holds acquisition fields safe for a sidecar (no patient name, ID or birth date).
    Colour data have the structured type :data:`clisonix_cli.dicom.colour.rgb_dtype` (one
    R, G, B triple per voxel). ``display`` holds what the ``voi`` op needs (PS3.4 N.2):
    photometric interpretation, VOI windows or LUT, presentation LUT shape; None when unknown.
    """

    data: np.ndarray
    affine_lps: np.ndarray
    slope: float
    intercept: float
    meta: dict[str, Any]
    display: dict[str, Any] | None = None
