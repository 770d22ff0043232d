"""--compare: gated figures, noise vs shift on synthetic distributions, drift, bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clisonix_cli.bench import compare as cmp
from clisonix_cli.bench.report import SCHEMA
from clisonix_cli.errors import CompareError, UsageError


def _timing(samples: np.ndarray, level: str = "1t") -> dict[str, Any]:
    """A gated timing node as the suites write it, from samples in ms."""
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return {
        "median_ms": float(med),
        "iqr_ms": float(q3 - q1),
        "min_ms": float(samples.min()),
        "max_ms": float(samples.max()),
        "repeats": len(samples),
        "samples_ms": [float(v) for v in samples],
        "timing": "in-process",
        "calibrate": level,
    }


def _doc(
    samples: dict[str, np.ndarray], *, yard_1t: float = 1.0, yard_all: float = 1.0
) -> dict[str, Any]:
    """A document whose ops are gated timings (``name@level``), plus information."""
    ops: dict[str, Any] = {}
    for key, values in samples.items():
        name, level = key.split("@")
        ops.setdefault(name, {"voxels": 1000, "speedup_1t": 10.0})
        ops[name][f"apply_{level}"] = _timing(values, level)
    return {
        "schema": SCHEMA,
        "env": {"cores": 2, "numba": "0.68"},
        "config": {"slices": 4},
        "calibration": {
            "1t": {"median_ms": yard_1t, "points_ms": [yard_1t]},
            "all": {"median_ms": yard_all, "points_ms": [yard_all]},
        },
        "ops": ops,
        "peak_memory": {"task_peak_rss_mib": 300.0},
        "errors": {},
    }


def _noisy(
    rng: np.random.Generator, median: float, n: int = 30, cv: float = 0.1
) -> np.ndarray:
    """Timings with a right-skewed noise (a busy machine only ever adds time)."""
    return median * (1.0 + cv * rng.exponential(1.0, n)) / (1.0 + cv * np.log(2.0))


def test_only_gated_timings_are_judged() -> None:
    rng = np.random.default_rng(0)
    doc = _doc({"window@1t": _noisy(rng, 10.0)})
    assert list(cmp.timing_nodes(doc)) == ["ops.window.apply_1t"]
    # rates, speed-ups, memory are information: not compared at all
    assert [c.path for c in cmp.compare(doc, doc)] == ["ops.window.apply_1t"]


@pytest.mark.parametrize("seed", range(20))
def test_noise_of_the_same_size_is_not_flagged(seed: int) -> None:
    """Two runs drawn from one distribution with 10% noise: never a verdict."""
    rng = np.random.default_rng(seed)
    names = [f"op{i}@1t" for i in range(10)] + [f"op{i}@all" for i in range(10)]
    old = _doc({k: _noisy(rng, 5.0 + i) for i, k in enumerate(names)})
    new = _doc({k: _noisy(rng, 5.0 + i) for i, k in enumerate(names)})
    statuses = {c.status for c in cmp.compare(old, new, threshold=0.10)}
    assert statuses <= {"within"}


@pytest.mark.parametrize("seed", range(10))
def test_a_significant_shift_is_flagged(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    old = _doc({"median@1t": _noisy(rng, 20.0), "gaussian@1t": _noisy(rng, 20.0)})
    new = _doc({"median@1t": _noisy(rng, 26.0), "gaussian@1t": _noisy(rng, 15.0)})
    status = {c.path: c.status for c in cmp.compare(old, new, threshold=0.10)}
    assert status == {
        "ops.median.apply_1t": "regressed",
        "ops.gaussian.apply_1t": "improved",
    }


def test_a_big_change_without_evidence_is_not_flagged() -> None:
    """Three noisy samples against three: 1.45x slower in the median, not significant."""
    old = _doc({"clahe@1t": np.array([10.0, 30.0, 11.0])})
    new = _doc({"clahe@1t": np.array([15.0, 31.0, 16.0])})
    (change,) = cmp.compare(old, new, threshold=0.10)
    assert change.relative == pytest.approx(16 / 11 - 1)
    assert change.status == "within"
    assert change.p_slower is not None and change.p_slower > cmp.ALPHA


def test_a_significant_shift_below_the_threshold_is_within() -> None:
    old = _doc({"window@1t": np.linspace(10.0, 10.1, 40)})
    new = _doc({"window@1t": np.linspace(10.5, 10.6, 40)})  # +5%, p ~ 0
    (change,) = cmp.compare(old, new, threshold=0.10)
    assert change.p_slower is not None and change.p_slower < 1e-6
    assert change.status == "within"


def test_drift_is_cancelled_by_the_yardstick() -> None:
    """Everything 2x slower at every core, the yardstick too: no regression.

    The same slowdown with an unchanged yardstick (fewer cores, or slower code) is one.
    """
    rng = np.random.default_rng(7)
    old = _doc({"gaussian@all": _noisy(rng, 10.0)}, yard_all=1.0)
    slow = _noisy(rng, 20.0)
    drifted = _doc({"gaussian@all": slow}, yard_all=2.0)
    (change,) = cmp.compare(old, drifted)
    assert change.status == "within"
    assert abs(change.relative or 0.0) < 0.1
    (change,) = cmp.compare(old, _doc({"gaussian@all": slow}, yard_all=1.0))
    assert change.status == "regressed"


def test_a_burst_is_cancelled_by_the_yardsticks_of_its_samples() -> None:
    """Half the new samples ran during a burst of load that doubled them and their
    yardsticks: calibrated per sample, nothing moved; with the run's median, a regression."""
    rng = np.random.default_rng(11)
    old = _doc({"sobel@1t": _noisy(rng, 10.0, n=40)})
    burst = np.r_[np.ones(20), np.full(20, 2.0)]
    samples = _noisy(rng, 10.0, n=40) * burst
    new = _doc({"sobel@1t": samples})
    assert cmp.compare(old, new)[0].status == "regressed"
    new["ops"]["sobel"]["apply_1t"]["yardstick_ms"] = list(burst)
    old["ops"]["sobel"]["apply_1t"]["yardstick_ms"] = [1.0] * 40
    (change,) = cmp.compare(old, new)
    assert change.status == "within" and abs(change.relative or 0) < 0.1


