"""QC reason codes and the per-series rules: each gives a severity and a short detail.

A series' status is its worst reason: ``fail`` over ``warn`` over ``pass`` (no reason).
The codes are stable.

- ``QC-OUTLIER``: robust z = (value - median) / scale against the series' reference group:
  its scanner group in the baseline when that holds 3 series or more, else its scanner
  group in the batch when that holds 5 or more (no reference: no outlier rule). scale =
  max(1.4826 x MAD, a floor per metric: 3 HU for CT means and quantiles, 0.5 HU or 5 % for
  CT SDs, 5 % of the median otherwise), so that a very steady reference does not turn
  rounding into outliers.
- ``QC-HEADER``: in a protocol group of 3 series or more whose most common value of a
  protocol field is shared by more than half, the series with another value.
- ``QC-NEW-CATEGORY`` and ``QC-NEW-GROUP`` need a baseline.
"""

from __future__ import annotations

from typing import Any

#: code -> (what it means). Severities depend on the measured value (see each rule).
REASONS: dict[str, str] = {
    "QC-UNREADABLE": "the series could not be read or measured (the error code says why)",
    "QC-GEOMETRY": "the scan found a problem in the slice geometry (blocking: fail), or "
    "missing slices (split or kept by --gaps: warn)",
    "QC-SPACING": "slice positions are not evenly spaced (deviation over 1 % of the step)",
    "QC-CT-AIR": "CT air is not about -1000 HU (warn beyond 25 HU, fail beyond 50 HU)",
    "QC-CT-FOV": "the body touches the edge of the reconstructed field of view",
    "QC-MR-MASK": "no usable head/background split (foreground under 1 % or no air)",
    "QC-XR-SAT": "saturated pixels at either end of the stored range (warn 1 %, fail 10 %)",
    "QC-XR-RANGE": "less than 10 % of the stored range is used",
    "QC-XR-BORDER": "uniform border bands (collimation, masking) cover over half the image",
    "QC-OUTLIER": "a metric lies far from its reference group (robust z over 5; fail 10)",
    "QC-HEADER": "a protocol field differs from the most common value of its protocol group",
    "QC-NEW-CATEGORY": "a protocol field has a value the baseline never saw on this scanner",
    "QC-NEW-GROUP": "the scanner group is not in the baseline: nothing to compare with",
}
SEVERITY = {"pass": 0, "warn": 1, "fail": 2}
OUTLIER_Z = (5.0, 10.0)
AIR_HU = (25.0, 50.0)
SAT = (0.01, 0.10)
SPACING_TOL = 0.01
#: CLX-E120: geometry attributes missing (normal for projection X-ray).
NO_GEOMETRY = "CLX-E120"


def reason(code: str, severity: str, detail: str) -> dict[str, str]:
    """One reason entry."""
    return {"code": code, "severity": severity, "detail": detail}


def status_of(reasons: list[dict[str, str]]) -> str:
    """The worst severity of the reasons, ``pass`` when there is none."""
    worst = max((SEVERITY[r["severity"]] for r in reasons), default=0)
    return next(k for k, v in SEVERITY.items() if v == worst)


