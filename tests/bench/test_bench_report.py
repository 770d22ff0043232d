"""The document helpers and the PNG plot."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from clisonix_cli.bench import report


def _doc() -> dict[str, object]:
    return {
        "schema": report.SCHEMA,
        "env": {"cpu_model": "test cpu", "cores": 2, "clisonix": "0"},
        "end_to_end": {
            "jobs": {"2": {"slices_per_s": 150.0}, "1": {"slices_per_s": 100.0}}
        },
        "ops": {
            "window": {"speedup_1t": 12.0},
            "median": {"speedup_1t": 0.5},
            "other": {"family": "x"},
        },
        "peers": {
            "rows": {
                "conversion_1v1": {
                    "work": "conversion to NIfTI (uncompressed)",
                    "label": "clisonix 1 core vs dcm2niix 1 core",
                    "clisonix": {"cores": 1},
                    "peer": {"cores": 1, "name": "dcm2niix v1"},
                    "ratio_warm": 0.25,
                }
            }
        },
    }


def test_plot_series_sorted_and_complete() -> None:
    points, bars, jobs = report.plot_series(_doc())
    assert points == [(1, 100.0), (2, 150.0)]
    assert bars == [("median", 0.5), ("window", 12.0)]
    assert jobs == [("conversion to NIfTI: 1 vs 1 core(s), dcm2niix v1", 0.25)]


def test_write_plot_makes_a_png(tmp_path: Path) -> None:
    out = report.write_plot(_doc(), tmp_path / "bench.png")
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (1200, 880)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 3  # something was drawn
    empty = report.write_plot({"env": {}}, tmp_path / "empty.png")
    assert empty.stat().st_size > 0


def test_environment_and_new_document() -> None:
    doc = report.new_document({"quick": True})
    env = doc["env"]
    for key in ("clisonix", "numba", "numpy", "python", "cpu_model", "cores"):
        assert env[key], key
    assert env["cores"] >= 1
    assert doc["schema"] == report.SCHEMA
    assert doc["config"] == {"quick": True}