def test_samples_of_one_round_count_once() -> None:
    """Five rounds of ten samples: the test counts five draws per run, not fifty."""
    rng = np.random.default_rng(5)
    rounds = [r for r in range(5) for _ in range(10)]
    old = _doc({"median@1t": _noisy(rng, 10.0, n=50)})
    # each new round shifted as a whole by that moment's load: +/-15%, no trend
    shift = np.repeat([1.15, 0.9, 1.1, 0.85, 1.2], 10)
    new = _doc({"median@1t": _noisy(rng, 10.0, n=50) * shift})
    for doc in (old, new):
        doc["ops"]["median"]["apply_1t"]["round"] = rounds
    (change,) = cmp.compare(old, new)
    assert change.p_slower is not None and change.p_slower > 0.05
    assert cmp.blocks({"round": [0, 0, 1]}, [1.0, 3.0, 5.0]) == [2.0, 5.0]


def test_too_small_figures_are_information() -> None:
    old = _doc({"flip@1t": np.full(50, 0.2)})
    new = _doc({"flip@1t": np.full(50, 0.6)})
    (change,) = cmp.compare(old, new)
    assert change.status == "too small"


def test_added_and_removed() -> None:
    rng = np.random.default_rng(1)
    old = _doc({"a@1t": _noisy(rng, 5.0)})
    new = _doc({"b@1t": _noisy(rng, 5.0)})
    status = {c.path: c.status for c in cmp.compare(old, new)}
    assert status == {"ops.a.apply_1t": "removed", "ops.b.apply_1t": "added"}


def test_comparison_section_counts_and_drift() -> None:
    rng = np.random.default_rng(3)
    old = _doc({"median@1t": _noisy(rng, 20.0)}, yard_1t=1.0)
    new = _doc({"median@1t": _noisy(rng, 40.0)}, yard_1t=1.1)
    sec = cmp.comparison_section(old, new, threshold=0.1)
    assert sec["regressions"] == 1
    assert sec["drift"]["1t"] == {"old_ms": 1.0, "new_ms": 1.1}
    (row,) = sec["changes"]
    assert row["status"] == "regressed" and row["old_iqr"] > 0


def test_config_differences() -> None:
    old, new = _doc({}), _doc({})
    new["config"] = {"slices": 64}
    assert cmp.config_differences(old, new) == ["config.slices: 4 -> 64"]


@pytest.mark.parametrize(
    ("text", "value"), [("10%", 0.10), ("10", 0.10), ("2.5 %", 0.025), ("0", 0.0)]
)
def test_parse_threshold(text: str, value: float) -> None:
    assert cmp.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-5%", "ten", "10%%", ""])
def test_parse_threshold_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        cmp.parse_threshold(text)


def test_load_document(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_doc({})))
    assert cmp.load_document(good)["schema"] == SCHEMA
    cases = {
        "missing.json": None,
        "bad.json": "{not json",
        "list.json": "[1, 2]",
        "other.json": json.dumps({"schema": "something-else/9"}),
        "binary.json": b"\xff\xfe\x00garbage",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(CompareError) as info:
            cmp.load_document(path)
        assert info.value.exit_code == 2
        assert name in info.value.message
