"""``transform --deidentify``: every output (names, NIfTI header text, sidecars, derived
DICOM, manifest, run log, messages) free of the inputs' identifiers, for each format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pydicom
import pytest
from typer.testing import Result

from clisonix_cli.dicom.synth import plan
from clisonix_cli.dicom.synth_phi import canaries

from .conftest import (
    PHI_ARGS,
    Release,
    all_bytes,
    dicom_files,
    expected_uid,
    input_identifiers,
    invoke,
    leaks,
)


def _deidentify(phi_set: Path, out: Path, key_file: Path, *extra: str) -> Result:
    """``transform --deidentify`` of the phi set into ``out`` (one job unless given)."""
    jobs = [] if "--jobs" in extra else ["--jobs", "1"]
    args = ["--deidentify", "--key-file", str(key_file), *jobs, *extra]
    return invoke(["transform", str(phi_set), str(out), *args])


def _canaries() -> set[str]:
    args = {k: v for k, v in PHI_ARGS.items() if k != "seed"}
    plans = plan(phi=True, seed=int(PHI_ARGS["seed"]), **args)  # type: ignore[arg-type]
    return canaries(int(PHI_ARGS["seed"]), plans)


@pytest.mark.parametrize("fmt", ["nifti", "nifti-gz", "npy", "png", "dicom"])
def test_every_output_is_free_of_identifiers(
    phi_set: Path, key_file: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "out"
    result = _deidentify(phi_set, out, key_file, "--format", fmt, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"]["ok"] == 8  # the image series; documents are set aside
    ids = input_identifiers(phi_set, _canaries())
    blobs = list(all_bytes(out))
    blobs += [("stdout", result.stdout.encode()), ("stderr", result.stderr.encode())]
    assert leaks(blobs, ids) == []
    assert not list((out / ".clisonix" / "staging").glob("*"))  # all released


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def test_png_outputs_carry_no_text_chunks_and_keyed_names(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _deidentify(phi_set, out, key_file, "--format", "png")
    assert result.exit_code == 0, result.stderr
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 8 * 3  # one per slice of each image series
    for p in pngs:
        assert set(_png_chunks(p.read_bytes())) <= {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
    uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID)
            for f in dicom_files(phi_set)}  # fmt: skip
    names = {part for p in pngs for part in p.relative_to(out).parts}
    assert not any(u in n for u in uids for n in names)
    sidecars = [
        json.loads(p.read_text()) for p in out.rglob("*.json") if p.parent != out
    ]
    assert sidecars and all("SeriesDescription" not in s for s in sidecars)


def test_nifti_header_text_fields_are_empty(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _deidentify(phi_set, out, key_file, "--format", "nifti-gz")
    assert result.exit_code == 0, result.stderr
    files = sorted(out.rglob("*.nii.gz"))
    assert files
    for p in files:
        head = gzip.decompress(p.read_bytes())[:348]
        # descrip (148..228), aux_file (228..252), intent_name (328..344), db_name (4..22)
        for start, end in ((148, 228), (228, 252), (328, 344), (4, 22)):
            assert head[start:end].strip(b"\x00") == b""


def test_derived_dicom_is_marked_and_joins_the_released_study(
    phi_set: Path, key_file: Path, phi_release: Release, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _deidentify(phi_set, out, key_file, "--format", "dicom")
    assert result.exit_code == 0, result.stderr
    released = {
        str(pydicom.dcmread(p).StudyInstanceUID): pydicom.dcmread(p)
        for p in dicom_files(phi_release.out)
    }
    derived = [pydicom.dcmread(p) for p in dicom_files(out)]
    assert len(derived) == 8 * 3
    for ds in derived:
        assert ds.PatientIdentityRemoved == "YES"
        assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == [
            "113100", "113107",
        ]  # fmt: skip
        assert "BurnedInAnnotation" not in ds  # the inputs did not say
        twin = released[str(ds.StudyInstanceUID)]  # same key: the same new study
        assert ds.PatientID == twin.PatientID == ds.PatientName
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SeriesDescription" not in ds and "ProtocolName" not in ds


def test_names_and_records_are_keyed(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _deidentify(phi_set, out, key_file, "--format", "nifti")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    tasks = [r for r in records if r["status"] == "ok"]
    skipped = [r for r in records if r["status"] == "skipped"]
    assert len(tasks) == 8 and len(skipped) == 16  # KOS, SR, PR, PDF per study
    for rec in tasks:
        assert all(set(i) == {"file", "digest"} for i in rec["inputs"])
        assert all(i["digest"].startswith("blake3:") for i in rec["inputs"])
        assert rec["deid_sha256"] and rec["study_uid"].startswith("2.25.")
    for rec in skipped:
        assert rec["inputs"][0]["file"].startswith("f")
    studies = {str(pydicom.dcmread(p).StudyInstanceUID) for p in dicom_files(phi_set)}
    for path in (p for p in out.rglob("*.json") if ".clisonix" not in p.parts):
        sidecar = json.loads(path.read_text())
        assert "SeriesDescription" not in sidecar and "ProtocolName" not in sidecar
        assert sidecar["StudyInstanceUID"] in {expected_uid(u) for u in studies}


def test_key_options_without_deidentify_are_refused(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    result = invoke(
        ["transform", str(phi_set), str(tmp_path / "o"), "--key-file", str(key_file)]
    )
    assert result.exit_code == 2 and "--deidentify" in result.stderr


def test_deidentify_without_key_exits_2(phi_set: Path, tmp_path: Path) -> None:
    result = invoke(["transform", str(phi_set), str(tmp_path / "o"), "--deidentify"])
    assert result.exit_code == 2 and "CLX-E190" in result.stderr
    assert not (tmp_path / "o").exists()


def test_qc_with_deidentify_is_refused_before_any_work(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    """QC files name stations and series: not released under --deidentify (exit 2)."""
    result = _deidentify(phi_set, tmp_path / "o", key_file, "--qc")
    assert result.exit_code == 2 and "--qc" in result.stderr
    assert not (tmp_path / "o").exists()


def test_same_bytes_on_threads_and_processes(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    trees = []
    for backend in ("threads", "loky"):
        out = tmp_path / backend
        extra = ("--format", "nifti", "--backend", backend, "--jobs", "2")
        result = _deidentify(phi_set, out, key_file, *extra)
        assert result.exit_code == 0, result.stderr
        trees.append(
            {
                p.relative_to(out).as_posix(): p.read_bytes()
                for p in out.rglob("*")
                if p.is_file() and ".clisonix" not in p.parts
            }
        )
    assert trees[0] == trees[1]


def test_dry_run_plan_names_nothing_identifying(
    phi_set: Path, key_file: Path, tmp_path: Path
) -> None:
    result = _deidentify(phi_set, tmp_path / "o", key_file, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    ids = input_identifiers(phi_set, _canaries())
    assert (
        leaks([("plan", result.stdout.encode()), ("err", result.stderr.encode())], ids)
        == []
    )
    doc = json.loads(result.stdout)
    assert len(doc["tasks"]) == 8 and len(doc["skipped"]) == 16
    plain = invoke(
        ["transform", str(phi_set), str(tmp_path / "p"), "--dry-run", "--json"]
    )
    assert "ZQX" in plain.stdout  # without --deidentify the plan names the files
