"""--compare: figure extraction, direction of every figure kind, verdicts, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clisonix_cli.bench import compare as cmp
from clisonix_cli.bench.report import SCHEMA
from clisonix_cli.errors import CompareError, UsageError


def _doc(
    median_ms: float, slices_per_s: float, rss: float = 300.0
) -> dict[str, object]:
    return {
        "schema": SCHEMA,
        "env": {"cores": 2, "numba": "0.68"},
        "config": {"slices": 4},
        "ops": {
            "window": {
                "apply_1t": {"median_ms": median_ms, "min_ms": 1.0, "repeats": 3},
                "speedup_1t": 10.0,
                "voxels": 1000,
                "in_dtype": "int16",
            }
        },
        "end_to_end": {
            "jobs": {"1": {"slices_per_s": slices_per_s}},
            "parallel_efficiency": 0.9,
        },
        "peak_memory": {"task_peak_rss_mib": rss},
        "errors": {},
    }


@pytest.mark.parametrize(
    ("key", "way"),
    [
        ("median_ms", "lower"),
        ("compile_ms", "lower"),
        ("import_s", "lower"),
        ("total_ms", "lower"),
        ("task_peak_rss_mib", "lower"),
        ("cores_needed", "lower"),
        ("slices_per_s", "higher"),
        ("files_per_s", "higher"),
        ("copy_gbps_1t", "higher"),
        ("gbps", "higher"),
        ("speedup_all", "higher"),
        ("parallel_efficiency", "higher"),
        ("copy_fraction_1t", "higher"),
        ("images_per_hour_1", "higher"),
        ("ratio", "higher"),
        ("min_ms", None),
        ("iqr_ms", None),
        ("first_call_ms", None),
        ("repeats", None),
        ("voxels", None),
        ("bytes_moved", None),
    ],
)
def test_direction(key: str, way: str | None) -> None:
    assert cmp.direction(key) == way


def test_figures_skip_description_sections_and_strings() -> None:
    figs = cmp.figures(_doc(2.0, 100.0))
    assert "ops.window.apply_1t.median_ms" in figs
    assert "end_to_end.jobs.1.slices_per_s" in figs
    assert not any(p.startswith(("env.", "config.")) for p in figs)
    assert "ops.window.in_dtype" not in figs


def test_judge() -> None:
    assert cmp.judge(10.0, 11.5, "lower", 0.10) == "regressed"
    assert cmp.judge(10.0, 10.9, "lower", 0.10) == "within"
    assert cmp.judge(10.0, 8.0, "lower", 0.10) == "improved"
    assert cmp.judge(100.0, 85.0, "higher", 0.10) == "regressed"
    assert cmp.judge(100.0, 95.0, "higher", 0.10) == "within"
    assert cmp.judge(100.0, 120.0, "higher", 0.10) == "improved"
    assert cmp.judge(10.0, 99.0, None, 0.10) == "info"
    assert cmp.judge(0.0, 5.0, "lower", 0.10) == "info"


def test_compare_flags_time_up_and_throughput_down() -> None:
    changes = {c.path: c for c in cmp.compare(_doc(2.0, 100.0), _doc(3.0, 50.0))}
    assert changes["ops.window.apply_1t.median_ms"].status == "regressed"
    assert changes["ops.window.apply_1t.median_ms"].relative == pytest.approx(0.5)
    assert changes["end_to_end.jobs.1.slices_per_s"].status == "regressed"
    assert changes["ops.window.apply_1t.min_ms"].status == "info"
    assert changes["ops.window.speedup_1t"].status == "within"


def test_compare_improvements_and_threshold() -> None:
    changes = cmp.compare(_doc(3.0, 50.0), _doc(2.0, 100.0))
    assert not [c for c in changes if c.status == "regressed"]
    # a 50% slowdown passes a 60% threshold
    loose = cmp.compare(_doc(2.0, 100.0), _doc(3.0, 100.0), threshold=0.6)
    assert not [c for c in loose if c.status == "regressed"]


def test_compare_added_and_removed() -> None:
    old = _doc(2.0, 100.0)
    new = _doc(2.0, 100.0)
    del new["peak_memory"]
    new["scan"] = {"files_per_s": 10.0}
    status = {c.path: c.status for c in cmp.compare(old, new)}
    assert status["peak_memory.task_peak_rss_mib"] == "removed"
    assert status["scan.files_per_s"] == "added"


def test_config_differences() -> None:
    old, new = _doc(2.0, 1.0), _doc(2.0, 1.0)
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
    good.write_text(json.dumps(_doc(1.0, 1.0)))
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
