"""Group indexed headers into studies, series and convertible stacks.

A series (SeriesInstanceUID) is split into several stacks when its images cannot form one
volume: different matrix size, orientation, pixel spacing, echo, image type, enhanced Stack
ID, pixel format, or acquisitions that cover different slice positions. Each split records
why (``Stack.split_reason``). Within a stack, images are sorted along the slice normal by
dot(Image Position (Patient), normal), never by Instance Number; repeated acquisitions of the
same positions make it 4-D, with volumes ordered by (Acquisition Number, Temporal Position,
Acquisition Time, Instance Number). Missing slices, uneven spacing and duplicate SOP Instance
UIDs are recorded as problems, counted once per stack.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clisonix_cli.dicom.display import display_of
from clisonix_cli.dicom.geometry import (
    ORIENTATION_TOL,
    cluster_positions,
    contiguous_runs,
    mosaic_grid,
    orientation_problem,
    slice_normal,
    spacing_problems,
)
from clisonix_cli.dicom.header import FileHeader
from clisonix_cli.dicom.model import PixelInfo, Problem, Stack, StackGeometry
from clisonix_cli.dicom.planar import dose_positions, is_dose_grid
from clisonix_cli.dicom.sidecar import sidecar_meta
from clisonix_cli.errors import (
    DuplicateInstanceError,
    GeometryError,
    InconsistentStackError,
)

__all__ = ["GAPS"]

#: ``--gaps`` choices: a series with missing slices is split into its contiguous runs
#: (default), fails as a whole, or is kept as one volume with the gap noted.
GAPS = ("split", "fail", "keep")


@dataclass
class _Item:
    """One image (a file, or a frame of an enhanced object) with what grouping needs."""

    header: FileHeader
    frame: int | None
    ipp: tuple[float, ...] | None
    iop: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    slope: float
    intercept: float
    echo_number: int | None
    echo_time: float | None
    stack_id: str | None
    order: tuple[Any, ...]
    slice_spacing: float | None
    dist: float = 0.0

    @property
    def path(self) -> str:
        return self.header.path

    @property
    def kind(self) -> str:
        if self.header.frames is not None:
            return "enhanced"
        if self.frame is not None:
            return "multiframe"  # legacy: frames of one file, no functional groups
        if "MOSAIC" in (self.header.get("ImageType") or ()):
            return "mosaic"  # without a CSA header: reported as a blocking problem
        return "slices"


@dataclass
class _Group:
    """Items sharing one compatibility key inside a series."""

    key: dict[str, Any]
    items: list[_Item] = field(default_factory=list)
    label_parts: list[str] = field(default_factory=list)
    reason: str = ""


_KEY_NAMES = {
    "kind": "storage (mosaic, enhanced, single slices)",
    "matrix": "matrix size",
    "orientation": "orientation",
    "spacing": "pixel spacing",
    "echo": "echo number/time",
    "image_type": "image type",
    "stack_id": "enhanced Stack ID",
    "pixel_format": "pixel format",
}


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _slice_spacing(values: dict[str, Any]) -> float | None:
    sbs = _float_or_none(values.get("SpacingBetweenSlices"))
    if sbs is not None and sbs > 0:
        return sbs
    thick = _float_or_none(values.get("SliceThickness"))
    return thick if thick is not None and thick > 0 else None


def _volume_order(h: FileHeader) -> tuple[Any, ...]:
    return (
        h.get("AcquisitionNumber") if h.get("AcquisitionNumber") is not None else -1,
        h.get("TemporalPositionIdentifier") or 0,
        str(h.get("AcquisitionTime") or ""),
        h.get("InstanceNumber") if h.get("InstanceNumber") is not None else -1,
        h.path,
    )


def _items(h: FileHeader) -> list[_Item]:
    """The images of one header: one item, or one per frame of an enhanced object."""
    v = h.values
    slope = _float_or_none(v.get("RescaleSlope"))
    inter = _float_or_none(v.get("RescaleIntercept"))
    slope = 1.0 if slope is None or slope == 0 else slope
    inter = 0.0 if inter is None else inter
    echo_n = v.get("EchoNumbers")
    echo_t = _float_or_none(v.get("EchoTime"))
    if is_dose_grid(v, h.frames is not None, h.pixel.n_frames):
        scaling = _float_or_none(v.get("DoseGridScaling"))
        placed = dose_positions(v, h.pixel.n_frames)
        base = _Item(
            header=h, frame=None, ipp=None, iop=v.get("ImageOrientationPatient"),
            spacing=v.get("PixelSpacing"),
            slope=scaling if scaling else slope, intercept=inter,
            echo_number=None, echo_time=None, stack_id=None, order=(),
            slice_spacing=None,
        )  # fmt: skip
        if isinstance(placed, Problem):
            return [dataclasses.replace(base, frame=0, order=(0,))]
        return [
            dataclasses.replace(base, frame=i, ipp=pos, order=(i,))
            for i, pos in enumerate(placed)
        ]
    if h.frames is None:
        return [
            _Item(
                header=h,
                frame=None,
                ipp=v.get("ImagePositionPatient"),
                iop=v.get("ImageOrientationPatient"),
                spacing=v.get("PixelSpacing"),
                slope=slope,
                intercept=inter,
                echo_number=echo_n,
                echo_time=echo_t,
                stack_id=None,
                order=_volume_order(h),
                slice_spacing=_slice_spacing(v),
            )
        ]
    out = []
    for i, f in enumerate(h.frames):
        f_slope = f.get("RescaleSlope")
        f_inter = f.get("RescaleIntercept")
        sbs = (
            f.get("SpacingBetweenSlices")
            or f.get("SliceThickness")
            or _slice_spacing(v)
        )
        out.append(
            _Item(
                header=h,
                frame=i,
                ipp=f.get("ImagePositionPatient") or v.get("ImagePositionPatient"),
                iop=f.get("ImageOrientationPatient")
                or v.get("ImageOrientationPatient"),
                spacing=f.get("PixelSpacing") or v.get("PixelSpacing"),
                slope=slope if f_slope is None or f_slope == 0 else float(f_slope),
                intercept=inter if f_inter is None else float(f_inter),
                echo_number=echo_n,
                echo_time=f.get("EchoTime")
                if f.get("EchoTime") is not None
                else echo_t,
                stack_id=f.get("StackID"),
                order=(
                    f.get("TemporalPositionIndex") or 0,
                    f.get("FrameAcquisitionNumber") or 0,
                    f.get("DimensionIndexValues") or (),
                    i,
                ),
                slice_spacing=sbs,
            )
        )
    return out


def _near(a: tuple[float, ...] | None, b: tuple[float, ...] | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(
        abs(x - y) <= tol for x, y in zip(a, b, strict=True)
    )


def _compat_key(
    item: _Item, reps: dict[str, list[tuple[float, ...] | None]]
) -> dict[str, Any]:
    """The compatibility key of an item; near-equal orientations/spacings share one rank."""
    h = item.header
    px = h.pixel

    def rank(name: str, value: tuple[float, ...] | None, tol: float) -> int:
        seen = reps.setdefault(name, [])
        for k, rep in enumerate(seen):
            if _near(rep, value, tol):
                return k
        seen.append(value)
        return len(seen) - 1

    kind = item.kind
    n_tiles = int(h.csa.get("n_mosaic", 0)) if kind == "mosaic" and h.csa else 0
    return {
        "kind": (kind, n_tiles),
        "matrix": (px.rows, px.cols),
        "orientation": rank("orientation", item.iop, ORIENTATION_TOL),
        "spacing": rank("spacing", item.spacing, 1e-4),
        "echo": (
            item.echo_number if item.echo_number is not None else -1,
            round(item.echo_time, 3) if item.echo_time is not None else -1.0,
        ),
        "image_type": tuple(h.get("ImageType") or ()),
        "stack_id": item.stack_id or "",
        "pixel_format": (
            (px.bits_allocated, px.pixel_representation)
            if not _colour_of(h)
            else (px.bits_allocated, px.pixel_representation, _colour_of(h))
        ),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "x"


def _label(name: str, key: dict[str, Any]) -> str:
    val = key[name]
    if name == "matrix":
        return f"{val[0]}x{val[1]}"
    if name == "echo":
        num, te = val
        return f"echo{num}" if num >= 0 else f"te{te:g}"
    if name == "image_type":
        return _slug("-".join(val)) if val else "notype"
    if name == "stack_id":
        return f"stack{_slug(val)}"
    if name == "orientation":
        return f"ori{val + 1}"
    if name == "spacing":
        return f"sp{val + 1}"
    if name == "kind":
        return str(val[0])
    return f"bits{val[0]}"


def _split_series(items: list[_Item]) -> list[_Group]:
    """Split the items of one series by compatibility key; record what differs."""
    reps: dict[str, list[tuple[float, ...] | None]] = {}
    groups: dict[tuple[Any, ...], _Group] = {}
    for it in items:
        key = _compat_key(it, reps)
        hkey = tuple(key[k] for k in _KEY_NAMES)
        grp = groups.get(hkey)
        if grp is None:
            grp = groups[hkey] = _Group(key)
        grp.items.append(it)
    out = sorted(
        groups.values(),
        key=lambda g: (
            g.key["echo"],
            g.key["stack_id"],
            g.key["image_type"],
            g.key["matrix"],
            g.key["orientation"],
            g.key["spacing"],
            g.key["kind"],
            g.key["pixel_format"],
            g.items[0].path,
        ),
    )
    if len(out) > 1:
        differ = [n for n in _KEY_NAMES if len({repr(g.key[n]) for g in out}) > 1]
        reason = (
            f"series holds {len(out)} stacks that differ in "
            + ", ".join(_KEY_NAMES[n] for n in differ)
            + " ("
            + "; ".join(
                "/".join(sorted({_label(n, g.key) for g in out})) for n in differ
            )
            + ")"
        )
        for g in out:
            g.label_parts = [_label(n, g.key) for n in differ]
            g.reason = reason
    return out


@dataclass
class _Planned:
    """One stack's items in final order, with its shape and problems."""

    items: list[_Item]
    n_slices: int
    n_volumes: int
    problems: list[Problem]
    label_parts: list[str]
    reason: str
    geometry_ok: bool
    # set for stacks whose geometry is not read from slice positions (2-D images, frames)
    geometry: StackGeometry | None = None
    geometry_kind: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    step: tuple[float, float, float] | None = None


