"""The benchmark document (``--json`` / ``--output``) and its plot (``--plot``).

The document is one JSON object; every figure is a number under a dotted path whose last
component carries the unit (``median_ms``, ``slices_per_s``, ``gbps``, ``peak_rss_mib``).
Sections (each present when its suite ran; ``errors`` maps a section to why it failed):

- ``schema`` (``clisonix-bench/1``), ``env`` (versions, CPU, cores), ``config`` (what ran),
  ``load`` (1-minute load average before and after: how busy the machine was), ``errors``
  (suites that failed, one line each), ``notes`` (parts left out, e.g. a missing encoder)
  and ``runtime`` (wall seconds each suite took, synthesis included; never compared);
- ``memory``: copy bandwidth, 1 thread and all cores (bytes read + written);
- ``ops``: per op, ``apply_1t``, ``apply_all`` and ``reference`` timings with
  ``voxels_per_s`` and ``gbps``, ``speedup_1t``/``speedup_all`` (reference / apply) and, for
  the intensity family, ``copy_fraction_1t``/``copy_fraction_all``;
- ``end_to_end``: the whole transform job per ``--jobs`` level, ``parallel_efficiency``;
- ``scan``: files per second; ``stages``: one series stage by stage;
- ``compile``: numba compile time cold and cached; ``peak_memory``: RSS high-water per task;
- ``sizing``: images per hour, cores for ``--target``; ``peers``: dcm2niix and SimpleITK.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clisonix_cli.runtime import cpu_cores

SCHEMA = "clisonix-bench/2"


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def last_level_cache_bytes() -> int | None:
    """Size of the CPU's last-level cache (Linux sysfs), or None when unknown.

    A volume smaller than this can stay in cache, and an op on it can then beat the
    memory-copy bandwidth measured on a buffer larger than the cache.
    """
    best: tuple[int, int] | None = None
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = int((index / "level").read_text().strip())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if not digits.isdigit():
            continue
        size = int(digits) * scale
        if best is None or (level, size) > best:
            best = (level, size)
    return best[1] if best else None


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def environment() -> dict[str, Any]:
    """Versions and machine description stored under ``env``."""
    import numba
    import numpy

    from clisonix_cli import __version__

    return {
        "clisonix": __version__,
        "numba": numba.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cores": cpu_cores(),
        "logical_cpus": os.cpu_count() or 1,
        "numba_threads": int(numba.config.NUMBA_NUM_THREADS),  # type: ignore[attr-defined]
        "last_level_cache_bytes": last_level_cache_bytes(),
    }


def new_document(config: Mapping[str, Any]) -> dict[str, Any]:
    """An empty document with ``schema``, ``env``, ``config`` and the starting load."""
    return {
        "schema": SCHEMA,
        "env": environment(),
        "config": dict(config),
        "load": {"loadavg_1m_start": load_average()},
        "errors": {},
        "notes": {},
        "runtime": {},
    }


def peer_rows(section: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The whole-job rows of a ``peers`` section, equal cores first (documents sort keys)."""
    rows = list(section.get("rows", {}).values())
    return sorted(rows, key=lambda row: not row.get("equal_cores", True))


# --- plot --------------------------------------------------------------------------------


def plot_series(
    doc: Mapping[str, Any],
) -> tuple[list[tuple[int, float]], list[tuple[str, float]], list[tuple[str, float]]]:
    """What ``--plot`` draws.

    Returns
    -------
    points, bars, jobs
        (jobs, slices/s) of the end-to-end suite; (op, speed-up over its strongest
        reference at 1 thread); (whole-job row label, warm ratio peer / clisonix).
    """
    points: list[tuple[int, float]] = []
    e2e = doc.get("end_to_end", {})
    for jobs, fig in sorted(e2e.get("jobs", {}).items(), key=lambda kv: int(kv[0])):
        points.append((int(jobs), float(fig["slices_per_s"])))
    bars = [
        (name, float(fig["speedup_1t"]))
        for name, fig in sorted(doc.get("ops", {}).items())
        if "speedup_1t" in fig
    ]
    jobs = [
        (
            (
                f"{row['work'].split(' (')[0].split(':')[0]}: {row['clisonix']['cores']} vs "
                f"{row['peer']['cores']} core(s), {row['peer']['name']}"
            ),
            float(row["ratio_warm"]),
        )
        for row in peer_rows(doc.get("peers", {}))
    ]
    return points, bars, jobs


