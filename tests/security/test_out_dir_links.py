"""Problem 4: symbolic links planted in OUT_DIR are refused, never written through.

Every case plants a link to a file or folder outside OUT_DIR and checks the run refuses
with one CLX-E035 line (exit 3) where it would write through it, and that everything
outside stays byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from clisonix_cli import fsio
from clisonix_cli.cli.app import app
from clisonix_cli.errors import OutputLinkError

ARGS = ["--jobs", "1", "--backend", "threads", "--format", "nifti"]


def _transform(in_dir: Path, out_dir: Path, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        app, ["transform", str(in_dir), str(out_dir), *ARGS, *extra]
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside OUT_DIR holding files a planted link could reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"keep me\n")
    (folder / "stale.clxtmp").write_bytes(b"not clisonix's\n")
    return folder


def _refused(result, outside: Path, before: dict[str, str], crafted) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 3, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(OutputLinkError.code), lines
    assert crafted.tree_digest(outside) == before


@pytest.mark.parametrize(
    "planted",
    ["manifest.jsonl", ".clisonix/run-log.jsonl", ".clisonix"],
)
def test_links_where_the_driver_writes_are_refused(
    synth_study: Path,
    tmp_path: Path,
    outside: Path,
    crafted: SimpleNamespace,
    planted: str,
) -> None:
    out = tmp_path / "out"
    link = out / planted
    link.parent.mkdir(parents=True)
    target = outside if planted == ".clisonix" else outside / "secret.txt"
    link.symlink_to(target)
    before = crafted.tree_digest(outside)
    result = _transform(synth_study, out, "--overwrite")
    _refused(result, outside, before, crafted)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "stale.clxtmp"]


def test_a_linked_study_folder_is_refused_and_never_swept(
    synth_study: Path, tmp_path: Path, outside: Path, crafted: SimpleNamespace
) -> None:
    out = tmp_path / "out"
    assert _transform(synth_study, out).exit_code == 0
    study = sorted(p for p in out.iterdir() if p.is_dir() and p.name != ".clisonix")[0]
    shutil.rmtree(study)
    study.symlink_to(outside, target_is_directory=True)
    before = crafted.tree_digest(outside)
    result = _transform(synth_study, out)  # same pipeline: every task runs again
    _refused(result, outside, before, crafted)
    assert (outside / "stale.clxtmp").exists()  # the sweep did not follow the link


def test_a_link_inside_a_study_folder_is_refused(
    synth_study: Path, tmp_path: Path, outside: Path, crafted: SimpleNamespace
) -> None:
    out = tmp_path / "out"
    assert _transform(synth_study, out).exit_code == 0
    nii = sorted(out.rglob("*.nii"))[0]
    nii.unlink()
    nii.symlink_to(outside / "secret.txt")
    before = crafted.tree_digest(outside)
    _refused(_transform(synth_study, out), outside, before, crafted)


def test_one_task_run_in_the_driver_refuses_links_too(
    synth_study: Path, tmp_path: Path, outside: Path, crafted: SimpleNamespace
) -> None:
    # One series: --backend auto runs its only task in the clisonix process itself.
    series = sorted({p.parent for p in synth_study.rglob("*.dcm")})[0]
    in_dir, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(series, in_dir / series.name)
    one = ["transform", str(in_dir), str(out), "--backend", "auto", "--jobs", "2"]
    first = CliRunner().invoke(app, [*one, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["counts"]["planned"] == 1
    nii = sorted(out.rglob("*.nii*"))[0]
    nii.unlink()
    nii.symlink_to(outside / "secret.txt")
    before = crafted.tree_digest(outside)
    _refused(CliRunner().invoke(app, one), outside, before, crafted)


def test_the_probe_file_is_unpredictable(
    synth_study: Path, tmp_path: Path, outside: Path, crafted: SimpleNamespace
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # the name the probe had before: pid-based, so plantable
    (out / f".clisonix-probe.{os.getpid()}.clxtmp").symlink_to(outside / "secret.txt")
    before = crafted.tree_digest(outside)
    result = _transform(synth_study, out)
    assert result.exit_code == 0, result.output
    assert crafted.tree_digest(outside) == before


def test_atomic_writes_refuse_links_under_the_confining_root(
    tmp_path: Path, outside: Path, crafted: SimpleNamespace
) -> None:
    root = tmp_path / "out"
    (root / "study").mkdir(parents=True)
    (root / "study" / "a.nii").symlink_to(outside / "secret.txt")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    before = crafted.tree_digest(outside)
    with fsio.confined(root):
        with pytest.raises(OutputLinkError):
            fsio.atomic_write_bytes(root / "study" / "a.nii", b"x")
        with pytest.raises(OutputLinkError):
            fsio.atomic_write_bytes(root / "linked" / "deeper" / "b.nii", b"x")
        with pytest.raises(OutputLinkError):
            fsio.atomic_write_bytes(tmp_path / "elsewhere.bin", b"x")
        with pytest.raises(OutputLinkError), fsio.open_append(root / "linked" / "log"):
            pass
        fsio.atomic_write_bytes(root / "study" / "sub" / "c.nii", b"ok")
    assert (root / "study" / "sub" / "c.nii").read_bytes() == b"ok"
    assert crafted.tree_digest(outside) == before
    assert not (outside / "deeper").exists()


def test_temporary_files_are_created_exclusively(
    tmp_path: Path,
    outside: Path,
    crafted: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # even a planted link at the very temporary name is never opened
    monkeypatch.setattr(fsio.secrets, "token_hex", lambda n: "0" * (2 * n))
    (tmp_path / ".a.bin.0000000000000000.clxtmp").symlink_to(outside / "secret.txt")
    before = crafted.tree_digest(outside)
    with pytest.raises(FileExistsError):
        fsio.atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert crafted.tree_digest(outside) == before
    assert not (tmp_path / "a.bin").exists()


def test_4d_dicom_slices_are_checked_before_they_are_written(
    tmp_path: Path, outside: Path, crafted: SimpleNamespace
) -> None:
    from clisonix_cli.dicom.write import write_derived

    root = tmp_path / "out"
    series = root / "study" / "series"
    series.mkdir(parents=True)
    (series / "t0001").symlink_to(outside, target_is_directory=True)
    before = crafted.tree_digest(outside)
    data = np.zeros((2, 3, 4, 5), dtype=np.int16)
    with fsio.confined(root), pytest.raises(OutputLinkError):
        write_derived(
            series, data, np.diag([1.0, 1.0, 1.0, 1.0]), slope=1.0, intercept=0.0,
            meta={"Modality": "CT"}, series_uid="1.2.3", stack_key="1", pipeline=[],
            pipeline_sha256="0" * 64,
        )  # fmt: skip
    assert crafted.tree_digest(outside) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "stale.clxtmp"]
