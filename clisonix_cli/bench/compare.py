"""``--compare OLD.json``: which figures moved against an earlier run, and whether it is noise.

A figure is **gated** (it can fail the comparison) when it is a timing of clisonix's own
work that carries its samples (``samples_ms``) and a yardstick level (``calibrate``: ``1t``
or ``all``, see :mod:`clisonix_cli.bench.calibrate`). Its verdict:

1. drift: each sample is divided by the yardstick (an in-cache memory copy at the same
   thread level) measured just before it in the same run, or by the run's median
   yardstick when it has none, so a machine that got slower for everything, for a run or
   for a few seconds, does not read as a regression;
2. rounds: a gated figure is timed in interleaved rounds spread over its suite
   (:func:`.harness.time_rounds`); the median of each round's calibrated samples is one
   draw (samples of one round share that moment's load, they are not independent);
3. change: the ratio of the medians of those draws, new over old;
4. **regressed** only when the change is beyond ``--threshold`` in the bad direction
   *and* a one-sided Mann-Whitney U test on the draws says the new run is slower with
   ``p < alpha`` (as asv's ``compare`` does); **improved** the other way; otherwise
   **within** (including changes that are large but not significant).

A gated figure whose old or new median is under :data:`MIN_RELIABLE_MS` is **too small**
to time reliably (cache state, page faults and thread wake-ups move it more than code
does): shown, never judged. Every other number (rates and speed-ups derived from the
timings, references, peers' own times, memory, compile times, sizes) is information.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clisonix_cli.bench.report import SCHEMA
from clisonix_cli.errors import CompareError, UsageError

Status = Literal[
    "regressed", "improved", "within", "too small", "info", "added", "removed"
]

#: Sections that describe the run rather than measure it.
SKIP_SECTIONS = frozenset(
    {
        "schema",
        "env",
        "config",
        "load",
        "errors",
        "notes",
        "runtime",
        "comparison",
        "calibration",
    }
)
DEFAULT_THRESHOLD = 0.10
#: Significance level of the one-sided Mann-Whitney U test.
ALPHA = 0.01
#: Timings under this median (ms) are too small to judge.
MIN_RELIABLE_MS = 1.0


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


def timing_nodes(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every gated timing of a document (``samples_ms`` + ``calibrate``), by dotted path."""

    def walk(
        node: Any, path: tuple[str, ...]
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        if isinstance(node, Mapping):
            if "samples_ms" in node and node.get("calibrate") in ("1t", "all"):
                yield ".".join(path), node
                return
            for key in sorted(node):
                yield from walk(node[key], (*path, str(key)))

    out: dict[str, Mapping[str, Any]] = {}
    for section in sorted(doc):
        if section not in SKIP_SECTIONS:
            out.update(walk(doc[section], (section,)))
    return out


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


def yardstick(doc: Mapping[str, Any], level: str) -> float:
    """The run's yardstick (ms) at ``level``; 1.0 (no calibration) when absent."""
    cal = doc.get("calibration", {})
    value = cal.get(level, {}).get("median_ms") if isinstance(cal, Mapping) else None
    return float(value) if value else 1.0


def calibrated(
    doc: Mapping[str, Any], node: Mapping[str, Any], level: str
) -> list[float]:
    """A timing's samples divided by the yardstick: each by its own when it has one.

    A sample's own yardstick was measured just before it (``yardstick_ms``), so a burst of
    load that slowed the sample slowed its yardstick too; without one, the run's median.
    """
    samples = [float(v) for v in node["samples_ms"]]
    own = node.get("yardstick_ms")
    if isinstance(own, list) and len(own) == len(samples) and all(v > 0 for v in own):
        return [v / float(y) for v, y in zip(samples, own, strict=True)]
    run = yardstick(doc, level)
    return [v / run for v in samples]


def blocks(node: Mapping[str, Any], values: Sequence[float]) -> list[float]:
    """The median of each round's values (``round``), or the values when there are none.

    Samples of one round were taken together and share that moment's load: they are one
    draw, not several. The test counts rounds.
    """
    from statistics import median

    rounds = node.get("round")
    if not isinstance(rounds, list) or len(rounds) != len(values):
        return list(values)
    groups: dict[int, list[float]] = {}
    for r, v in zip(rounds, values, strict=True):
        groups.setdefault(int(r), []).append(v)
    return [median(groups[r]) for r in sorted(groups)]


def mann_whitney_greater(new: Sequence[float], old: Sequence[float]) -> float:
    """One-sided p-value that ``new`` tends to be larger than ``old`` (Mann-Whitney U)."""
    from scipy.stats import mannwhitneyu

    if len(new) < 2 or len(old) < 2:
        return 1.0
    return float(mannwhitneyu(new, old, alternative="greater").pvalue)


@dataclass(frozen=True)
class Change:
    """One gated figure in both runs (or in one of them)."""

    path: str
    old: float | None
    new: float | None
    status: Status
    ratio: float | None = None  # calibrated median ratio, new / old
    p_slower: float | None = None
    p_faster: float | None = None
    old_iqr: float | None = None
    new_iqr: float | None = None

    @property
    def relative(self) -> float | None:
        """Calibrated relative change ``ratio - 1``; None when a side is missing."""
        return None if self.ratio is None else self.ratio - 1.0


def judge_samples(
    old: Sequence[float],
    new: Sequence[float],
    *,
    threshold: float,
    alpha: float = ALPHA,
) -> tuple[Status, float, float, float]:
    """Verdict on two sets of (calibrated) times: lower is better.

    Returns
    -------
    status, ratio, p_slower, p_faster
        ``ratio`` is median(new) / median(old).
    """
    from statistics import median

    m_old, m_new = median(old), median(new)
    if not (m_old > 0 and math.isfinite(m_old) and math.isfinite(m_new)):
        return "info", math.nan, 1.0, 1.0
    ratio = m_new / m_old
    p_slower = mann_whitney_greater(new, old)
    p_faster = mann_whitney_greater(old, new)
    if ratio > 1.0 + threshold and p_slower < alpha:
        return "regressed", ratio, p_slower, p_faster
    if ratio < 1.0 / (1.0 + threshold) and p_faster < alpha:
        return "improved", ratio, p_slower, p_faster
    return "within", ratio, p_slower, p_faster


def _iqr(node: Mapping[str, Any]) -> float | None:
    value = node.get("iqr_ms")
    med = node.get("median_ms")
    if value is None or not med:
        return None
    return float(value) / float(med)


def compare(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = ALPHA,
) -> list[Change]:
    """Every gated figure of ``old`` and ``new``, sorted by path, with its verdict."""
    a, b = timing_nodes(old), timing_nodes(new)
    changes: list[Change] = []
    for path in sorted(set(a) | set(b)):
        if path not in b:
            changes.append(Change(path, a[path]["median_ms"], None, "removed"))
            continue
        if path not in a:
            changes.append(Change(path, None, b[path]["median_ms"], "added"))
            continue
        na, nb = a[path], b[path]
        mo, mn = float(na["median_ms"]), float(nb["median_ms"])
        spread = {"old_iqr": _iqr(na), "new_iqr": _iqr(nb)}
        if min(mo, mn) < MIN_RELIABLE_MS:
            changes.append(
                Change(
                    path, mo, mn, "too small", ratio=mn / mo if mo else None, **spread
                )
            )
            continue
        level = str(nb["calibrate"])
        so = blocks(na, calibrated(old, na, level))
        sn = blocks(nb, calibrated(new, nb, level))
        status, ratio, p_s, p_f = judge_samples(
            so, sn, threshold=threshold, alpha=alpha
        )
        changes.append(
            Change(
                path, mo, mn, status, ratio=ratio, p_slower=p_s, p_faster=p_f, **spread
            )
        )
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
        ``threshold``, ``alpha``, ``regressions`` (how many gated figures got worse beyond
        the threshold, significantly), ``drift`` (each run's yardstick), ``config_differences``
        and ``changes`` (every gated figure, see :func:`compare`).
    """
    changes = compare(old, new, threshold=threshold)
    return {
        "threshold": threshold,
        "alpha": ALPHA,
        "min_reliable_ms": MIN_RELIABLE_MS,
        "regressions": sum(c.status == "regressed" for c in changes),
        "drift": {
            level: {"old_ms": yardstick(old, level), "new_ms": yardstick(new, level)}
            for level in ("1t", "all")
        },
        "config_differences": config_differences(old, new),
        "changes": [
            {
                "figure": c.path,
                "old_ms": c.old,
                "new_ms": c.new,
                "relative": c.relative,
                "p_slower": c.p_slower,
                "p_faster": c.p_faster,
                "old_iqr": c.old_iqr,
                "new_iqr": c.new_iqr,
                "status": c.status,
            }
            for c in changes
        ],
    }