def own_rules(kind: str, metrics: dict[str, Any], geometry: dict[str, Any]) -> list[
        dict[str, str]]:  # fmt: skip
    """The rules a series checks on its own (no reference group needed)."""
    out = []
    for p in geometry.get("problems") or []:
        if kind == "xr" and p.get("code") == NO_GEOMETRY:
            continue  # a projection image has no slice geometry to check
        sev = "fail" if p.get("blocking") else "warn"
        out.append(
            reason("QC-GEOMETRY", sev, f"scan problem {p.get('code') or '(warning)'}")
        )
    if geometry.get("gap_split"):
        out.append(
            reason("QC-GEOMETRY", "warn", "a run of a series split at missing slices")
        )
    if geometry.get("slice_gaps"):
        out.append(
            reason(
                "QC-GEOMETRY",
                "warn",
                f"{geometry['slice_gaps']} gap(s) of missing slices",
            )
        )
    step, dev = geometry.get("slice_spacing_mm"), geometry.get("slice_spacing_dev_mm")
    if step and dev is not None and dev > SPACING_TOL * step:
        out.append(
            reason("QC-SPACING", "warn", f"step {step:g} mm, off by up to {dev:g} mm")
        )
    if kind == "ct":
        air = metrics.get("air_mean_hu")
        if air is not None and abs(air + 1000.0) > AIR_HU[0]:
            sev = "fail" if abs(air + 1000.0) > AIR_HU[1] else "warn"
            out.append(reason("QC-CT-AIR", sev, f"air {air:g} HU, expected -1000"))
        trunc = metrics.get("fov_truncated_frac")
        if trunc:
            out.append(
                reason("QC-CT-FOV", "warn", f"{100 * trunc:.0f} % of sampled slices")
            )
    elif kind == "mr":
        if (metrics.get("fg_frac") or 0.0) < 0.01:
            out.append(
                reason("QC-MR-MASK", "fail", "no foreground above the Otsu level")
            )
        elif metrics.get("noise_sd") is None:
            out.append(reason("QC-MR-MASK", "warn", "no background air: SNR unknown"))
    elif kind == "xr":
        sat = max(
            metrics.get("sat_low_frac") or 0.0, metrics.get("sat_high_frac") or 0.0
        )
        if sat > SAT[0]:
            sev = "fail" if sat > SAT[1] else "warn"
            out.append(reason("QC-XR-SAT", sev, f"{100 * sat:.1f} % saturated"))
        used = metrics.get("range_used_frac")
        if used is not None and used < 0.10:
            out.append(
                reason("QC-XR-RANGE", "warn", f"{100 * used:.1f} % of the range")
            )
        if (metrics.get("border_frac") or 0.0) > 0.5:
            out.append(reason("QC-XR-BORDER", "warn",
                              f"{100 * metrics['border_frac']:.0f} % of the image"))  # fmt: skip
    return out


#: Smallest robust scale per metric, so that a very steady reference does not turn
#: rounding into outliers: (absolute, relative to the reference median).
SCALE_FLOOR: dict[str, tuple[float, float]] = {
    "air_mean_hu": (3.0, 0.0), "tissue_mean_hu": (3.0, 0.0), "hu_p05": (3.0, 0.0),
    "hu_p50": (3.0, 0.0), "hu_p95": (3.0, 0.0), "air_sd_hu": (0.5, 0.05),
    "tissue_sd_hu": (0.5, 0.05), "gnl_hu": (0.5, 0.05), "sat_low_frac": (0.005, 0.0),
    "sat_high_frac": (0.005, 0.0), "border_frac": (0.02, 0.0),
    "range_used_frac": (0.02, 0.05),
}  # fmt: skip
DEFAULT_FLOOR = (1e-9, 0.05)


def robust_ref(values: list[float], metric: str) -> tuple[float, float] | None:
    """(median, scale) of reference values: scale = max(1.4826 MAD, the metric's floor)."""
    import numpy as np

    if len(values) < 3:
        return None
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    absolute, relative = SCALE_FLOOR.get(metric, DEFAULT_FLOOR)
    return med, max(mad, absolute, relative * abs(med))


def outlier_rule(
    metric: str, value: float, ref: tuple[float, float]
) -> dict[str, str] | None:
    """QC-OUTLIER for one metric, or None."""
    med, scale = ref
    z = (value - med) / scale
    if abs(z) <= OUTLIER_Z[0]:
        return None
    sev = "fail" if abs(z) > OUTLIER_Z[1] else "warn"
    return reason("QC-OUTLIER", sev, f"{metric} {value:g} vs {med:g} (z {z:+.1f})")