def _by_acquisition(items: list[_Item]) -> dict[Any, list[_Item]]:
    acq: dict[Any, list[_Item]] = defaultdict(list)
    for it in items:
        if it.frame is not None:
            key = it.order[0]  # TemporalPositionIndex of an enhanced frame
        else:
            key = it.header.get("AcquisitionNumber")
        acq[key].append(it)
    return acq


def _plan_group(grp: _Group, gaps: str = "split") -> list[_Planned]:
    """Sort one compatible group along its normal; detect 4-D, gaps and repeats."""
    items = grp.items
    first = items[0]
    kind = first.kind
    problems: list[Problem] = []
    geo_msg = orientation_problem(first.iop)
    if geo_msg is None and any(it.ipp is None or len(it.ipp) != 3 for it in items):
        n_missing = sum(1 for it in items if it.ipp is None or len(it.ipp) != 3)
        geo_msg = (
            f"(0020,0032) 'Image Position (Patient)' is missing in {n_missing} of "
            f"{len(items)} images - the series carries no slice positions"
        )
    if geo_msg is None and (first.spacing is None or len(first.spacing) != 2):
        geo_msg = (
            "(0028,0030) 'Pixel Spacing' is missing or has not 2 values - the series may be "
            "a secondary capture, which has no geometry to convert"
        )
    if geo_msg is not None:
        problems.append(Problem(GeometryError.code, geo_msg, blocking=True))
        ordered = sorted(items, key=lambda it: (it.order, it.frame or 0))
        if kind == "mosaic":
            n_tiles = (
                int(first.header.csa.get("n_mosaic", 0)) if first.header.csa else 0
            )
            return [
                _Planned(
                    ordered,
                    n_tiles,
                    len(ordered),
                    problems,
                    grp.label_parts,
                    grp.reason,
                    False,
                )
            ]  # noqa: E501
        return [
            _Planned(
                ordered, len(ordered), 1, problems, grp.label_parts, grp.reason, False
            )
        ]  # noqa: E501

    assert first.iop is not None
    normal = slice_normal(first.iop)
    for it in items:
        assert it.ipp is not None
        it.dist = float(np.dot(np.asarray(it.ipp), normal))

    if kind == "mosaic":
        return [_plan_mosaic(grp, problems)]

    clusters = cluster_positions([it.dist for it in items])
    counts = {len(c) for c in clusters}
    if counts == {1} or len(counts) == 1:
        return _finish_gaps(grp, items, clusters, problems, gaps)
    # Uneven repeats: acquisitions covering different positions are separate stacks.
    acq = _by_acquisition(items)
    if len(acq) > 1:
        parts = []
        for key in sorted(acq, key=lambda k: (k is None, k if k is not None else 0)):
            sub = acq[key]
            sub_clusters = cluster_positions([it.dist for it in sub])
            if any(len(c) > 1 for c in sub_clusters):
                break
            label = grp.label_parts + [f"acq{key if key is not None else 'none'}"]
            reason = (
                grp.reason + "; " if grp.reason else ""
            ) + f"its {len(acq)} acquisitions cover different slice positions"
            parts.append(_finish(grp, sub, sub_clusters, [], label, reason))
        else:
            return parts
    sizes = sorted(counts)
    problems.append(
        Problem(
            InconsistentStackError.code,
            f"{sum(1 for c in clusters if len(c) > 1)} of {len(clusters)} slice positions "
            f"hold {sizes[0]} to {sizes[-1]} images each, expected the same count at every "
            "position - a repeated or partial acquisition is mixed into the series",
            blocking=True,
        )
    )
    ordered = [items[i] for c in clusters for i in c]
    return [
        _Planned(ordered, len(clusters), 1, problems, grp.label_parts, grp.reason, True)
    ]


