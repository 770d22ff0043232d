"""Everything QC measures on one series, from its sample and header: JSON-ready.

:func:`measure_series` runs where the pixels are (a task of ``clisonix qc`` or of
``clisonix transform --qc``); what it returns travels back to the driver, which compares
series with each other and with the baseline (:mod:`clisonix_cli.qc.assess`).
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.model import Stack
from clisonix_cli.errors import ClisonixError, QcMeasureError
from clisonix_cli.qc import ct, mr, xr
from clisonix_cli.qc.headers import kind_of, series_fields, station_of
from clisonix_cli.qc.sample import Sample, slice_positions, spacing_rc
from clisonix_cli.qc.thumb import thumbnail

#: Metrics compared with the baseline (drift, outliers), per modality kind, in order.
METRICS: dict[str, tuple[str, ...]] = {
    "ct": (
        "air_mean_hu",
        "air_sd_hu",
        "tissue_mean_hu",
        "tissue_sd_hu",
        "gnl_hu",
        "hu_p05",
        "hu_p50",
        "hu_p95",
    ),  # fmt: skip
    "mr": ("snr", "cnr", "cjv", "efc", "fber", "inu_cv_pct"),
    "xr": ("range_used_frac", "sat_low_frac", "sat_high_frac", "border_frac"),
    "other": ("mean", "sd", "p05", "p50", "p95"),
}
#: Significant digits kept in records (the same inputs give the same text).
DIGITS = 6


def rounded(value: Any) -> Any:
    """``value`` with floats cut to :data:`DIGITS` significant digits (None for NaN/inf)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{DIGITS}g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def series_header(root: Path, stack: Stack, key: bytes | None) -> dict[str, Any]:
    """The compared header fields of a stack (station keyed-hashed or left out)."""
    station = station_of(root / stack.files[0], key) if key and stack.files else None
    spacing = stack.geometry.pixel_spacing if stack.geometry is not None else None
    return series_fields(dict(stack.meta), spacing, kind_of(stack.modality), station)


def geometry_of(stack: Stack, sample: Sample | None) -> dict[str, Any]:
    """Slices, sample size, scan problems (codes only) and slice spacing regularity."""
    geo: dict[str, Any] = {
        "slices": stack.n_slices,
        "volumes": stack.n_volumes,
        "sampled": len(sample.indices) if sample is not None else 0,
        "problems": [
            {"code": p.code or None, "blocking": p.blocking} for p in stack.problems
        ],
    }
    if "--gaps split" in stack.split_reason:  # one run of a series with missing slices
        geo["gap_split"] = True
    kept = dict(stack.meta).get("SliceGaps")  # --gaps keep: one volume with holes
    if kept:
        geo["slice_gaps"] = len(kept)
    pos = slice_positions(stack)
    if pos is not None:
        steps = np.abs(np.diff(np.sort(pos)))
        med = float(np.median(steps))
        geo["slice_spacing_mm"] = med
        geo["slice_spacing_dev_mm"] = float(np.max(np.abs(steps - med)))
    return geo


def _other(vol: np.ndarray) -> dict[str, Any]:
    q = np.quantile(vol, [0.05, 0.5, 0.95], method="inverted_cdf")
    return {
        "mean": float(vol.mean(dtype=np.float64)),
        "sd": float(vol.std(dtype=np.float64)),
        "p05": float(q[0]),
        "p50": float(q[1]),
        "p95": float(q[2]),
    }


def _axial(stack: Stack) -> bool:
    """Whether the slice normal lies within about 37 degrees of the body axis (or the
    orientation is unknown)."""
    if stack.geometry is None or len(stack.geometry.orientation) != 6:
        return True
    o = stack.geometry.orientation
    normal = np.cross(np.asarray(o[:3], dtype=float), np.asarray(o[3:], dtype=float))
    return bool(abs(normal[2]) >= 0.8 * np.linalg.norm(normal))


def _png64(grey: np.ndarray) -> str:
    """A uint8 image as base64 PNG text (for the report)."""
    from clisonix_cli.formats.png import png_bytes

    return base64.b64encode(png_bytes(grey)).decode("ascii")


def warm(kinds: set[str]) -> None:
    """Load the kernels of these modality kinds (numba import, cache load) ahead of use.

    A run calls it in a background thread as its tasks start, so that the load overlaps
    the tasks' reading and writing instead of delaying the first measurement.
    """
    tiny = np.zeros((1, 8, 8), np.float32)
    tiny[0, 2:6, 2:6] = 100.0
    if "ct" in kinds:
        ct.measure(tiny - 1000.0, (1.0, 1.0))
    if "mr" in kinds:
        mr.measure(tiny)
    if "xr" in kinds:
        xr.bands(tiny[0])


def metrics_of(sample: Sample, stack: Stack, header: dict[str, Any]) -> dict[str, Any]:
    """The modality's image metrics of a sample."""
    kind = kind_of(stack.modality)
    if kind == "ct":
        return ct.measure(sample.data, spacing_rc(stack, header), axial=_axial(stack))
    if kind == "mr":
        return mr.measure(sample.data)
    if kind == "xr":
        info = stack.pixels[0] if stack.pixels else None
        bits = info.bits_stored if info is not None else 16
        signed = bool(info.pixel_representation) if info is not None else False
        slope, inter = 1.0, 0.0
        if stack.geometry is not None and stack.geometry.rescale:
            slope, inter = stack.geometry.rescale[0]
        return xr.measure(sample.data, xr.representable(bits, signed, slope, inter))
    return _other(sample.data)


def measure_series(
    sample: Sample, stack: Stack, header: dict[str, Any]
) -> dict[str, Any]:
    """The QC part of a task's record: metrics, geometry, header fields, thumbnail.

    Raises
    ------
    QcMeasureError
        A metric kernel failed on these pixels (the series' QC status becomes fail).
    """
    kind = kind_of(stack.modality)
    try:
        metrics = metrics_of(sample, stack, header)
        invert = bool(stack.pixels) and stack.pixels[0].photometric == "MONOCHROME1"
        burned = str(header.get("BurnedInAnnotation", "")).upper() == "YES"
        centre = sample.data[sample.centre]
        thumb = None if burned else _png64(thumbnail(centre, kind, invert=invert))
    except ClisonixError:
        raise
    except Exception as exc:
        raise QcMeasureError(
            f"QC metrics failed on this series ({type(exc).__name__}: {exc})"
        ) from None
    part: dict[str, Any] = rounded(
        {
            "kind": kind,
            "modality": stack.modality,
            "metrics": metrics,
            "geometry": geometry_of(stack, sample),
            "header": header,
            "thumbnail": thumb,
        }
    )
    return part
