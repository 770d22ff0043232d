"""Series into stacks: duplicates set aside, each series planned, 2-D objects on their own.

:func:`build_stacks` is the scan's last step. Volumetric images of a series are grouped,
sorted and checked by :mod:`clisonix_cli.dicom.series`; files without patient geometry
(projection X-ray, ultrasound, secondary captures) and legacy multi-frame objects become
stacks of their own here, placed by :mod:`clisonix_cli.dicom.planar`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence

from clisonix_cli.dicom.header import NM_VECTORS, FileHeader
from clisonix_cli.dicom.model import Problem, Skipped, Stack, StackGeometry
from clisonix_cli.dicom.planar import (
    dose_positions,
    frame_positions,
    frame_time_problems,
    has_plane,
    is_dose_grid,
    nm_groups,
    planar_geometry,
    planar_meta,
)
from clisonix_cli.dicom.series import (
    GAPS,
    _items,
    _plan_group,
    _Planned,
    _slug,
    _split_series,
    _stack,
)
from clisonix_cli.errors import DuplicateInstanceError, GeometryError

__all__ = ["GAPS", "TOMOGRAPHIC", "build_stacks"]

#: Modalities whose multi-frame objects without per-frame positions put their frames on
#: the 4th axis (they are slices or time points of a cross-section, not a cine loop).
TOMOGRAPHIC = frozenset({"MR", "CT", "PT", "NM"})
_FOURTH = "4th axis: the frames have no per-frame position"


def _series_key(h: FileHeader) -> tuple[str, str]:
    series = h.get("SeriesInstanceUID")
    if not series:
        folder = h.path.rsplit("/", 1)[0] if "/" in h.path else "."
        series = f"no-series-uid:{folder}"
    return str(h.get("StudyInstanceUID") or ""), str(series)


def _multiframe_without_geometry(h: FileHeader) -> bool:
    return (
        h.frames is None
        and h.pixel.n_frames > 1
        and not is_dose_grid(h.values, h.frames is not None, h.pixel.n_frames)
    )


def build_stacks(
    headers: Iterable[FileHeader], *, gaps: str = "split"
) -> tuple[list[Stack], list[Skipped]]:
    """Group headers into stacks (sorted, split, checked) and skip duplicate instances.

    Parameters
    ----------
    headers : iterable of FileHeader
        Image headers (files with pixel data), in any order.
    gaps : str
        What a stack with missing slices becomes (:data:`GAPS`): its contiguous runs
        (``split``, default), one failing stack (``fail``) or one volume with the gap noted
        (``keep``).

    Returns
    -------
    stacks : list of Stack
        Sorted by (study UID, series number, series UID, stack index).
    skipped : list of Skipped
        Duplicate instances (same SOP Instance UID as a kept file), CLX-E122.
    """
    ordered = sorted(headers, key=lambda h: h.path)
    skipped: list[Skipped] = []
    kept_sop: dict[str, str] = {}
    dup_counts: dict[str, int] = defaultdict(int)
    series: dict[tuple[str, str], list[FileHeader]] = defaultdict(list)
    for h in ordered:
        sop = h.get("SOPInstanceUID")
        if sop:
            if sop in kept_sop:
                kept = kept_sop[sop]
                dup_counts[kept] += 1
                skipped.append(
                    Skipped(
                        h.path,
                        DuplicateInstanceError.code,
                        f"duplicate instance: same (0008,0018) SOP Instance UID as {kept}, "
                        "which is kept",
                        others=(kept,),
                    )
                )
                continue
            kept_sop[sop] = h.path
        series[_series_key(h)].append(h)

    stacks: list[Stack] = []
    for skey in sorted(series, key=lambda k: (k[0], _series_sort(series[k]), k[1])):
        hs = series[skey]
        singles = [h for h in hs if _multiframe_without_geometry(h)]
        planar = [
            h
            for h in hs
            if h.frames is None
            and not h.get("ImageOrientationPatient")
            and h not in singles
        ]
        rest = [h for h in hs if h not in singles and h not in planar]
        planned: list[_Planned] = []
        if rest:
            for grp in _split_series([it for h in rest for it in _items(h)]):
                planned.extend(_plan_group(grp, gaps))
        n_own = len(singles) + len(planar) + len(planned)
        for h in planar + singles:
            if h.get("FrameIncrementPointer") and str(h.get("Modality") or "") == "NM":
                planned.extend(_plan_nm(h, n_own))
            else:
                planned.append(_plan_multiframe(h, n_own))
        for i, p in enumerate(planned, start=1):
            stacks.append(_stack(p, i, len(planned), dup_counts))
    return stacks, skipped


def _series_sort(hs: list[FileHeader]) -> int:
    nums = [h.get("SeriesNumber") for h in hs if h.get("SeriesNumber") is not None]
    return min(nums) if nums else -1


def _plan_nm(h: FileHeader, n: int) -> list[_Planned]:
    """An NM multi-frame object: one stack per detector, energy window, phase... (its
    frame index vectors), each placed slice by slice when it is a reconstructed tomogram."""
    groups = nm_groups(h.values, h.pixel.n_frames)
    if isinstance(groups, Problem):
        label = [_slug(h.path.rsplit("/", 1)[-1])] if n > 1 else []
        return [_Planned(_items(h)[:1], 1, 1, [groups], label, "", False)]
    names = [
        NM_VECTORS[t]
        for t in h.get("FrameIncrementPointer") or ()
        if t in NM_VECTORS and NM_VECTORS[t] != "SliceVector"
    ]
    reason = (
        f"the NM object's frames form {len(groups)} stacks by {', '.join(names)} "
        "(PS3.3 C.8.4.8)"
        if len(groups) > 1
        else ""
    )
    return [
        _plan_multiframe(h, n, ids, extra, reason, positions)
        for extra, ids, positions in groups
    ]


def _plan_multiframe(
    h: FileHeader,
    n: int,
    frame_ids: list[int] | None = None,
    label_extra: Sequence[str] = (),
    reason: str = "",
    positions: list[tuple[float, float, float]] | None = None,
) -> _Planned:
    """One file (or some of its frames) as its own stack: a 2-D image (frames on the 3rd
    axis) when it carries no plane, else the frames of one plane on the 4th axis (legacy
    multi-frame), or slices at ``positions`` (an NM tomogram)."""
    item = _items(h)[0]
    px = h.pixel
    ids = list(range(px.n_frames)) if frame_ids is None else frame_ids
    frames = len(ids)
    label = ([_slug(h.path.rsplit("/", 1)[-1])] if n > 1 else []) + list(label_extra)
    if px.n_frames > 1:
        items = [
            dataclasses.replace(item, frame=i, order=(k,)) for k, i in enumerate(ids)
        ]
    else:
        items = [item]
    geo: StackGeometry | None = None
    if positions is not None and item.spacing is not None and item.iop is not None:
        geo = StackGeometry(
            orientation=tuple(float(v) for v in item.iop),
            pixel_spacing=(float(item.spacing[0]), float(item.spacing[1])),
            positions=tuple(positions),
            rescale=tuple((it.slope, it.intercept) for it in items),
            slice_spacing=item.slice_spacing,
        )
        meta = planar_meta(h.values)
        problems = frame_time_problems(h.values, px.n_frames)
        return _Planned(items, frames, 1, problems, label, reason, True, geo, "", meta)
    if h.get("GridFrameOffsetVector") is not None and has_plane(h.values):
        placed = dose_positions(h.values, frames)
        problem = placed if isinstance(placed, Problem) else None
        return _Planned(
            items, frames, 1, [problem] if problem else [], label, reason, False
        )
    if not has_plane(h.values):
        # cine loops (ultrasound, X-ray, captures): frames on the 3rd axis; the frames of
        # a tomographic modality without positions (legacy MR, NM): the 4th axis
        fourth = frames > 1 and str(h.get("Modality") or "") in TOMOGRAPHIC
        flat, kind, meta, problems = planar_geometry(
            h.values, px.rows, px.cols, 1 if fourth else frames, len(items)
        )
        problems += frame_time_problems(h.values, px.n_frames)
        if flat is not None:
            geo = dataclasses.replace(
                flat,
                rescale=tuple((it.slope, it.intercept) for it in items),
                positions=flat.positions * len(items) if fourth else flat.positions,
            )
        if fourth:
            meta["FrameAxis"] = _FOURTH
            return _Planned(
                items,
                1,
                frames,
                problems,
                label,
                reason,
                geo is not None,
                geo,
                "frames",
                meta,
            )
        return _Planned(
            items, frames, 1, problems, label, reason, geo is not None, geo, kind, meta
        )
    # a plane without per-frame positions: the frames go on the 4th axis
    problems = frame_time_problems(h.values, px.n_frames)
    spacing = item.spacing
    if spacing is None or len(spacing) != 2 or min(spacing) <= 0:
        geo_problem = Problem(
            GeometryError.code,
            "(0028,0030) 'Pixel Spacing' is missing or invalid in a multi-frame object "
            "whose frames have no per-frame position",
            blocking=True,
        )
        return _Planned(items, 1, frames, [geo_problem], label, reason, False)
    assert item.iop is not None and item.ipp is not None
    geo = StackGeometry(
        orientation=tuple(float(v) for v in item.iop),
        pixel_spacing=(float(spacing[0]), float(spacing[1])),
        positions=frame_positions(item.ipp, frames),
        rescale=tuple((it.slope, it.intercept) for it in items),
        slice_spacing=item.slice_spacing,
    )
    meta = {**planar_meta(h.values), "FrameAxis": _FOURTH}
    return _Planned(
        items, 1, frames, problems, label, reason, True, geo, "frames", meta
    )
