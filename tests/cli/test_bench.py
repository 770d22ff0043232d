"""``clisonix bench`` end to end through CliRunner: document, measured figures, compare."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from clisonix_cli.bench import compare as cmp
from clisonix_cli.bench.report import SCHEMA
from clisonix_cli.cli.app import app

runner = CliRunner()

SECTIONS = (
    "memory",
    "ops",
    "end_to_end",
    "scan",
    "stages",
    "compile",
    "peak_memory",
    "sizing",
)
#: Figures that may legitimately be 0 (a spread of identical samples).
MAY_BE_ZERO = ("iqr_ms",)


def _bench(*args: str) -> Any:
    result = runner.invoke(app, ["bench", *args])
    return result


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``--quick --json`` run with every suite but peers (ops limited to window)."""
    tmp = tmp_path_factory.mktemp("bench")
    out, plot = tmp / "run.json", tmp / "run.png"
    result = _bench(
        "--quick",
        "--min-time",
        "0",  # 5 rounds of one call per gated figure: enough for the schema
        "--json",
        "--ops",
        "window",
        "--target",
        "50k/h",
        "--output",
        str(out),
        "--plot",
        str(plot),
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert json.loads(out.read_text()) == doc  # --output holds the same document
    return {"doc": doc, "out": out, "plot": plot}


def test_quick_document_schema(quick: dict[str, Any]) -> None:
    doc = quick["doc"]
    assert doc["schema"] == SCHEMA
    assert doc["errors"] == {}
    for section in SECTIONS:
        assert section in doc, section
    for key in ("clisonix", "numba", "numpy", "python", "cpu_model", "cores"):
        assert doc["env"][key], key
    assert doc["config"]["quick"] is True
    assert [s["name"] for s in doc["config"]["pipeline"]] == ["rescale", "window"]
    assert list(doc["ops"]) == ["window"]
    window = doc["ops"]["window"]
    for run in ("apply_1t", "apply_all"):
        assert window[run]["repeats"] >= 5  # gated: MIN_GATED_REPEATS at least
        assert window[run]["timing"] == "in-process"
        assert len(window[run]["samples_ms"]) == window[run]["repeats"]
    assert window["apply_1t"]["calibrate"] == "1t"
    assert window["apply_all"]["calibrate"] == "all"
    ref = window["references"]["numpy"]
    assert ref["timing"] == "in-process" and ref["1t"]["repeats"] == 3
    assert window["strongest_1t"] == "numpy"
    for level in ("1t", "all"):
        assert doc["calibration"][level]["median_ms"] > 0
    assert doc["end_to_end"]["pipeline"] == ["rescale", "window"]
    assert "1" in doc["end_to_end"]["jobs"]
    assert doc["compile"]["ops"] == ["rescale", "window"]
    assert doc["stages"]["read_decode"]["explicit"]["slices"] == 8


def test_quick_every_figure_positive_and_finite(quick: dict[str, Any]) -> None:
    figures = cmp.figures(quick["doc"])
    assert len(figures) > 100
    for path, value in figures.items():
        assert math.isfinite(value), path
        if path.rsplit(".", 1)[-1] in MAY_BE_ZERO:
            assert value >= 0, path
        else:
            assert value > 0, path


def test_quick_figures_are_consistent(quick: dict[str, Any]) -> None:
    doc = quick["doc"]
    w = doc["ops"]["window"]
    t1 = w["apply_1t"]
    assert t1["voxels_per_s"] == pytest.approx(w["voxels"] / (t1["median_ms"] / 1e3))
    assert t1["gbps"] == pytest.approx(w["bytes_moved"] / (t1["median_ms"] / 1e3) / 1e9)
    assert w["speedup_1t"] == pytest.approx(
        w["references"]["numpy"]["1t"]["median_ms"] / t1["median_ms"]
    )
    assert w["copy_fraction_1t"] == pytest.approx(
        t1["gbps"] / doc["memory"]["copy_gbps_1t"]
    )
    assert t1["min_ms"] <= t1["median_ms"] <= t1["max_ms"]
    e2e = doc["end_to_end"]
    assert e2e["jobs"]["1"]["efficiency"] == pytest.approx(1.0)
    one = e2e["jobs"]["1"]
    assert one["slices_per_s"] == pytest.approx(
        e2e["slices"] / (one["median_ms"] / 1e3)
    )
    sizing = doc["sizing"]
    assert sizing["images_per_hour_1"] == pytest.approx(one["slices_per_s"] * 3600)
    target = sizing["target"]
    eff = min(e2e["parallel_efficiency"], 1.0)
    expected = math.ceil(50_000 / 3600 / (one["slices_per_s"] * eff) - 1e-9)
    assert target["cores_needed"] == max(1, expected)
    assert target["extrapolation"] is True
    share = doc["stages"]["share"]
    assert sum(share.values()) == pytest.approx(1.0)
    peak = doc["peak_memory"]
    assert peak["task_peak_rss_mib"] >= peak["baseline_rss_mib"]


def test_quick_plot_written(quick: dict[str, Any]) -> None:
    with Image.open(quick["plot"]) as img:
        assert img.format == "PNG"


def _window_figure(size: str) -> dict[str, Any]:
    result = _bench("--suite", "ops", "--ops", "window", "--size", size, "--json")
    assert result.exit_code == 0, result.stderr
    fig: dict[str, Any] = json.loads(result.stdout)["ops"]["window"]
    return fig


def test_size_sets_the_per_op_volume() -> None:
    small, large = _window_figure("1"), _window_figure("16")
    assert large["voxels"] == 16 * small["voxels"] == 16 * 512 * 512
    assert large["shape"] == [16, 512, 512]
    for fig in (small, large):  # each volume measured on its own voxels
        t1 = fig["apply_1t"]
        assert math.isfinite(t1["median_ms"]) and t1["median_ms"] > 0
        assert t1["voxels_per_s"] == pytest.approx(
            fig["voxels"] / (t1["median_ms"] / 1e3)
        )


def _scaled(doc: dict[str, Any], factor: float) -> dict[str, Any]:
    """Every gated timing's samples multiplied by ``factor`` (< 1: the old run was faster)."""
    out = copy.deepcopy(doc)
    for node in cmp.timing_nodes(out).values():
        assert isinstance(node, dict)
        node["samples_ms"] = [v * factor for v in node["samples_ms"]]
        node["median_ms"] *= factor
    return out


def test_compare_regression_exits_1(quick: dict[str, Any], tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    # the old run was 10x faster on every gated figure (the whole job stays above the
    # 1 ms under which a figure is too small to judge)
    old.write_text(json.dumps(_scaled(quick["doc"], 0.1)))
    result = _bench("--suite", "e2e", "--quick", "--compare", str(old), "--json")
    assert result.exit_code == 1, result.stderr
    comparison = json.loads(result.stdout)["comparison"]
    status = {c["figure"]: c["status"] for c in comparison["changes"]}
    assert status["end_to_end.jobs.1"] == "regressed"
    assert status["scan.scan"] == "removed"  # not run this time: no verdict
    assert comparison["regressions"] >= 1
    assert "worse than" in result.stderr


def test_compare_within_threshold_exits_0(
    quick: dict[str, Any], tmp_path: Path
) -> None:
    slow_old = tmp_path / "slow_old.json"
    # the old run was 100x slower on every gated figure
    slow_old.write_text(json.dumps(_scaled(quick["doc"], 100.0)))
    result = _bench("--suite", "scan", "--quick", "--compare", str(slow_old))
    assert result.exit_code == 0, result.stderr
    assert "Against the earlier run" in result.stdout
    assert "improved" in result.stdout
    # only the memory suite: every gated figure of the old run is "removed", none fails
    result = _bench("--suite", "memory", "--compare", str(slow_old), "--json")
    assert result.exit_code == 0, result.stderr
    comparison = json.loads(result.stdout)["comparison"]
    assert {c["status"] for c in comparison["changes"]} == {"removed"}


@pytest.mark.parametrize("content", [None, "{broken", '{"schema": "other/1"}'])
def test_compare_bad_file_exits_2(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    result = _bench("--suite", "memory", "--compare", str(path))
    assert result.exit_code == 2
    assert "CLX-E022" in result.stderr
    assert result.stdout == ""  # nothing was run


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target", "fast"], "--target"),
        (["--size", "huge"], "--size"),
        (["--suite", "nope"], "--suite"),
        (["--threshold", "ten"], "--threshold"),
        (["--suite", "ops", "--ops", "no_such_op"], "no_such_op"),
    ],
)
def test_bad_options_exit_2(args: list[str], needle: str) -> None:
    result = _bench(*args)
    assert result.exit_code == 2
    assert "CLX-E001" in result.stderr and needle in result.stderr


def test_user_data(synth_study: Path) -> None:
    result = _bench(
        "--quick",
        "--data",
        str(synth_study),
        "--suite",
        "ops,scan,stages",
        "--ops",
        "window",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["config"]["data"] == "user"
    assert str(synth_study) not in result.stdout  # no user paths in the document
    assert doc["ops"]["window"]["shape"] == [
        4,
        32,
        32,
    ]  # largest stack, cropped to --size
    assert doc["scan"]["files"] == 48
    assert set(doc["stages"]["read_decode"]) == {
        "Explicit VR Little Endian",
        "RLE Lossless",
    }


def test_tables_on_stdout() -> None:
    result = _bench("--suite", "memory")
    assert result.exit_code == 0, result.stderr
    assert "Memory-copy bandwidth" in result.stdout
    assert "GB/s" in result.stdout
