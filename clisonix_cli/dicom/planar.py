"""Images without patient geometry, and multi-frame objects without per-frame positions.

Projection radiographs (CR, DX, MG, IO, XA, RF, RG, PX), ultrasound, secondary captures and
screenshots carry no (0020,0032)/(0020,0037): they are 2-D images, one stack per file. Their
in-plane spacing comes from, in order (PS3.3 C.8.11.7, 10.7.1.3):

1. (0028,0030) Pixel Spacing, calibrated to the patient where present;
2. (0018,1164) Imager Pixel Spacing divided by (0018,1114) Estimated Radiographic
   Magnification Factor (the detector plane brought back to the patient), or as it is when
   the factor is absent;
3. (0018,2010) Nominal Scanned Pixel Spacing (scanned film secondary captures);
4. nothing: unit pixels, declared as ``"pixel"`` geometry, never a made-up millimetre.

The image lies centred on the origin in the plane of :data:`~.geometry.DEFAULT_IOP` (as
dcm2niix places such images); the frames of a cine loop follow one unit apart along the
normal (the 3rd axis). The sidecar records where the spacing came from, the geometry kind,
(0020,0020) Patient Orientation and the frame timing.

Legacy multi-frame objects that do carry a plane (an MR or NM file without functional
groups) but give no position per frame put their frames on the 4th axis of that one plane
(``"frames"`` geometry), never on an invented slice spacing; RT dose places its frames with
(3004,000C) Grid Frame Offset Vector (:func:`dose_positions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clisonix_cli.dicom.geometry import (
    DEFAULT_IOP,
    orientation_problem,
    planar_positions,
    slice_normal,
)
from clisonix_cli.dicom.header import NM_VECTORS
from clisonix_cli.dicom.model import Problem, StackGeometry
from clisonix_cli.errors import FrameCountError, SpacingError

__all__ = [
    "PROJECTION_MODALITIES",
    "dose_positions",
    "has_plane",
    "is_dose_grid",
    "nm_groups",
    "is_projection",
    "planar_geometry",
    "planar_meta",
]

#: Modalities of projection X-ray images (PS3.3 C.7.3.1.1.1).
PROJECTION_MODALITIES = frozenset(
    {"CR", "DX", "MG", "IO", "XA", "RF", "RG", "PX", "DF", "DG"}
)
_PROJECTION_SOP = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR, DX (.1.1), MG (.1.2), IO (.1.3) and their variants
    "1.2.840.10008.5.1.4.1.1.12.",  # XA, RF, enhanced XA/XRF, 3-D excluded below
)
_NOT_PROJECTION_SOP = ("1.2.840.10008.5.1.4.1.1.13.",)  # 3-D X-ray, tomosynthesis


def is_projection(values: Mapping[str, Any]) -> bool:
    """True for a projection X-ray image (by Modality, else by SOP Class)."""
    modality = str(values.get("Modality") or "").upper()
    if modality in PROJECTION_MODALITIES:
        return True
    sop = str(values.get("SOPClassUID") or "")
    if sop.startswith(_NOT_PROJECTION_SOP):
        return False
    return sop == _PROJECTION_SOP[0] or sop.startswith(
        (_PROJECTION_SOP[0] + ".", _PROJECTION_SOP[1])
    )


def has_plane(values: Mapping[str, Any]) -> bool:
    """True when the header places the image in the patient: a usable orientation and a
    3-value Image Position (Patient)."""
    ipp = values.get("ImagePositionPatient")
    return (
        orientation_problem(values.get("ImageOrientationPatient")) is None
        and ipp is not None
        and len(ipp) == 3
    )


def _pair(values: Mapping[str, Any], keyword: str, tag: str) -> tuple[float, ...] | str:
    """A 2-value spacing attribute, or why it is unusable (str); () when absent."""
    raw = values.get(keyword)
    if raw is None:
        return ()
    vals = tuple(float(v) for v in raw)
    if vals == (0.0, 0.0) and keyword == "PixelSpacing":
        return ()  # "not known" as some writers put it: the next source decides
    if len(vals) != 2:
        return f"{tag} '{_SPACED[keyword]}' has {len(vals)} values, expected 2"
    if not all(np.isfinite(v) and v > 0 for v in vals):
        return (
            f"{tag} '{_SPACED[keyword]}' is {vals[0]:g}\\{vals[1]:g}, expected two "
            "values > 0 - the header is corrupt"
        )
    return vals


_SPACED = {
    "PixelSpacing": "Pixel Spacing",
    "ImagerPixelSpacing": "Imager Pixel Spacing",
    "NominalScannedPixelSpacing": "Nominal Scanned Pixel Spacing",
}


def planar_spacing(
    values: Mapping[str, Any],
) -> tuple[tuple[float, float], str, dict[str, Any]] | str:
    """(spacing between rows, between columns), its source and sidecar fields; or why the
    header's spacing is unusable (a one-line message for :class:`SpacingError`)."""
    extra: dict[str, Any] = {}
    for keyword, tag in (
        ("PixelSpacing", "(0028,0030)"),
        ("ImagerPixelSpacing", "(0018,1164)"),
        ("NominalScannedPixelSpacing", "(0018,2010)"),
    ):
        got = _pair(values, keyword, tag)
        if isinstance(got, str):
            return got
        if not got:
            continue
        if keyword != "ImagerPixelSpacing":
            return (got[0], got[1]), keyword, extra
        extra["ImagerPixelSpacing"] = list(got)
        factor = values.get("EstimatedRadiographicMagnificationFactor")
        if factor is None:
            return (got[0], got[1]), keyword, extra
        factor = float(factor)
        if not (np.isfinite(factor) and factor > 0):
            return (
                f"(0018,1114) 'Estimated Radiographic Magnification Factor' is "
                f"{factor:g}, expected > 0 - the header is corrupt"
            )
        extra["EstimatedRadiographicMagnificationFactor"] = factor
        return (
            (got[0] / factor, got[1] / factor),
            "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor",
            extra,
        )
    return (1.0, 1.0), "none", extra


