"""Strip plots as inline SVG: one row per scanner group, one dot per series, the
baseline's range as a band (MRIQC's group report is the model). Deterministic text."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, LEFT, RIGHT, ROW, AXIS = 440, 110, 14, 30, 26
COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _jitter(task: str) -> float:
    """A fixed vertical offset in [-0.3, 0.3] of a row, from the task id."""
    h = int(hashlib.sha256(task.encode()).hexdigest()[:8], 16)
    return (h / 0xFFFFFFFF - 0.5) * 0.6


def strip_plot(
    metric: str,
    groups: Sequence[str],
    points: Sequence[Mapping[str, Any]],
    bands: Mapping[str, Sequence[float]],
) -> str:
    """SVG of one metric.

    Parameters
    ----------
    metric : str
    groups : sequence of str
        Row labels (scanner group ids), top to bottom.
    points : sequence of mapping
        ``{"task", "group", "value", "status"}`` per series.
    bands : mapping
        Group -> [min, median, max] of the baseline.
    """
    values = [float(p["value"]) for p in points]
    for b in bands.values():
        values += [float(b[0]), float(b[2])]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    span = WIDTH - LEFT - RIGHT

    def x(v: float) -> str:
        return f"{LEFT + (v - lo) / (hi - lo) * span:.2f}"

    height = ROW * max(1, len(groups)) + AXIS
    out = [
        (
            f'<svg class="strip" data-metric="{escape(metric)}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">'
        ),
        f"<title>{escape(metric)}</title>",
    ]
    for i, g in enumerate(groups):
        y0 = i * ROW
        out.append(
            f'<text x="4" y="{y0 + ROW / 2 + 4:.1f}" class="lab">{escape(g)}</text>'
        )
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y0 + ROW / 2:.1f}" '
            f'y2="{y0 + ROW / 2:.1f}" class="grid"/>'
        )
        band = bands.get(g)
        if band:
            out.append(
                f'<rect class="band" x="{x(band[0])}" y="{y0 + 4}" '
                f'width="{max(float(x(band[2])) - float(x(band[0])), 1.0):.2f}" '
                f'height="{ROW - 8}"><title>baseline {_fmt(band[0])} to '
                f"{_fmt(band[2])}</title></rect>"
            )
            out.append(
                f'<line class="median" x1="{x(band[1])}" x2="{x(band[1])}" '
                f'y1="{y0 + 4}" y2="{y0 + ROW - 4}"/>'
            )
    rows = {g: i for i, g in enumerate(groups)}
    for p in points:
        i = rows[p["group"]]
        y = i * ROW + ROW / 2 + _jitter(p["task"]) * ROW
        colour = COLOURS.get(p["status"], "#555")
        out.append(
            f'<circle class="pt" data-task="{escape(p["task"])}" cx="{x(float(p["value"]))}" '
            f'cy="{y:.2f}" r="4" fill="{colour}"><title>{escape(p["task"])}: '
            f"{_fmt(float(p['value']))} ({p['status']})</title></circle>"
        )
    y_axis = ROW * max(1, len(groups))
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y_axis + 2}" y2="{y_axis + 2}" '
        'class="axis"/>'
    )
    for v in (lo + pad, (lo + hi) / 2, hi - pad):
        out.append(f'<text x="{x(v)}" y="{y_axis + 18}" class="tick">{_fmt(v)}</text>')
    out.append("</svg>")
    return "\n".join(out)
