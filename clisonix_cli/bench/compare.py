"""``--compare OLD.json``: the change of every figure against an earlier run.

Every numeric leaf of the two documents is a figure, named by its dotted path
(``ops.window.apply_1t.median_ms``). Whether a change is good or bad follows from the name:
times, compile times and peak memory are better lower; rates, bandwidths, speed-ups,
efficiencies and peer ratios are better higher. Spreads (min, max, quartiles), first-call
times (they depend on the numba cache state) and sizes are shown for information only and
never fail a comparison.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clisonix_cli.bench.report import SCHEMA
from clisonix_cli.errors import CompareError, UsageError

Direction = Literal["lower", "higher"]
Status = Literal["regressed", "improved", "within", "info", "added", "removed"]

#: Sections that describe the run rather than measure it.
SKIP_SECTIONS = frozenset(
    {"schema", "env", "config", "load", "errors", "notes", "runtime", "comparison"}
)
#: Leaf names that are spreads, cache-dependent or sizes: shown, never judged.
INFO_KEYS = frozenset(
    {
        "q1_ms",
        "q3_ms",
        "iqr_ms",
        "min_ms",
        "max_ms",
        "first_call_ms",
        "first_process_peak_rss_mib",
        "repeats",
        "target_images_per_s",
        "target_images_per_hour",
        "cores_per_machine",
    }
)
DEFAULT_THRESHOLD = 0.10


def direction(key: str) -> Direction | None:
    """Which way is better for a figure named ``key`` (its last path component).

    Returns
    -------
    {"lower", "higher"} or None
        None for figures shown for information only.
    """
    if key in INFO_KEYS:
        return None
    if key.endswith("_per_s") or "gbps" in key:
        return "higher"
    if key.startswith(("speedup", "ratio", "images_per_hour")) or "efficiency" in key:
        return "higher"
    if "fraction" in key:
        return "higher"
    if key.endswith(("_ms", "_s", "_mib")) or key in {
        "cores_needed",
        "machines_needed",
    }:
        return "lower"
    return None


def parse_threshold(text: str) -> float:
    """``10%`` or ``10`` -> 0.10 (a bare number is a percentage).

    Raises
    ------
    UsageError
        For anything else, or a negative value.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*%?\s*", text)
    if match is None:
        raise UsageError(
            f"--threshold '{text}' is not a percentage: give e.g. 10% or 5 (percent)"
        )
    return float(match.group(1)) / 100.0


def figures(doc: Mapping[str, Any]) -> dict[str, float]:
    """Every numeric leaf of a benchmark document, by dotted path (bools excluded)."""

    def walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, float]]:
        if isinstance(node, Mapping):
            for key in sorted(node):
                yield from walk(node[key], (*path, str(key)))
        elif isinstance(node, int | float) and not isinstance(node, bool):
            yield ".".join(path), float(node)

    out: dict[str, float] = {}
    for section in sorted(doc):
        if section not in SKIP_SECTIONS:
            out.update(walk(doc[section], (section,)))
    return out


@dataclass(frozen=True)
class Change:
    """One figure in both runs (or in one of them)."""

    path: str
    old: float | None
    new: float | None
    direction: Direction | None
    status: Status

    @property
    def relative(self) -> float | None:
        """``(new - old) / old``; None when a side is missing or old is 0."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        return (self.new - self.old) / abs(self.old)


def judge(old: float, new: float, way: Direction | None, threshold: float) -> Status:
    """Classify one change: regressed/improved beyond ``threshold``, within it, or info."""
    if way is None:
        return "info"
    if old == 0 or not (math.isfinite(old) and math.isfinite(new)):
        return "info"
    rel = (new - old) / abs(old)
    worse = rel > threshold if way == "lower" else rel < -threshold
    better = rel < -threshold if way == "lower" else rel > threshold
    if worse:
        return "regressed"
    if better:
        return "improved"
    return "within"


def compare(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Change]:
    """Every figure of ``old`` and ``new``, sorted by path, with its verdict."""
    a, b = figures(old), figures(new)
    changes: list[Change] = []
    for path in sorted(set(a) | set(b)):
        way = direction(path.rsplit(".", 1)[-1])
        if path not in b:
            changes.append(Change(path, a[path], None, way, "removed"))
        elif path not in a:
            changes.append(Change(path, None, b[path], way, "added"))
        else:
            status = judge(a[path], b[path], way, threshold)
            changes.append(Change(path, a[path], b[path], way, status))
    return changes


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Settings that differ between the runs (their figures are then not comparable)."""
    notes: list[str] = []
    for section in ("config", "env"):
        o, n = old.get(section, {}), new.get(section, {})
        if not isinstance(o, Mapping) or not isinstance(n, Mapping):
            continue
        for key in sorted(set(o) | set(n)):
            if key in {"numba_threads"}:
                continue
            if o.get(key) != n.get(key):
                notes.append(f"{section}.{key}: {o.get(key)!r} -> {n.get(key)!r}")
    return notes


def load_document(path: Path) -> dict[str, Any]:
    """Read an earlier ``--json``/``--output`` document.

    Raises
    ------
    CompareError
        When the file cannot be read, is not JSON, or is not a clisonix benchmark document.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CompareError(
            f"{path}: cannot be read ({exc.strerror or exc}) - give the file written by an "
            "earlier `clisonix bench --output FILE.json` (or its --json output)"
        ) from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CompareError(
            f"{path}: not valid JSON ({exc}) - the file may be truncated or not a "
            "`clisonix bench --json` document"
        ) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CompareError(
            f"{path}: schema is {found!r}, expected {SCHEMA!r} - compare only documents "
            "written by `clisonix bench` of this major version"
        )
    return doc


def comparison_section(
    old: Mapping[str, Any], new: Mapping[str, Any], *, threshold: float
) -> dict[str, Any]:
    """The ``comparison`` section of ``new`` against ``old`` (``--compare``).

    Returns
    -------
    dict
        ``threshold``, ``regressions`` (how many figures got worse beyond it),
        ``config_differences`` and ``changes`` (every figure, see :func:`compare`).
    """
    changes = compare(old, new, threshold=threshold)
    return {
        "threshold": threshold,
        "regressions": sum(c.status == "regressed" for c in changes),
        "config_differences": config_differences(old, new),
        "changes": [
            {
                "figure": c.path,
                "old": c.old,
                "new": c.new,
                "relative": c.relative,
                "better": c.direction,
                "status": c.status,
            }
            for c in changes
        ],
    }
