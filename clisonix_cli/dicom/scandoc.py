"""The ``clisonix scan --json`` document (documented in docs/scan.md).

Built from a :class:`~clisonix_cli.dicom.model.ScanResult`; it holds no patient
identifiers, since the index never reads them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from clisonix_cli.dicom.model import ScanResult, Stack

__all__ = ["SCAN_SCHEMA", "scan_document", "stack_document"]

SCAN_SCHEMA = "clisonix.scan/1"

#: Short names of the image SOP classes (PS3.4 B.5), for the scan's "object" field.
_OBJECTS = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX (for processing)",
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG (for processing)",
    "1.2.840.10008.5.1.4.1.1.1.3": "IO",
    "1.2.840.10008.5.1.4.1.1.1.3.1": "IO (for processing)",
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "enhanced CT",
    "1.2.840.10008.5.1.4.1.1.3.1": "US multi-frame",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "enhanced MR",
    "1.2.840.10008.5.1.4.1.1.6.1": "US",
    "1.2.840.10008.5.1.4.1.1.7": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "SC multi-frame (1-bit)",
    "1.2.840.10008.5.1.4.1.1.7.2": "SC multi-frame (byte)",
    "1.2.840.10008.5.1.4.1.1.7.3": "SC multi-frame (word)",
    "1.2.840.10008.5.1.4.1.1.7.4": "SC multi-frame (true colour)",
    "1.2.840.10008.5.1.4.1.1.12.1": "XA",
    "1.2.840.10008.5.1.4.1.1.12.2": "RF",
    "1.2.840.10008.5.1.4.1.1.20": "NM",
    "1.2.840.10008.5.1.4.1.1.30": "parametric map",
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation",
    "1.2.840.10008.5.1.4.1.1.128": "PET",
    "1.2.840.10008.5.1.4.1.1.481.1": "RT image",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT dose",
}


def object_kind(stack: Stack) -> str:
    """A short name of a stack's object (its SOP class, else its modality)."""
    return _OBJECTS.get(stack.sop_class) or stack.modality or "image"


def _stack_spacing(stack: Stack) -> list[float] | None:
    geo = stack.geometry
    if geo is None:
        return None
    import numpy as np

    if stack.kind != "mosaic" and stack.n_slices > 1:
        pos = np.asarray(geo.positions[: stack.n_slices], dtype=np.float64)
        step = float(np.linalg.norm(pos[-1] - pos[0])) / (stack.n_slices - 1)
    else:
        step = float(geo.slice_spacing or 1.0)
    return [
        round(step, 6),
        round(geo.pixel_spacing[0], 6),
        round(geo.pixel_spacing[1], 6),
    ]


def _folder(files: Sequence[str]) -> str:
    parents = sorted({f.rsplit("/", 1)[0] if "/" in f else "." for f in files})
    return os.path.commonpath(parents) if parents and parents[0] != "." else "."


def stack_document(stack: Stack) -> dict[str, Any]:
    """The ``--json`` record of one stack (documented in docs/scan.md)."""
    shape = [stack.n_slices, stack.rows, stack.cols]
    if stack.n_volumes > 1:
        shape.insert(0, stack.n_volumes)
    return {
        "stack_key": stack.stack_key,
        "kind": stack.kind,
        "folder": _folder(stack.files),
        "n_files": len(set(stack.files)),
        "rows": stack.rows,
        "cols": stack.cols,
        "n_slices": stack.n_slices,
        "n_volumes": stack.n_volumes,
        "shape": shape,
        "spacing_mm": _stack_spacing(stack),
        "orientation": list(stack.geometry.orientation) if stack.geometry else None,
        "transfer_syntax": stack.transfer_syntax,
        "bits_allocated": stack.bits_allocated,
        "est_bytes": stack.est_bytes,
        "object": object_kind(stack),
        "geometry": stack.geometry_kind or "volume",
        "colour": stack.colour or "greyscale",
        "convertible": not any(p.blocking for p in stack.problems),
        "split_reason": stack.split_reason,
        "problems": [
            {"code": p.code, "message": p.message, "blocking": p.blocking}
            for p in stack.problems
        ],
    }


def scan_document(result: ScanResult) -> dict[str, Any]:
    """The whole ``clisonix scan --json`` document (documented in docs/scan.md).

    Parameters
    ----------
    result : ScanResult
        What :func:`~clisonix_cli.dicom.index.scan` returned.

    Returns
    -------
    dict
        JSON-ready; no patient identifiers (the index never reads them).
    """
    studies: dict[str, dict[str, dict[str, Any]]] = {}
    for st in result.stacks:
        series = studies.setdefault(st.study_uid, {})
        rec = series.get(st.series_uid)
        if rec is None:
            rec = series[st.series_uid] = {
                "series_uid": st.series_uid,
                "series_number": st.series_number,
                "series_description": st.series_description,
                "modality": st.modality,
                "stacks": [],
            }
        rec["stacks"].append(stack_document(st))
    by_code: dict[str, dict[str, Any]] = {}
    for sk in result.skipped:
        entry = by_code.setdefault(
            sk.code, {"count": 0, "summary": _summary_of(sk.code)}
        )
        entry["count"] += 1
    n_series = sum(len(s) for s in studies.values())
    return {
        "schema": SCAN_SCHEMA,
        "root": result.root,
        "counts": {
            "files": result.n_files,
            "dicom": result.n_dicom,
            "non_dicom": result.n_non_dicom,
            "unreadable": result.n_unreadable,
            "skipped": len(result.skipped),
            "studies": len(studies),
            "series": n_series,
            "stacks": len(result.stacks),
            "convertible_stacks": sum(
                1 for st in result.stacks if not any(p.blocking for p in st.problems)
            ),
        },
        "transfer_syntaxes": [
            {"uid": uid, **info}
            for uid, info in sorted(result.transfer_syntaxes.items())
        ],
        "objects": _tally(object_kind(st) for st in result.stacks),
        "geometry_kinds": _tally(st.geometry_kind or "volume" for st in result.stacks),
        "colour_models": _tally(st.colour or "greyscale" for st in result.stacks),
        "studies": [
            {"study_uid": uid, "series": list(series.values())}
            for uid, series in studies.items()
        ],
        "skipped": [
            {"path": s.path, "code": s.code, "reason": s.reason} for s in result.skipped
        ],
        "skipped_by_code": dict(sorted(by_code.items())),
        "non_dicom": list(result.non_dicom),
    }


def _tally(names: Any) -> list[dict[str, Any]]:
    """``[{"name", "count"}]`` sorted by name (names are data, not field names)."""
    out: dict[str, int] = {}
    for name in names:
        out[name] = out.get(name, 0) + 1
    return [{"name": k, "count": v} for k, v in sorted(out.items())]


def _summary_of(code: str) -> str:
    from clisonix_cli.errors import by_code

    cls = by_code(code)
    return "" if cls is None else cls.summary
