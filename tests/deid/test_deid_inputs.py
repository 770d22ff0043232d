"""Bad input has a defined, documented result: keys, malformed values, damaged files,
policies (burned-in text, documents), the PHI guard."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from typer.testing import CliRunner, Result

from clisonix_cli.cli.app import app

from .conftest import KEY, dicom_files, expected_offset, expected_uid, invoke, shifted

CT = "1.2.840.10008.5.1.4.1.1.2"


def make_object(path: Path, **values: Any) -> Path:
    """A small CT image; ``values`` override or add attributes (None removes one)."""
    ds = pydicom.Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = values.pop("SOPInstanceUID", "1.2.826.0.1.3680043.9.1.1")
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.1.2"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.9.1.3"
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "MRN123456"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = ds.SeriesDate = "20200315"
    ds.StudyTime = "101010"
    ds.Modality = "CT"
    ds.AccessionNumber = "ACC987654"
    ds.Manufacturer = "ACME"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(64, dtype="<u2").tobytes()
    for key, value in values.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _run(in_dir: Path, out: Path, key_file: Path, *extra: str) -> Result:
    return invoke(
        [
            "deid",
            str(in_dir),
            str(out),
            "--key-file",
            str(key_file),
            "--jobs",
            "1",
            *extra,
        ]
    )


def _released(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in dicom_files(out)]


# --- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        (None, 0o600, "cannot be read"),
        (b"", 0o600, "is empty"),
        (b"short-key", 0o600, "at least 32"),
        (KEY, 0o644, "other users can read it"),
    ],
)
def test_bad_key_files_exit_2_before_anything_is_written(
    tmp_path: Path, content: bytes | None, mode: int, words: str
) -> None:
    key = tmp_path / "k"
    if content is not None:
        key.write_bytes(content)
        key.chmod(mode)
    (tmp_path / "in").mkdir()
    result = invoke(
        ["deid", str(tmp_path / "in"), str(tmp_path / "out"), "--key-file", str(key)]
    )
    assert (
        result.exit_code == 2 and "CLX-E190" in result.stderr and words in result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_no_key_no_run(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = invoke(["deid", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "CLX-E190" in result.stderr


def test_new_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key = tmp_path / "new.key"
    first = invoke(["deid", "--new-key", str(key)])
    assert first.exit_code == 0, first.stderr
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes().strip()) == 64
    before = key.read_bytes()
    second = invoke(["deid", "--new-key", str(key)])
    assert (
        second.exit_code == 2
        and "CLX-E190" in second.stderr
        and key.read_bytes() == before
    )


def test_key_from_environment(tmp_path: Path, key_file: Path) -> None:
    make_object(tmp_path / "in" / "a.dcm")
    result = CliRunner().invoke(
        app, ["deid", str(tmp_path / "in"), str(tmp_path / "out")],
        env={"CLISONIX_DEID_KEY_FILE": str(key_file)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(dicom_files(tmp_path / "out")) == 1


@pytest.mark.parametrize("where", ["out", "in"])
def test_mapping_inside_out_or_in_dir_is_refused(
    tmp_path: Path, key_file: Path, where: str
) -> None:
    make_object(tmp_path / "in" / "a.dcm")
    mapping = tmp_path / where / "map.jsonl"
    result = _run(
        tmp_path / "in", tmp_path / "out", key_file, "--mapping", str(mapping)
    )
    assert result.exit_code == 2 and "CLX-E192" in result.stderr
    assert not mapping.exists()


def test_unknown_or_contradictory_options_exit_2(
    tmp_path: Path, key_file: Path
) -> None:
    (tmp_path / "in").mkdir()
    for opts in (
        ["--option", "nope"],
        ["--option", "full-dates", "--option", "modified-dates"],
    ):
        result = _run(tmp_path / "in", tmp_path / "out", key_file, *opts)
        assert result.exit_code == 2 and "CLX-E191" in result.stderr


# --- malformed values ---------------------------------------------------------------------


def test_malformed_dates_are_emptied_and_acr_dates_shifted(
    tmp_path: Path, key_file: Path
) -> None:
    make_object(
        tmp_path / "in" / "a.dcm",
        StudyDate="2020-13-45", SeriesDate="2020.03.15", ContentDate="garbage!",
        AcquisitionDateTime="2020",
    )  # fmt: skip
    result = _run(tmp_path / "in", tmp_path / "out", key_file)
    assert result.exit_code == 0, result.stderr
    (ds,) = _released(tmp_path / "out")
    assert ds.StudyDate == "" and ds.ContentDate == "" and ds.AcquisitionDateTime == ""
    assert ds.SeriesDate == shifted("20200315", expected_offset("MRN123456"))


def test_invalid_uid_characters_become_valid_uids(
    tmp_path: Path, key_file: Path
) -> None:
    bad = "1.2.3.abc.4 "
    make_object(
        tmp_path / "in" / "a.dcm", SeriesInstanceUID=bad, FrameOfReferenceUID="x"
    )
    result = _run(tmp_path / "in", tmp_path / "out", key_file)
    assert result.exit_code == 0, result.stderr
    (ds,) = _released(tmp_path / "out")
    assert ds.SeriesInstanceUID == expected_uid(bad.strip())
    assert ds.FrameOfReferenceUID == expected_uid("x")
    assert all(
        c in "0123456789." for c in ds.SeriesInstanceUID + ds.FrameOfReferenceUID
    )


def test_empty_patient_id_in_some_files_of_a_study(
    tmp_path: Path, key_file: Path
) -> None:
    """The study's patient is its most common non-empty PatientID: every file gets its
    pseudonym and date offset."""
    for k, pid in enumerate(["MRN123456", "", "MRN123456", ""]):
        make_object(
            tmp_path / "in" / f"{k}.dcm",
            SOPInstanceUID=f"1.2.826.0.1.3680043.9.1.1.{k}",
            PatientID=pid,
        )
    result = _run(tmp_path / "in", tmp_path / "out", key_file)
    assert result.exit_code == 0, result.stderr
    out = _released(tmp_path / "out")
    assert len(out) == 4 and len({ds.PatientID for ds in out}) == 1
    assert {ds.SeriesDate for ds in out} == {
        shifted("20200315", expected_offset("MRN123456"))
    }


def test_truncated_file_is_reported_damaged_and_the_batch_goes_on(
    tmp_path: Path, key_file: Path
) -> None:
    make_object(tmp_path / "in" / "good.dcm")
    bad = make_object(
        tmp_path / "in" / "bad.dcm", SOPInstanceUID="1.2.826.0.1.3680043.9.1.9"
    )
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 50])  # inside the pixel data
    (tmp_path / "in" / "notes.txt").write_text("not dicom")
    result = _run(tmp_path / "in", tmp_path / "out", key_file, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["counts"]["written"] == 1 and doc["counts"]["not_dicom"] == 1
    assert doc["counts"]["failed_files"] + doc["counts"]["damaged"] == 1
    assert "bad.dcm" not in result.stdout + result.stderr
    assert len(dicom_files(tmp_path / "out")) in (
        0,
        1,
    )  # a failed task releases nothing


def test_missing_uids_are_withheld(tmp_path: Path, key_file: Path) -> None:
    make_object(tmp_path / "in" / "a.dcm", SeriesInstanceUID=None)
    result = _run(tmp_path / "in", tmp_path / "out", key_file, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["counts"]["withheld"] == 1
    assert dicom_files(tmp_path / "out") == []


# --- burned-in text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "released"),
    [
        ({"BurnedInAnnotation": "YES"}, False),
        ({"Modality": "US"}, False),
        ({"Modality": "OT", "BurnedInAnnotation": "NO"}, True),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "CT"}, False),
        ({"BurnedInAnnotation": "NO"}, True),
    ],
)
def test_burned_in_policy(
    tmp_path: Path, key_file: Path, values: dict[str, str], released: bool
) -> None:
    make_object(tmp_path / "in" / "a.dcm", **values)
    result = _run(tmp_path / "in", tmp_path / "out", key_file)
    assert result.exit_code == 0, result.stderr
    assert bool(dicom_files(tmp_path / "out")) == released
    records = [
        json.loads(x)
        for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    (entry,) = records[0]["inputs"]
    assert entry["status"] == ("written" if released else "withheld")
    if not released:
        assert entry["code"] == "CLX-E197"
        allowed = _run(
            tmp_path / "in", tmp_path / "out2", key_file, "--allow-burned-in"
        )
        assert allowed.exit_code == 0
        (ds,) = _released(tmp_path / "out2")
        assert ds.get("BurnedInAnnotation", "") == values.get("BurnedInAnnotation", "")


# --- the PHI guard ------------------------------------------------------------------------


def test_guard_withholds_a_name_left_in_a_kept_attribute(
    tmp_path: Path, key_file: Path
) -> None:
    make_object(tmp_path / "in" / "a.dcm", ManufacturerModelName="DOE SCANNER 3000")
    result = _run(tmp_path / "in", tmp_path / "out", key_file, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["tasks"][0]["error"]["code"] == "CLX-E195"
    assert dicom_files(tmp_path / "out") == []
    assert "DOE" not in result.stdout + result.stderr
    assert "DOE" not in (tmp_path / "out" / "manifest.jsonl").read_text()


def test_in_dir_is_never_modified(tmp_path: Path, key_file: Path) -> None:
    src = make_object(tmp_path / "in" / "a.dcm")
    before = (src.read_bytes(), os.stat(src).st_mtime_ns)
    assert _run(tmp_path / "in", tmp_path / "out", key_file).exit_code == 0
    assert (src.read_bytes(), os.stat(src).st_mtime_ns) == before