def planar_geometry(
    values: Mapping[str, Any], rows: int, cols: int, n_frames: int, n_slopes: int = 1
) -> tuple[StackGeometry | None, str, dict[str, Any], list[Problem]]:
    """Geometry of a 2-D image (and its frames on the 3rd axis) without patient geometry.

    Parameters
    ----------
    values : mapping
        The header values of the file.
    rows, cols, n_frames : int
        Matrix size and number of frames.
    n_slopes : int
        Entries of ``rescale`` to give (one per stack entry).

    Returns
    -------
    geometry : StackGeometry or None
        None when the spacing is unusable (then ``problems`` holds a blocking one).
    kind : str
        ``"projection"``, ``"plane"`` or ``"pixel"``.
    meta : dict
        Sidecar fields: spacing source, Patient Orientation, frame timing.
    problems : list of Problem
    """
    got = planar_spacing(values)
    projection = is_projection(values)
    if isinstance(got, str):
        problem = Problem(
            SpacingError.code,
            f"{got}; fix or remove the attribute",
            blocking=True,
        )
        return None, "projection" if projection else "pixel", {}, [problem]
    spacing, source, meta = got
    if source == "none":
        kind = "pixel"
    else:
        kind = "projection" if projection else "plane"
    meta = {**meta, **planar_meta(values), "SpacingSource": source}
    problems: list[Problem] = []
    geo = StackGeometry(
        orientation=DEFAULT_IOP,
        pixel_spacing=spacing,
        positions=planar_positions(rows, cols, n_frames, spacing),
        rescale=((1.0, 0.0),) * n_slopes,
        slice_spacing=1.0,
    )
    return geo, kind, meta, problems


def planar_meta(values: Mapping[str, Any]) -> dict[str, Any]:
    """Sidecar fields of a 2-D or multi-frame object (no patient identifiers)."""
    out: dict[str, Any] = {}
    for key in (
        "PatientOrientation",
        "PresentationIntentType",
        "FrameTime",
        "FrameTimeVector",
        "DoseUnits",
        "DoseType",
        "DoseSummationType",
    ):
        val = values.get(key)
        if val is not None and val != "":
            out[key] = list(val) if isinstance(val, tuple) else val
    return out


def frame_time_problems(values: Mapping[str, Any], n_frames: int) -> list[Problem]:
    """A blocking problem when (0018,1065) Frame Time Vector does not match the frames."""
    vec = values.get("FrameTimeVector")
    if vec is not None and n_frames > 1 and len(vec) != n_frames:
        return [
            Problem(
                FrameCountError.code,
                f"(0018,1065) 'Frame Time Vector' has {len(vec)} values for {n_frames} "
                "frames, expected one per frame - the header is corrupt",
                blocking=True,
            )
        ]
    return []


