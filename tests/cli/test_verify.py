"""`clisonix verify`: re-hash every output against the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clisonix_cli.cli.app import app


@pytest.fixture
def converted(synth_study: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["transform", str(synth_study), str(out), "--jobs", "2", "--backend", "threads",
         "--op", "rescale"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out


def test_verify_clean_output(converted: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(converted), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["checked"] == 2 * doc["tasks_ok"] > 0


def test_verify_names_tampered_and_extra_files(converted: Path) -> None:
    target = sorted(converted.rglob("*.nii.gz"))[0]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    (converted / "stray.txt").write_text("x")
    rel = target.relative_to(converted).as_posix()
    result = CliRunner().invoke(app, ["verify", str(converted)])
    assert result.exit_code == 1
    assert f"CLX-E160: {rel}: changed" in result.stderr
    assert "stray.txt: extra" in result.stderr
    doc = json.loads(
        CliRunner().invoke(app, ["verify", str(converted), "--json"]).stdout
    )
    assert doc["changed"] == [rel] and doc["extra"] == ["stray.txt"]


def test_verify_without_manifest_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 2 and "no manifest" in result.stderr
