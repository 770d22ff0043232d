"""Shard-proof, key-bound and resumable: the same key gives the same bytes whatever the
split or executor; another key gives other identifiers; OUT_DIR never mixes two keys."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom

from .conftest import Release, dicom_files, invoke


def _outputs(out: Path) -> dict[str, bytes]:
    """Released files by relative path (manifests, report and run state left out)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in dicom_files(out)}


def test_three_shards_on_two_backends_equal_one_run(
    phi_set: Path, key_file: Path, phi_release: Release, tmp_path: Path
) -> None:
    one = _outputs(phi_release.out)
    for backend in ("threads", "loky"):
        out = tmp_path / backend
        for i in range(3):
            result = invoke(
                ["deid", str(phi_set), str(out), "--key-file", str(key_file),
                 "--shard", f"{i}/3", "--backend", backend, "--jobs", "2"]
            )  # fmt: skip
            assert result.exit_code == 0, result.stderr
        assert _outputs(out) == one, backend
        reports = sorted(p.name for p in out.glob("deid-report*.json"))
        assert reports == [f"deid-report.shard-{i}-of-3.json" for i in range(3)]
        written = sum(
            json.loads((out / r).read_text())["files"]["written"] for r in reports
        )
        assert written == len(one)


def test_another_key_gives_other_uids_and_dates(
    phi_set: Path, other_key_file: Path, phi_release: Release, tmp_path: Path
) -> None:
    out = tmp_path / "other"
    result = invoke(["deid", str(phi_set), str(out), "--key-file", str(other_key_file)])
    assert result.exit_code == 0, result.stderr
    first = {p.name for p in dicom_files(phi_release.out)}
    second = {p.name for p in dicom_files(out)}
    assert len(first) == len(second) and not first & second
    a = {str(pydicom.dcmread(p).PatientID) for p in dicom_files(phi_release.out)}
    b = {str(pydicom.dcmread(p).PatientID) for p in dicom_files(out)}
    assert not a & b
    dates_a = sorted(
        str(pydicom.dcmread(p).StudyDate) for p in dicom_files(phi_release.out)
    )
    dates_b = sorted(str(pydicom.dcmread(p).StudyDate) for p in dicom_files(out))
    assert dates_a != dates_b


def test_resume_skips_finished_tasks_and_refuses_another_key(
    phi_set: Path, key_file: Path, other_key_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    base = ["deid", str(phi_set), str(out)]
    first = invoke([*base, "--key-file", str(key_file), "--jobs", "1"])
    assert first.exit_code == 0
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    releasing = sum(1 for r in records if r["outputs"])  # all-withheld tasks run again
    victim = dicom_files(out)[0]
    victim.unlink()
    again = invoke([*base, "--key-file", str(key_file), "--resume", "--json"])
    assert again.exit_code == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["counts"]["ok"] == doc["counts"]["tasks"]
    assert doc["counts"]["resumed"] == releasing - 1
    assert victim.exists()
    other = invoke([*base, "--key-file", str(other_key_file), "--resume"])
    assert other.exit_code == 2 and "CLX-E020" in other.stderr


def test_dry_run_writes_nothing(phi_set: Path, key_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        [
            "deid",
            str(phi_set),
            str(out),
            "--key-file",
            str(key_file),
            "--dry-run",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert (
        json.loads(result.stdout)["counts"]["tasks"] == 8 + 4 * 4
    )  # image + doc series
    assert not out.exists()


def test_verify_accepts_a_release(phi_release: Release) -> None:
    result = invoke(["verify", str(phi_release.out)])
    assert result.exit_code == 0, result.stderr