def dose_positions(
    values: Mapping[str, Any], n_frames: int
) -> list[tuple[float, float, float]] | Problem:
    """Frame positions of an RT dose grid (PS3.3 C.8.8.3.2).

    Frame ``k`` lies at Image Position (Patient) + (offset[k] - offset[0]) * normal: the
    offsets are relative to the first frame whether the vector starts at 0 (relative form)
    or at the first frame's z (the absolute form allowed for axial grids).

    Returns
    -------
    list of (x, y, z) or Problem
        A blocking :class:`FrameCountError` problem when the vector does not have one
        value per frame.
    """
    offsets: Sequence[float] = values.get("GridFrameOffsetVector") or ()
    if len(offsets) != n_frames:
        return Problem(
            FrameCountError.code,
            f"(3004,000C) 'Grid Frame Offset Vector' has {len(offsets)} values for "
            f"{n_frames} frames, expected one per frame - the dose grid cannot be placed",
            blocking=True,
        )
    iop = values["ImageOrientationPatient"]
    ipp = np.asarray(values["ImagePositionPatient"], dtype=np.float64)
    normal = slice_normal(iop)
    base = float(offsets[0])
    out: list[tuple[float, float, float]] = []
    for off in offsets:
        pos = ipp + (float(off) - base) * normal
        out.append((float(pos[0]), float(pos[1]), float(pos[2])))
    return out


def is_dose_grid(values: Mapping[str, Any], enhanced: bool, n_frames: int) -> bool:
    """A multi-frame RT dose grid that (3004,000C) Grid Frame Offset Vector places."""
    return (
        not enhanced
        and n_frames > 1
        and values.get("GridFrameOffsetVector") is not None
        and has_plane(values)
        and not isinstance(dose_positions(values, n_frames), Problem)
    )


def frame_positions(
    ipp: Sequence[float], n_frames: int
) -> tuple[tuple[float, float, float], ...]:
    """The one plane of a multi-frame object repeated for each frame (4th axis)."""
    pos = (float(ipp[0]), float(ipp[1]), float(ipp[2]))
    return (pos,) * n_frames


_NM_SHORT = {
    "EnergyWindowVector": "ew",
    "DetectorVector": "det",
    "PhaseVector": "phase",
    "RotationVector": "rot",
    "RRIntervalVector": "rr",
    "TimeSlotVector": "slot",
    "AngularViewVector": "view",
    "TimeSliceVector": "tslice",
}


def nm_groups(
    values: Mapping[str, Any], n_frames: int
) -> (
    list[tuple[list[str], list[int], list[tuple[float, float, float]] | None]] | Problem
):
    """The stacks of an NM multi-frame object (PS3.3 C.8.4.8).

    Its frames are indexed by the vectors (0028,0009) Frame Increment Pointer names. Frames
    that share every index but the slice index form one stack: one per detector, energy
    window, phase, rotation... Within a stack, frames are ordered by (0054,0080) Slice Vector
    when it is named; a reconstructed tomogram (a plane and Spacing Between Slices) then
    places slice ``k`` at Image Position (Patient) + (k - 1) x spacing x normal. Without
    those, the frames go on the 4th axis.

    Returns
    -------
    list of (label parts, frame indices, slice positions or None), or Problem
        A blocking :class:`FrameCountError` problem when a vector does not have one value
        per frame.
    """
    names = [
        NM_VECTORS[t]
        for t in values.get("FrameIncrementPointer") or ()
        if t in NM_VECTORS
    ]
    vectors: dict[str, tuple[int, ...]] = {}
    for name in names:
        vec = tuple(values.get(name) or ())
        if len(vec) != n_frames:
            return Problem(
                FrameCountError.code,
                f"NM {name} has {len(vec)} values for {n_frames} frames, expected one per "
                "frame (PS3.3 C.8.4.8) - the header is corrupt",
                blocking=True,
            )
        vectors[name] = vec
    split = [n for n in names if n != "SliceVector"]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in range(n_frames):
        groups.setdefault(tuple(vectors[n][i] for n in split), []).append(i)
    slices = vectors.get("SliceVector")
    spacing = values.get("SpacingBetweenSlices")
    placed = slices is not None and has_plane(values) and spacing and float(spacing) > 0
    out: list[tuple[list[str], list[int], list[tuple[float, float, float]] | None]] = []
    for key in sorted(groups):
        frames = groups[key]
        if slices is not None:
            frames = sorted(frames, key=lambda i: (slices[i], i))
        label = (
            [f"{_NM_SHORT[n]}{v}" for n, v in zip(split, key, strict=True)]
            if len(groups) > 1
            else []
        )
        positions = None
        if placed and slices is not None:
            ipp = np.asarray(values["ImagePositionPatient"], dtype=np.float64)
            normal = slice_normal(values["ImageOrientationPatient"])
            step = float(spacing or 0.0)
            positions = []
            for i in frames:
                pos = ipp + (slices[i] - 1) * step * normal
                positions.append((float(pos[0]), float(pos[1]), float(pos[2])))
        out.append((label, frames, positions))
    return out
