"""Drift of a batch against a baseline, per column and per scanner group.

The tests and thresholds follow Evidently's defaults, and every result names its test:

- numbers: two-sample Kolmogorov-Smirnov (``ks``, drift when p < 0.05) while the baseline
  has at most 1,000 values, else the Wasserstein distance divided by the baseline's SD
  (``wasserstein_norm``, drift when > 0.1);
- categories: chi-square goodness of fit of the batch's counts against the baseline's
  frequencies (``chi2``, drift when p < 0.05; a category the baseline never saw is drift
  outright), else the Jensen-Shannon distance (``jensenshannon``, drift when > 0.1).

A group is drifted when half or more of its monitored columns drift. A column is monitored
when both the baseline and the batch hold at least 2 values for it (with 2 batch
series against 10 baseline ones, K-S reaches p = 2/66 = 0.03 only when both lie beyond
every baseline value).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

LARGE = 1000
P_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
SHARE = 0.5
MIN_VALUES = 2


def numeric(ref: Sequence[float], cur: Sequence[float]) -> dict[str, Any]:
    """Drift of one numeric column."""
    from scipy import stats

    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    if len(r) <= LARGE:
        res = stats.ks_2samp(r, c)
        p = float(res.pvalue)
        return {
            "test": "ks",
            "statistic": float(res.statistic),
            "p_value": p,
            "threshold": P_THRESHOLD,
            "drifted": p < P_THRESHOLD,
        }
    sd = float(np.std(r))
    dist = float(stats.wasserstein_distance(r, c))
    norm = dist / sd if sd > 0 else (0.0 if dist == 0 else math.inf)
    return {
        "test": "wasserstein_norm",
        "statistic": norm,
        "p_value": None,
        "threshold": DISTANCE_THRESHOLD,
        "drifted": norm > DISTANCE_THRESHOLD,
    }


def categorical(ref: Sequence[str], cur: Sequence[str]) -> dict[str, Any]:
    """Drift of one categorical column."""
    from scipy import stats
    from scipy.spatial import distance

    rc, cc = Counter(ref), Counter(cur)
    keys = sorted(set(rc) | set(cc))
    new = sorted(k for k in cc if k not in rc)
    if len(ref) <= LARGE:
        out: dict[str, Any] = {"test": "chi2", "threshold": P_THRESHOLD, "new": new}
        if new:  # expected count 0, observed > 0: the statistic is infinite
            out.update(statistic=None, p_value=0.0, drifted=True)
            return out
        if len(keys) == 1:
            out.update(statistic=0.0, p_value=1.0, drifted=False)
            return out
        obs = np.array([cc[k] for k in keys], dtype=np.float64)
        exp = np.array([rc[k] / len(ref) * len(cur) for k in keys], dtype=np.float64)
        res = stats.chisquare(obs, exp)
        p = float(res.pvalue)
        out.update(statistic=float(res.statistic), p_value=p, drifted=p < P_THRESHOLD)
        return out
    p_ref = np.array([rc[k] / len(ref) for k in keys])
    p_cur = np.array([cc[k] / len(cur) for k in keys])
    dist = float(distance.jensenshannon(p_ref, p_cur))
    return {
        "test": "jensenshannon",
        "statistic": dist,
        "p_value": None,
        "threshold": DISTANCE_THRESHOLD,
        "drifted": dist > DISTANCE_THRESHOLD,
        "new": new,
    }


def group_drift(
    ref_cols: dict[str, list[Any]],
    cur_cols: dict[str, list[Any]],
    kinds: dict[str, str],
) -> dict[str, Any]:
    """Drift of every monitored column of one group, and the group's verdict.

    Parameters
    ----------
    ref_cols, cur_cols : dict
        Column name -> values (None values are dropped) of the baseline and the batch.
    kinds : dict
        Column name -> ``"numeric"`` or ``"categorical"``, in report order.

    Returns
    -------
    dict
        ``columns`` (one entry per monitored column), ``monitored``, ``drifted_columns``,
        ``share``, ``rule`` and ``drifted``.
    """
    columns = []
    for name, kind in kinds.items():
        ref = [v for v in ref_cols.get(name, []) if v is not None]
        cur = [v for v in cur_cols.get(name, []) if v is not None]
        if len(ref) < MIN_VALUES or len(cur) < MIN_VALUES:
            continue
        res = numeric(ref, cur) if kind == "numeric" else categorical(ref, cur)
        columns.append(
            {
                "column": name,
                "kind": kind,
                "n_baseline": len(ref),
                "n_current": len(cur),
                **res,
            }  # fmt: skip
        )
    n = len(columns)
    k = sum(1 for c in columns if c["drifted"])
    return {
        "columns": columns,
        "monitored": n,
        "drifted_columns": k,
        "share": k / n if n else None,
        "rule": f"drifted when >= {SHARE:g} of the monitored columns drift",
        "drifted": bool(n) and k / n >= SHARE,
    }
