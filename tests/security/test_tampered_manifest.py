"""Problem 5: manifest paths that leave OUT_DIR are tampering, reported and never read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clisonix_cli.cli.app import app
from clisonix_cli.digest import file_digest
from clisonix_cli.errors import ManifestTamperedError
from clisonix_cli.taskarray import resume

ARGS = ["--jobs", "1", "--backend", "threads", "--format", "nifti"]


@pytest.fixture
def converted(synth_study: Path, tmp_path: Path) -> Path:
    out = tmp_path / "deep" / "out"
    result = CliRunner().invoke(app, ["transform", str(synth_study), str(out), *ARGS])
    assert result.exit_code == 0, result.output
    return out


def _retarget(out: Path, new_path: str, target: Path) -> str:
    """Point the first output of the manifest at ``new_path`` with ``target``'s digest."""
    lines = (out / "manifest.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("outputs"):
            old = rec["outputs"][0]["path"]
            rec["outputs"][0].update(
                path=new_path,
                bytes=target.stat().st_size,
                digest=file_digest(target),
            )
            lines[i] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
            break
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return str(old)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "link"])
def test_verify_refuses_paths_that_leave_out_dir(
    converted: Path, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "hostname"
    secret.write_text("a file elsewhere\n")
    if kind == "dotdot":
        rel = "../../hostname"
    elif kind == "absolute":
        rel = str(secret)
    else:
        (converted / "peek").symlink_to(tmp_path, target_is_directory=True)
        rel = "peek/hostname"
    old = _retarget(converted, rel, secret)
    (
        converted / old
    ).unlink()  # the real output is gone: verify must not call it intact
    read: list[str] = []
    real = resume.matches

    def spy(path: Path, recorded: object) -> bool:
        read.append(str(path))
        return real(path, recorded)

    monkeypatch.setattr(resume, "matches", spy)
    result = CliRunner().invoke(app, ["verify", str(converted), "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["tampered"] == [rel] and not doc["ok"]
    assert ManifestTamperedError.code in result.stderr
    assert not any("hostname" in p for p in read), "a tampered path was read"


def test_resume_reruns_a_task_whose_output_path_was_tampered(
    synth_study: Path, converted: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "hostname"
    secret.write_text("a file elsewhere\n")
    _retarget(converted, "../../hostname", secret)
    result = CliRunner().invoke(
        app,
        ["transform", str(synth_study), str(converted), *ARGS, "--resume", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert ManifestTamperedError.code in result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"]["resumed"] == doc["counts"]["planned"] - 1
    assert secret.read_text() == "a file elsewhere\n"
    verified = CliRunner().invoke(app, ["verify", str(converted)])
    assert verified.exit_code == 0, verified.output  # the rerun replaced the record