def _finish_gaps(
    grp: _Group,
    items: list[_Item],
    clusters: list[list[int]],
    problems: list[Problem],
    gaps: str,
) -> list[_Planned]:
    """:func:`_finish`, then the ``--gaps`` choice for a stack with missing slices."""
    whole = _finish(grp, items, clusters, problems, grp.label_parts, grp.reason)
    gap = next(
        (p for p in whole.problems if p.blocking and "missing slice" in p.message), None
    )
    if gap is None or gaps == "fail":
        return [whole]
    dist = [float(np.mean([items[i].dist for i in c])) for c in clusters]
    runs = contiguous_runs(dist)
    if gaps == "keep":
        kept = [
            Problem(
                "", f"{gap.message.split(' - ')[0]}; kept as one volume (--gaps keep)"
            )
            if p is gap
            else p
            for p in whole.problems
        ]
        firsts = [min(items[i].dist for i in c) for c in clusters]
        step = float(np.median(np.diff(firsts)))
        first = whole.items[0]
        assert first.iop is not None
        normal = slice_normal(first.iop)
        whole.problems = kept
        whole.step = (
            float(normal[0] * step),
            float(normal[1] * step),
            float(normal[2] * step),
        )
        whole.meta = {
            "SliceGaps": [
                {
                    "after_index": int(run[-1]),
                    "missing": int(round((dist[nxt[0]] - dist[run[-1]]) / step)) - 1,
                }
                for run, nxt in zip(runs, runs[1:], strict=False)
            ]
        }
        return [whole]
    out = []
    for k, run in enumerate(runs, start=1):
        sub_clusters = [clusters[i] for i in run]
        label = grp.label_parts + [f"run{k}"]
        reason = (grp.reason + "; " if grp.reason else "") + (
            f"{gap.message.split(' - ')[0]}: split into its {len(runs)} contiguous runs "
            "(--gaps split)"
        )
        out.append(_finish(grp, items, sub_clusters, list(problems), label, reason))
    return out


