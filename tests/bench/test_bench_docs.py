"""docs/bench.md and README.md carry the figures of docs/bench-run.json, rendered by a command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clisonix_cli.bench import markdown

ROOT = Path(__file__).resolve().parents[2]


def test_bench_docs_are_current() -> None:
    """`make bench-docs` has been run since docs/bench-run.json last changed."""
    for path, text in markdown.render(ROOT).items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} differs from {markdown.RUN_JSON}: run make bench-docs"
        )


def test_committed_run_is_a_full_run_with_peers() -> None:
    doc = json.loads((ROOT / markdown.RUN_JSON).read_text(encoding="utf-8"))
    assert doc["config"]["quick"] is False
    assert doc["errors"] == {}
    assert set(doc["peers"]["rows"]) >= {"conversion_1v1", "pipeline_1v1"}
    for row in doc["peers"]["rows"].values():
        assert row["clisonix"]["timing"] == row["peer"]["timing"] == "process"


def test_render_reads_the_document() -> None:
    doc = json.loads((ROOT / markdown.RUN_JSON).read_text(encoding="utf-8"))
    doc["peers"]["rows"]["conversion_1v1"]["ratio_warm"] = 123.456
    assert "123x" in markdown.render_tables(doc)
    assert f"{doc['env']['cores']}-core" in markdown.headline(doc)


@pytest.mark.parametrize(
    ("speedup", "words"), [(4.0, "4x faster"), (0.25, "4x slower")]
)
def test_headline_says_which_way(speedup: float, words: str) -> None:
    doc = json.loads((ROOT / markdown.RUN_JSON).read_text(encoding="utf-8"))
    doc["ops"]["median"]["speedup_1t"] = speedup
    assert f"`median` {words} than" in markdown.headline(doc)


def test_splice_needs_both_markers() -> None:
    text = "a\n<!-- B -->\nold\n<!-- E -->\nz\n"
    assert markdown.splice(text, ("<!-- B -->", "<!-- E -->"), "new\n") == (
        "a\n<!-- B -->\nnew\n<!-- E -->\nz\n"
    )
    with pytest.raises(ValueError):
        markdown.splice("no markers", ("<!-- B -->", "<!-- E -->"), "x")
