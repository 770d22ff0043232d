"""Every op documented in docs/ops.md; the family pages link each op's definition there."""

from __future__ import annotations

from pathlib import Path

from clisonix_cli.transforms.docs import FAMILY_PAGES, ops_catalogue, ops_markdown
from clisonix_cli.transforms.registry import all_ops

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_op_and_parameter_is_documented() -> None:
    page = ops_markdown()
    for name, op in all_ops().items():
        assert f"## {name}\n" in page
        for p in op.params:
            assert f"| `{p.name}` |" in page
    assert [o["name"] for o in ops_catalogue()] == list(all_ops())


def test_family_pages_link_every_op_definition() -> None:
    anchors = ops_markdown()
    for name, op in all_ops().items():
        assert op.family in FAMILY_PAGES, f"{name}: no page for family {op.family}"
        page = (DOCS / FAMILY_PAGES[op.family]).read_text(encoding="utf-8")
        assert f"](ops.md#{name})" in page, f"{FAMILY_PAGES[op.family]} misses {name}"
        assert f"## {name}\n" in anchors
    assert "## Fusion\n" in anchors
    intensity = (DOCS / "ops-intensity.md").read_text(encoding="utf-8")
    assert "](ops.md#fusion)" in intensity


def test_pipeline_errors_documented() -> None:
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