def _finish(
    grp: _Group,
    items: list[_Item],
    clusters: list[list[int]],
    problems: list[Problem],
    label_parts: list[str],
    reason: str,
) -> _Planned:
    """Order items volume-major (t, then slices along the normal) and check the spacing."""
    n_vol = len(clusters[0])
    per_pos = [sorted((items[i] for i in c), key=lambda it: it.order) for c in clusters]
    ordered = [per_pos[s][t] for t in range(n_vol) for s in range(len(clusters))]
    first_vol = [per_pos[s][0] for s in range(len(clusters))]
    dist = [float(np.mean([items[i].dist for i in c])) for c in clusters]
    assert first_vol[0].iop is not None
    positions = np.asarray([it.ipp for it in first_vol], dtype=np.float64)
    probs = list(problems) + spacing_problems(
        dist, positions, slice_normal(first_vol[0].iop)
    )
    return _Planned(ordered, len(clusters), n_vol, probs, label_parts, reason, True)


def _plan_mosaic(grp: _Group, problems: list[Problem]) -> _Planned:
    items = grp.items
    first = items[0]
    n_tiles = int((first.header.csa or {}).get("n_mosaic", 0))
    try:
        mosaic_grid(first.header.pixel.rows, first.header.pixel.cols, n_tiles)
    except GeometryError as exc:
        problems.append(Problem(exc.code, exc.message, blocking=True))
    clusters = cluster_positions([it.dist for it in items])
    if len(clusters) > 1:
        problems.append(
            Problem(
                InconsistentStackError.code,
                f"the mosaic volumes of this series sit at {len(clusters)} different "
                "positions, expected one - the slab moved between volumes",
                blocking=True,
            )
        )
    ordered = sorted(items, key=lambda it: it.order)
    return _Planned(
        ordered, n_tiles, len(ordered), problems, grp.label_parts, grp.reason, True
    )


def _rescale_problem(items: Sequence[_Item]) -> Problem | None:
    pairs = {(it.slope, it.intercept) for it in items}
    if len(pairs) > 1:
        return Problem(
            "",
            f"{len(pairs)} different rescale slope/intercept pairs: converted to float32 "
            "real values",
        )
    return None


