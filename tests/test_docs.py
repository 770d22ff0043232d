"""Generated documentation is current, and every command and error code is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from clisonix_cli.cli import docgen
from clisonix_cli.cli.commands import COMMANDS
from clisonix_cli.errors import all_errors

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(docgen.pages()))
def test_generated_page_is_current(name: str) -> None:
    text = docgen.pages()[name]()
    assert (DOCS / name).read_text(encoding="utf-8") == text, (
        f"docs/{name} is out of date: run `make docs`"
    )


def test_every_error_code_documented() -> None:
    page = (DOCS / "errors.md").read_text(encoding="utf-8")
    for cls in all_errors():
        assert f"`{cls.code}`" in page


def test_every_exit_code_documented() -> None:
    """Each exit code an error can have is in the errors page, README and transform page."""
    page = (DOCS / "errors.md").read_text(encoding="utf-8")
    table = page.split("## Exit codes", 1)[1].split("## Codes", 1)[0]
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    transform = (DOCS / "transform.md").read_text(encoding="utf-8")
    for exit_code in sorted({cls.exit_code for cls in all_errors()}):
        assert f"\n| {exit_code} | " in table, exit_code
        assert f"\n| {exit_code} | " in transform, exit_code
        assert f" {exit_code} " in readme.split("Exit codes:", 1)[1][:600], exit_code
    assert "4 internal error" in readme and "| 4 | Internal error" in transform


def test_every_command_documented_and_has_a_page() -> None:
    cli_page = (DOCS / "cli.md").read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name, _ in COMMANDS:
        assert f"clisonix {name}" in cli_page, name
    for link in [
        line.split("](")[1].split(")")[0] for line in index.splitlines() if "](" in line
    ]:
        assert (DOCS / link).is_file(), f"docs/index.md links to missing {link}"
