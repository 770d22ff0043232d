"""Drift statistics, the group rule, and the synthetic drift scenario over several seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from clisonix_cli.qc import drift

from .conftest import CHANGED, CT, run_qc, synth


def test_numeric_drift_uses_ks_below_1000_rows_and_wasserstein_above() -> None:
    res = drift.numeric(
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], [50.0, 60.0]
    )
    assert res["test"] == "ks" and res["drifted"]
    assert res["p_value"] == pytest.approx(2 / 66)  # exact: 2 of C(12, 2) orderings
    assert not drift.numeric([1.0, 2.0, 3.0, 4.0], [2.5, 3.5])["drifted"]
    ref = [float(i % 100) for i in range(2000)]
    same = drift.numeric(ref, [float(i % 100) for i in range(300)])
    moved = drift.numeric(ref, [float(i % 100) + 10 for i in range(300)])
    assert same["test"] == moved["test"] == "wasserstein_norm"
    assert same["statistic"] == pytest.approx(0.0) and not same["drifted"]
    assert (
        moved["statistic"] == pytest.approx(10 / 28.866, rel=1e-3) and moved["drifted"]
    )


def test_categorical_drift_chi2_new_category_and_jensen_shannon() -> None:
    ref = ["STANDARD"] * 8 + ["LUNG"] * 2
    assert not drift.categorical(ref, ["STANDARD", "LUNG"])["drifted"]
    new = drift.categorical(ref, ["SHARP", "SHARP"])
    assert new["test"] == "chi2" and new["drifted"] and new["new"] == ["SHARP"]
    assert drift.categorical(ref, ["LUNG"] * 6)["drifted"]  # 60 % vs 20 %: p < 0.05
    big = ["A"] * 900 + ["B"] * 300
    js = drift.categorical(big, ["A"] * 30 + ["B"] * 10)
    assert js["test"] == "jensenshannon" and js["statistic"] == pytest.approx(0.0)
    assert drift.categorical(big, ["B"] * 40)["drifted"]


def test_group_is_drifted_when_half_of_its_columns_drift() -> None:
    kinds = {"a": "numeric", "b": "numeric", "k": "categorical", "m": "numeric"}
    ref = {"a": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10], "b": [1.0] * 10, "k": ["x"] * 10}
    half = drift.group_drift(
        ref, {"a": [40.0, 50], "b": [1.0, 1], "k": ["y", "y"]}, kinds
    )
    assert half["monitored"] == 3  # "m" has no values: not monitored
    assert half["drifted_columns"] == 2 and half["drifted"]
    one = drift.group_drift(
        ref, {"a": [40.0, 50], "b": [1.0, 1], "k": ["x", "x"]}, kinds
    )
    assert one["drifted_columns"] == 1 and not one["drifted"]
    assert "0.5" in one["rule"]


SEEDS = (1, 2, 3, 4)


@pytest.mark.parametrize("seed", SEEDS)
def test_changed_series_and_group_flagged_control_not(
    qc_root: Path, baseline_json: Path, seed: int
) -> None:
    """Two series with a sharper kernel, +60 HU and 3x noise: both fail and their scanner
    group drifts; two series of the baseline's distribution (another seed): all pass, no
    drift. Over these seeds no false alarm (benchmarks/qc_drift_seeds.py measures the rate
    on many more)."""
    changed = synth(qc_root / f"ch{seed}", seed=100 + seed, patients=2, **CT, **CHANGED)
    control = synth(qc_root / f"co{seed}", seed=200 + seed, patients=2, **CT)
    a = run_qc(changed, qc_root / f"qc-ch{seed}", baseline=baseline_json).doc
    c = run_qc(control, qc_root / f"qc-co{seed}", baseline=baseline_json).doc
    assert [s["status"] for s in a["series"]] == ["fail", "fail"]
    for s in a["series"]:
        codes = {r["code"] for r in s["reasons"]}
        assert {"QC-CT-AIR", "QC-OUTLIER", "QC-NEW-CATEGORY"} <= codes
        flagged = {
            r["detail"].split()[0] for r in s["reasons"] if r["code"] == "QC-OUTLIER"
        }
        assert {"air_mean_hu", "gnl_hu", "tissue_mean_hu"} <= flagged
    (group,) = a["groups"]
    assert group["drift"]["drifted"] and a["summary"]["drifted_groups"] == [
        group["group"]
    ]
    by_col = {col["column"]: col for col in group["drift"]["columns"]}
    assert by_col["gnl_hu"]["test"] == "ks" and by_col["gnl_hu"]["drifted"]
    assert by_col["ConvolutionKernel"]["new"] == ["SHARP"]
    assert a["exit_code"] == 1
    assert [s["status"] for s in c["series"]] == ["pass", "pass"]
    assert not c["groups"][0]["drift"]["drifted"] and c["exit_code"] == 0