def write_plot(doc: Mapping[str, Any], path: Path) -> Path:
    """Draw throughput vs jobs, per-op speed-ups and whole-job rows into a PNG at ``path``.

    Uses Pillow (installed with scikit-image, a clisonix dependency), so no plotting library
    is needed. Top left: slices/s for each ``--jobs`` level, with the ideal linear scaling
    from ``--jobs 1`` dashed. Top right: per-op speed-up of ``apply`` over its strongest
    reference at one thread, on a log scale (1x marked). Bottom: the whole-job rows of
    ``--peers`` (peer time / clisonix time, warm, process vs process), log scale.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    from PIL import Image, ImageDraw, ImageFont

    from clisonix_cli.fsio import atomic_write

    points, bars, jobs = plot_series(doc)
    width, height, pad = 1200, 880, 70
    top_h = 560
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    env = doc.get("env", {})
    title = (
        f"clisonix bench - {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, "
        f"clisonix {env.get('clisonix', '?')}"
    )
    draw.text((pad, 12), title, fill="black", font=font)
    _panel_throughput(
        draw, points, (pad, 60, width // 2 - 30, top_h - pad), font, small
    )
    _panel_speedups(
        draw,
        bars,
        (width // 2 + 150, 60, width - 40, top_h - pad),
        font,
        small,
        "per-op speed-up over the strongest reference, 1 thread (log)",
        "per-op suite not run",
    )
    _panel_speedups(
        draw,
        jobs,
        (430, top_h + 30, width - 40, height - 40),
        font,
        small,
        "whole jobs, process vs process: peer time / clisonix time, warm (log)",
        "no whole-job rows (run with --peers)",
        name_width=420,
    )
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path


Box = tuple[int, int, int, int]


def _panel_throughput(
    draw: Any, points: Sequence[tuple[int, float]], box: Box, font: Any, small: Any
) -> None:
    x0, y0, x1, y1 = box
    draw.text(
        (x0, y0 - 28),
        "transform throughput (slices/s) vs --jobs",
        fill="black",
        font=font,
    )
    draw.rectangle(box, outline="black")
    if not points:
        draw.text(
            (x0 + 10, y0 + 10), "end-to-end suite not run", fill="gray", font=small
        )
        return
    max_jobs = max(j for j, _ in points)
    base = next((r for j, r in points if j == 1), points[0][1] / points[0][0])
    top = max(max(r for _, r in points), base * max_jobs) * 1.1

    def xy(jobs: float, value: float) -> tuple[float, float]:
        span = max(max_jobs - 1, 1)
        return (
            x0 + 30 + (jobs - 1) / span * (x1 - x0 - 60),
            y1 - value / top * (y1 - y0 - 20),
        )

    for k in range(5):  # y grid
        v = top * k / 4
        _, y = xy(1, v)
        draw.line((x0, y, x1, y), fill="#dddddd")
        draw.text((x0 - 60, y - 7), f"{v:8.1f}", fill="black", font=small)
    for j in range(1, max_jobs + 1):
        x, _ = xy(j, 0)
        draw.text((x - 4, y1 + 6), str(j), fill="black", font=small)
    draw.text(((x0 + x1) // 2 - 20, y1 + 24), "--jobs", fill="black", font=small)
    # ideal scaling, dashed
    steps = 40
    for k in range(0, steps, 2):
        a = 1 + (max_jobs - 1) * k / steps
        b = 1 + (max_jobs - 1) * (k + 1) / steps
        draw.line((*xy(a, base * a), *xy(b, base * b)), fill="#888888", width=2)
    draw.text(
        (x0 + 40, y0 + 8), "dashed: ideal linear scaling", fill="#888888", font=small
    )
    coords = [xy(j, r) for j, r in points]
    if len(coords) > 1:
        draw.line(coords, fill="#1f77b4", width=3)
    for (x, y), (_, r) in zip(coords, points, strict=True):
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill="#1f77b4")
        draw.text((x + 8, y - 18), f"{r:.1f}", fill="#1f77b4", font=small)


def _panel_speedups(
    draw: Any,
    bars: Sequence[tuple[str, float]],
    box: Box,
    font: Any,
    small: Any,
    title: str,
    empty: str,
    name_width: int = 110,
) -> None:
    import math

    x0, y0, x1, y1 = box
    draw.text((x0 - name_width, y0 - 28), title, fill="black", font=font)
    draw.rectangle(box, outline="black")
    if not bars:
        draw.text((x0 + 10, y0 + 10), empty, fill="gray", font=small)
        return
    logs = [math.log10(max(s, 1e-3)) for _, s in bars]
    lo, hi = min(0.0, min(logs)) - 0.1, max(0.0, max(logs)) + 0.3

    def x_of(lv: float) -> float:
        return x0 + (lv - lo) / (hi - lo) * (x1 - x0)

    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        if lo <= decade <= hi:
            x = x_of(decade)
            draw.line((x, y0, x, y1), fill="#dddddd" if decade else "black")
            draw.text((x - 10, y1 + 6), f"{10.0**decade:g}x", fill="black", font=small)
    row = (y1 - y0) / len(bars)
    for i, ((name, s), lv) in enumerate(zip(bars, logs, strict=True)):
        top = y0 + i * row + row * 0.15
        bottom = y0 + (i + 1) * row - row * 0.15
        colour = "#2ca02c" if s >= 1 else "#d62728"
        xa, xb = sorted((x_of(0.0), x_of(lv)))
        draw.rectangle((xa, top, max(xb, xa + 1), bottom), fill=colour)
        draw.text(
            (x0 - name_width, (top + bottom) / 2 - 7),
            name[: name_width // 7],
            fill="black",
            font=small,
        )
        draw.text(
            (x_of(max(lv, 0.0)) + 4, (top + bottom) / 2 - 7),
            f"{s:.2g}x",
            fill="black",
            font=small,
        )
