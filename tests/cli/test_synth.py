"""``clisonix synth`` end to end through the Typer app."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from clisonix_cli.cli.app import app

runner = CliRunner()
ARGS = [
    "--patients",
    "1",
    "--series",
    "2",
    "--slices",
    "3",
    "--rows",
    "16",
    "--cols",
    "16",
]


def test_synth_json_lists_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = runner.invoke(
        app,
        [
            "synth",
            str(out),
            *ARGS,
            "--modality",
            "mixed",
            "--syntax",
            "mixed",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    files = sorted(out.rglob("*.dcm"))
    assert doc["files"] == len(files) == 6
    assert doc["bytes"] == sum(p.stat().st_size for p in files)
    assert [(s["modality"], s["orientation"], s["syntax"]) for s in doc["series"]] == [
        ("CT", "axial", "explicit"),
        ("MR", "oblique", "rle"),
    ]
    assert doc["series"][0]["dir"] == "PAT000/STU00/SER01"
    assert doc["series"][0]["shape"] == [3, 16, 16]


def test_synth_writes_checkable_sums(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = runner.invoke(app, ["synth", str(out), *ARGS, "--sha256sums"])
    assert result.exit_code == 0, result.output
    assert "wrote 6 files in 2 series" in result.stderr
    lines = (out / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:  # sha256sum -c format: "<hex>  <relative path>"
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_synth_bad_values_exit_2_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "x"), "--slices", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("CLX-E001:")
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["synth", str(tmp_path / "x"), "--modality", "PET"])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()


def test_synth_unwritable_out_dir_exits_3_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker, blocker / "below"):
        result = runner.invoke(app, ["synth", str(target), *ARGS])
        assert result.exit_code == 3, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("CLX-E030:"), result.stderr
        assert "Traceback" not in result.output


def test_synth_refuses_to_mix_sets_but_rewrites_its_own(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert runner.invoke(app, ["synth", str(out), *ARGS, "--sha256sums"]).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = runner.invoke(app, ["synth", str(out), *ARGS, "--sha256sums"])
    assert again.exit_code == 0, again.output  # same command: same files, same bytes
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    fewer = [a if a != "3" else "2" for a in ARGS]  # --slices 2: IM00003 would linger
    mixed = runner.invoke(app, ["synth", str(out), *fewer])
    assert mixed.exit_code == 2, mixed.output
    assert mixed.stderr.startswith("CLX-E001:") and "IM00003.dcm" in mixed.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
