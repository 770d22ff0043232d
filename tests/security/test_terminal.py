"""Problem 7: escape sequences in header text and file names never reach the terminal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clisonix_cli.cli._console import printable
from clisonix_cli.cli.app import app

# set the window title, clear the screen, turn text red, move the cursor (C1 CSI)
EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x9b1A"
# file names can also reorder what the terminal shows (a header's ISO_IR 6 text cannot)
EVIL_NAME = EVIL + "\u202eright-to-left"
ARGS = ["--jobs", "1", "--backend", "threads", "--format", "nifti"]


@pytest.fixture
def evil_in(synth_study: Path, tmp_path: Path) -> Path:
    import pydicom

    root = tmp_path / "in"
    shutil.copytree(synth_study, root)
    for path in sorted(root.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = f"T1 {EVIL}"
        ds.save_as(path)
    (root / f"bad{EVIL_NAME}.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    (root / f"notes{EVIL_NAME}.txt").write_text("not DICOM\n")
    return root


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text)
    assert "\u202e" not in text


def test_scan_table_and_messages_are_escaped(evil_in: Path) -> None:
    result = CliRunner().invoke(app, ["scan", str(evil_in)])
    assert result.exit_code == 0, result.output
    _no_raw_controls(result.stdout)
    _no_raw_controls(result.stderr)
    assert "\\x1b" in result.stdout  # the description, visible and harmless
    assert "\\x1b" in result.stderr  # the file names


def test_json_keeps_the_exact_text(evil_in: Path) -> None:
    result = CliRunner().invoke(app, ["scan", str(evil_in), "--json"])
    doc = json.loads(result.stdout)
    descriptions = {
        s["series_description"] for st in doc["studies"] for s in st["series"]
    }
    assert descriptions == {f"T1 {EVIL}"}
    assert any(EVIL_NAME in p for p in doc["non_dicom"])


def test_transform_lines_are_escaped(evil_in: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["transform", str(evil_in), str(tmp_path / "out"), *ARGS]
    )
    assert result.exit_code == 1, result.output  # the damaged file
    _no_raw_controls(result.stdout)
    _no_raw_controls(result.stderr)
    assert "\\x1b" in result.stderr


def test_printable() -> None:
    assert printable("a\x1b[31mb\tc\u2028") == "a\\x1b[31mb\\tc\\u2028"
    assert printable("Ünïcode ok") == "Ünïcode ok"
