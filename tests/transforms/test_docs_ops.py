"""docs/ops.md is generated from the registry and current; every op documented."""

from __future__ import annotations

from pathlib import Path

from clisonix_cli.transforms.docs import ops_catalogue, ops_markdown
from clisonix_cli.transforms.registry import all_ops

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_ops_md_is_current() -> None:
    assert (DOCS / "ops.md").read_text(encoding="utf-8") == ops_markdown(), (
        "docs/ops.md is out of date: run `make docs`"
    )


def test_every_op_and_parameter_is_documented() -> None:
    page = ops_markdown()
    for name, op in all_ops().items():
        assert f"## {name}\n" in page
        for p in op.params:
            assert f"| `{p.name}` |" in page
    assert [o["name"] for o in ops_catalogue()] == list(all_ops())


def test_hand_written_pages_cover_my_ops() -> None:
    intensity = (DOCS / "ops-intensity.md").read_text(encoding="utf-8")
    for name in ("rescale", "window", "clip", "normalize", "cast", "threshold"):
        assert f"## {name}" in intensity
    linalg = (DOCS / "ops-linalg.md").read_text(encoding="utf-8")
    assert "## matrix" in linalg and "## svd" in linalg
    pipelines = (DOCS / "pipelines.md").read_text(encoding="utf-8")
    for code in (
        "CLX-E010",
        "CLX-E011",
        "CLX-E012",
        "CLX-E013",
        "CLX-E014",
        "CLX-E015",
        "CLX-E016",
    ):
        assert code in pipelines