def _stack(
    planned: _Planned, idx: int, n_total: int, dup_counts: dict[str, int]
) -> Stack:
    items = planned.items
    first = items[0]
    h = first.header
    kind = first.kind
    px = h.pixel
    rows, cols = px.rows, px.cols
    if kind == "mosaic" and planned.n_slices > 0:
        try:
            _, rows, cols = mosaic_grid(px.rows, px.cols, planned.n_slices)
        except GeometryError:
            pass
    problems = list(planned.problems)
    n_dup = sum(dup_counts.get(p, 0) for p in {it.path for it in items})
    if n_dup:
        problems.append(
            Problem(
                DuplicateInstanceError.code,
                f"{n_dup} duplicate instance(s) dropped: same (0008,0018) SOP Instance UID "
                "as a file kept in this stack",
            )
        )
    rescale = _rescale_problem(items)
    if rescale is not None:
        problems.append(rescale)
    syntaxes = sorted({it.header.pixel.transfer_syntax for it in items})
    if len(syntaxes) > 1:
        problems.append(
            Problem(
                "",
                f"files use {len(syntaxes)} transfer syntaxes: {', '.join(syntaxes)}",
            )
        )
    geometry = planned.geometry
    if geometry is None and planned.geometry_ok:
        assert first.iop is not None and first.spacing is not None
        csa = h.csa or {}
        geometry = StackGeometry(
            orientation=tuple(float(v) for v in first.iop),
            pixel_spacing=(float(first.spacing[0]), float(first.spacing[1])),
            positions=tuple(
                (float(it.ipp[0]), float(it.ipp[1]), float(it.ipp[2]))  # type: ignore[index]
                for it in items
            ),
            rescale=tuple((it.slope, it.intercept) for it in items),
            slice_spacing=first.slice_spacing,
            mosaic_tiles=int(csa.get("n_mosaic", 0)) if kind == "mosaic" else 0,
            mosaic_normal=tuple(csa["slice_normal"])
            if kind == "mosaic" and csa.get("slice_normal") is not None
            else None,
            slice_step=planned.step,
        )
    key = f"{idx}-" + "-".join(planned.label_parts) if planned.label_parts else str(idx)
    meta = sidecar_meta(h.values)
    if kind == "mosaic" and h.csa and h.csa.get("slice_times_ms"):
        meta["SliceTiming"] = [round(t / 1000.0, 6) for t in h.csa["slice_times_ms"]]
    meta.update(planned.meta)
    colour = _colour_of(h)
    if planned.geometry_kind:
        meta["Geometry"] = planned.geometry_kind
    photometric = h.pixel.photometric
    if colour or photometric == "MONOCHROME1":
        meta["PhotometricInterpretation"] = photometric
    bytes_per = max(1, math.ceil(px.bits_allocated / 8))
    pixels: tuple[PixelInfo, ...] = tuple(it.header.pixel for it in items)
    return Stack(
        study_uid=str(h.get("StudyInstanceUID") or ""),
        series_uid=str(h.get("SeriesInstanceUID") or ""),
        stack_key=key,
        files=tuple(it.path for it in items),
        modality=str(h.get("Modality") or ""),
        series_number=h.get("SeriesNumber"),
        series_description=str(h.get("SeriesDescription") or ""),
        rows=rows,
        cols=cols,
        n_slices=planned.n_slices,
        n_volumes=planned.n_volumes,
        transfer_syntax=px.transfer_syntax,
        bits_allocated=px.bits_allocated,
        est_bytes=rows * cols * planned.n_slices * planned.n_volumes * bytes_per,
        frames=tuple(it.frame for it in items if it.frame is not None)
        if kind in ("enhanced", "multiframe")
        else (),
        pixels=pixels,
        kind=kind,
        warnings=tuple(p.message for p in problems if not p.blocking),
        geometry=geometry,
        problems=tuple(problems),
        split_reason=planned.reason,
        meta=tuple(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(meta.items())
        ),
        geometry_kind=planned.geometry_kind,
        colour=colour,
        sop_class=str(h.get("SOPClassUID") or ""),
        display=display_of(h.values, h.pixel),
    )


def _colour_of(h: FileHeader) -> str:
    """The stored colour model of a colour image ("" for greyscale)."""
    px = h.pixel
    if px.samples_per_pixel == 1 and px.photometric in (
        "",
        "MONOCHROME1",
        "MONOCHROME2",
    ):
        return ""
    return px.photometric or "?"
