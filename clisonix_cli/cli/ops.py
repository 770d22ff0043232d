"""``clisonix ops``: list the transform ops and their parameters (from the declarations)."""

from __future__ import annotations

from typing import Any

from clisonix_cli.cli._console import emit_json, reporting_errors
from clisonix_cli.cli._options import JsonFlag


def ops(
    json_out: JsonFlag = False,
) -> None:
    """List every transform op with its parameters, types, defaults, units and choices.

    Nothing is compiled: the list comes from the op declarations. Use the names and keys in
    --op NAME:key=value,... or in a pipeline TOML file (docs/pipelines.md).

    Example: clisonix ops --json
    """
    from clisonix_cli.transforms.docs import ops_catalogue

    with reporting_errors():
        catalogue = ops_catalogue()
    if json_out:
        emit_json({"ops": catalogue})
    else:
        _render(catalogue)


def _default(p: dict[str, Any]) -> str:
    if p["required"]:
        return "required"
    value = p["default"]
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "x".join(f"{v:g}" for v in value)
    return str(value)


def _render(catalogue: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(soft_wrap=True, highlight=False)
    for op in catalogue:
        fused = ", fusable" if op["fusable"] else ""
        console.print(
            f"[bold]{escape(op['name'])}[/bold] (v{op['version']}, {escape(op['family'])}"
            f"{fused}) - {escape(op['summary'])}"
        )
        if not op["params"]:
            console.print("  no parameters")
            continue
        table = Table(box=None, show_header=True, pad_edge=False, padding=(0, 2, 0, 2))
        for col in ("param", "type", "default", "unit", "choices", "meaning"):
            table.add_column(col)
        for p in op["params"]:
            table.add_row(
                escape(p["name"]),
                escape(p["type"]),
                escape(_default(p)),
                escape(p["unit"] or ""),
                escape(", ".join(p["choices"] or [])),
                escape(p["doc"]),
            )
        console.print(table)
