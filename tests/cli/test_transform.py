"""`clisonix transform` on the command line: options, env vars, streams, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clisonix_cli.cli.app import app
from clisonix_cli.taskarray import execute

OPS = ["--op", "rescale", "--op", "window:preset=brain"]


def _invoke(args: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["transform", *args], env=env)


def test_bad_pipeline_exits_2_before_reading_input(
    synth_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_scan(cfg: object) -> None:
        raise AssertionError("the input was scanned before the pipeline was validated")

    monkeypatch.setattr(execute, "scan_input", no_scan)
    out = tmp_path / "out"
    result = _invoke([str(synth_study), str(out), "--op", "no-such-op"])
    assert result.exit_code == 2, result.output
    assert "CLX-E01" in result.stderr and result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--shard", "3/3"], "CLX-E021"),
        (["--resume", "--overwrite"], "CLX-E001"),
        (["--format", "tiff"], "CLX-E001"),
        (["--backend", "threads", "--scheduler", "tcp://127.0.0.1:1"], "CLX-E001"),
    ],
)
def test_usage_errors_exit_2(
    synth_study: Path, tmp_path: Path, extra: list[str], code: str
) -> None:
    result = _invoke([str(synth_study), str(tmp_path / "out"), *extra])
    assert result.exit_code == 2 and code in result.stderr


def test_out_dir_not_writable_exits_3(synth_study: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _invoke([str(synth_study), str(blocker), "--jobs", "1"])
    assert result.exit_code == 3 and "CLX-E030" in result.stderr


def test_json_summary_env_vars_and_plain_progress(
    synth_study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {
        "CLISONIX_FORMAT": "npy",
        "CLISONIX_JOBS": "1",
        "CLISONIX_BACKEND": "threads",
    }
    result = _invoke([str(synth_study), str(out), *OPS, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert doc["exit_code"] == 0 and doc["format"] == "npy"
    assert doc["counts"]["ok"] == doc["counts"]["planned"] == len(doc["tasks"]) > 0
    outputs = [p for t in doc["tasks"] for p in t["outputs"]]
    assert outputs and all((out / p).is_file() for p in outputs)
    assert any(p.endswith(".npy") for p in outputs)
    n = doc["counts"]["planned"]
    assert f"[1/{n}] ok" in result.stderr  # one plain line per task off a terminal
    again = _invoke([str(synth_study), str(out), *OPS, "--json", "--resume"], env=env)
    assert json.loads(again.stdout)["counts"]["resumed"] == n


def test_dry_run_prints_plan_and_writes_nothing(
    synth_study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _invoke(
        [str(synth_study), str(out), *OPS, "--dry-run", "--shard", "0/2", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] and doc["shard"] == "0/2" and doc["n_tasks_total"] == 6
    assert all(t["shard"] == 0 for t in doc["tasks"]) and doc["est_bytes"] > 0
    assert not out.exists()
    table = _invoke([str(synth_study), str(out), "--dry-run"])
    assert table.exit_code == 0 and "6 of 6 task(s)" in table.stdout


def test_other_pipeline_in_out_dir_exits_2(synth_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _invoke([str(synth_study), str(out), "--jobs", "1", "--backend", "threads"])
    assert first.exit_code == 0, first.stderr
    second = _invoke([str(synth_study), str(out), *OPS, "--jobs", "1"])
    assert second.exit_code == 2 and "CLX-E020" in second.stderr


def test_missing_distributed_exits_3_with_hint(
    synth_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    result = _invoke([str(synth_study), str(tmp_path / "out"), "--backend", "dask"])
    assert result.exit_code == 3 and "CLX-E033" in result.stderr
    assert "pip install" in result.stderr


def test_pipeline_file_then_ops(synth_study: Path, tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[[op]]\nname = "rescale"\n\n[[op]]\nname = "window"\npreset = "brain"\n'
    )
    out = tmp_path / "out"
    args = [
        str(synth_study),
        str(out),
        "--pipeline",
        str(toml),
        "--op",
        "flip:axis=row",
    ]
    result = _invoke([*args, "--jobs", "1", "--backend", "threads", "--json"])
    assert result.exit_code == 0, result.stderr
    rec = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert [op["name"] for op in rec["pipeline"]] == ["rescale", "window", "flip"]


def test_files_from_outside_in_dir_exits_2(synth_study: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'elsewhere.dcm'}\n")
    result = _invoke(
        [str(synth_study), str(tmp_path / "out"), "--files-from", str(listing)]
    )
    assert result.exit_code == 2 and "outside IN_DIR" in result.stderr


def test_four_d_mosaic_with_files_from(shared_data: Path, tmp_path: Path) -> None:
    """A 2-volume Siemens mosaic (dcm_qa): the pipeline runs per volume, outputs are 4-D."""
    import nibabel as nib

    from clisonix_cli.dicom.index import scan

    in_dir = shared_data / "dcm_qa" / "In"
    series = in_dir / "Orientation" / "ax" / "axasc35"
    files = sorted(p.relative_to(in_dir).as_posix() for p in series.glob("MR.*"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(files) + "\n")
    common = ["--files-from", str(listing), *OPS, "--jobs", "1", "--json"]
    out = tmp_path / "nii"
    result = _invoke([str(in_dir), str(out), *common])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"]["planned"] == 1
    nii = next(p for p in doc["tasks"][0]["outputs"] if p.endswith(".nii.gz"))
    got = nib.as_closest_canonical(nib.load(out / nii))
    ref = nib.as_closest_canonical(
        nib.load(shared_data / "dcm_qa" / "Ref" / "ax_asc_35sl_6.nii")
    )
    assert got.shape == ref.shape and len(got.shape) == 4 and got.shape[3] == 2
    assert abs(got.affine - ref.affine).max() < 1e-3
    data = np.asarray(got.dataobj)
    assert 0.0 <= data.min() <= data.max() <= 1.0  # windowed, every volume
    assert all(data[..., t].max() > 0 for t in range(2))
    dcm = tmp_path / "dcm"
    result = _invoke([str(in_dir), str(dcm), *common, "--format", "dicom"])
    assert result.exit_code == 0, result.stderr
    again = scan(dcm)
    assert len(again.stacks) == 2 and not again.skipped  # one derived series per volume
    assert {s.n_slices for s in again.stacks} == {35}


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_unreadable_in_dir_exits_3_like_scan_and_creates_nothing(
    tmp_path: Path, kind: str
) -> None:
    in_dir = tmp_path / "in"
    if kind == "file":
        in_dir.write_text("not a folder")
    out = tmp_path / "out"
    result = _invoke([str(in_dir), str(out), "--json"])
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CLX-E034:"), result.stderr
    assert not out.exists()


def test_failure_before_any_task_leaves_no_out_dir(
    synth_study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deep" / "out"
    result = _invoke(
        [str(synth_study), str(out), "--files-from", str(tmp_path / "no-such-list")]
    )
    assert result.exit_code == 3 and "CLX-E034" in result.stderr
    assert not out.exists()


def test_fail_fast_summary_counts_cancelled_tasks_in_one_line(
    synth_study: Path, tmp_path: Path
) -> None:
    import shutil

    in_dir = tmp_path / "in"
    shutil.copytree(synth_study, in_dir)
    first = sorted(in_dir.rglob("*.dcm"))[0].parent
    (first / "IM00004.dcm").unlink()  # a gap: that series fails (CLX-E121)
    args = [str(in_dir), str(tmp_path / "out"), "--jobs", "1", "--backend", "threads"]
    result = _invoke([*args, "--fail-fast", "--gaps", "fail"])
    assert result.exit_code == 1, result.output
    summary = [ln for ln in result.stderr.splitlines() if not ln.startswith("[")]
    cancelled = [ln for ln in summary if ln.startswith("CLX-E152")]
    assert len(cancelled) == 1 and "task(s) not run because --fail-fast" in cancelled[0]
    assert any(ln.startswith("CLX-E121") for ln in summary)
