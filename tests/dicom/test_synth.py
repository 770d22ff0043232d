"""Synthetic studies: deterministic bytes, realistic headers, pixels that match the geometry."""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID
from typer.testing import CliRunner

from clisonix_cli.cli.app import app
from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.dicom.synth import (
    ct_phantom_hu,
    plan,
    sha256sums,
    synth_uid,
    synthesize,
)
from clisonix_cli.errors import UsageError
from clisonix_cli.fsio import sha256_file

PixelInfoOf = Callable[[Path], PixelInfo]

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "patients": 1,
    "series": 3,
    "slices": 4,
    "rows": 24,
    "cols": 20,
    "modality": "mixed",
    "syntax": "mixed",
}


def _sums(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", seed=5, **SMALL)  # type: ignore[arg-type]
    b = synthesize(tmp_path / "b", seed=5, **SMALL)  # type: ignore[arg-type]
    assert [p.relative_to(tmp_path / "a") for p in a] == [
        p.relative_to(tmp_path / "b") for p in b
    ]
    assert _sums(tmp_path / "a") == _sums(tmp_path / "b")
    assert (
        len(_sums(tmp_path / "a")) == 12
    )  # nothing but the DICOM files (no temp files)
    c = synthesize(tmp_path / "c", seed=6, **SMALL)  # type: ignore[arg-type]
    assert set(_sums(tmp_path / "c").values()).isdisjoint(
        _sums(tmp_path / "a").values()
    )
    assert len(c) == len(a)


def test_parallel_jobs_give_the_same_bytes(tmp_path: Path) -> None:
    synthesize(tmp_path / "one", seed=1, **SMALL)  # type: ignore[arg-type]
    synthesize(tmp_path / "two", seed=1, jobs=2, **SMALL)  # type: ignore[arg-type]
    assert _sums(tmp_path / "one") == _sums(tmp_path / "two")


def test_headers_look_like_a_pacs_export(synth_study: Path) -> None:
    files = sorted(synth_study.rglob("*.dcm"))
    assert len(files) == 2 * 3 * 8
    studies, series, sops = set(), set(), set()
    for path in files:
        ds = pydicom.dcmread(path)
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert UID(uid).is_valid and uid.startswith("2.25.") and len(uid) <= 64
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}[ds.Modality]  # fmt: skip
        assert re.fullmatch(r"SYNTH\^P\d{3}", str(ds.PatientName))
        assert re.fullmatch(r"\d{8}", ds.StudyDate) and ds.StudyDate == ds.SeriesDate
        assert ds.InstanceNumber == int(path.stem[2:])
        assert str(ds.PatientName) not in str(path) and ds.PatientID not in str(path)
        assert "^" not in str(path.relative_to(synth_study))
        if ds.Modality == "CT":
            assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
            assert ds.PixelRepresentation == 1 and ds.BitsStored == 16
        else:
            assert ds.PixelRepresentation == 0 and ds.BitsStored == 12
        studies.add(ds.StudyInstanceUID)
        series.add(ds.SeriesInstanceUID)
        sops.add(ds.SOPInstanceUID)
    assert (len(studies), len(series), len(sops)) == (2, 6, len(files))


def _geometry(
    files: list[Path],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    dss = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    ipps = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in dss])
    d_row, d_col = (float(v) for v in dss[0].PixelSpacing)
    for ds in dss:
        assert [float(v) for v in ds.ImageOrientationPatient] == list(iop)
    return iop[:3], iop[3:], ipps, d_row, d_col


@pytest.mark.parametrize("series", ["SER01", "SER02", "SER03"])
def test_geometry_is_consistent(synth_study: Path, series: str) -> None:
    files = sorted((synth_study / "PAT000" / "STU00" / series).glob("*.dcm"))
    along_row, along_col, ipps, _, _ = _geometry(files)
    assert abs(np.linalg.norm(along_row) - 1) < 1e-5
    assert abs(np.linalg.norm(along_col) - 1) < 1e-5
    assert abs(np.dot(along_row, along_col)) < 1e-5
    normal = np.cross(along_row, along_col)
    steps = np.diff(ipps, axis=0)
    thickness = float(pydicom.dcmread(files[0]).SliceThickness)
    for (
        step
    ) in steps:  # each slice one thickness further along the normal, no in-plane drift
        assert abs(abs(np.dot(step, normal)) - thickness) < 1e-3
        assert np.linalg.norm(step - np.dot(step, normal) * normal) < 1e-3
    if series == "SER02":  # oblique: no IOP component is 0 or 1 on both vectors
        assert np.count_nonzero(np.abs(normal) > 0.1) >= 2


@pytest.mark.parametrize("series", ["SER01", "SER03"])
def test_ct_pixels_are_the_phantom_at_the_header_geometry(
    synth_study: Path, series: str
) -> None:
    """Recompute the phantom at the positions the headers describe: only noise remains."""
    files = sorted((synth_study / "PAT001" / "STU00" / series).glob("*.dcm"))
    along_row, along_col, ipps, d_row, d_col = _geometry(files)
    rows, cols = 32, 32
    r = np.arange(rows)[:, None, None] * d_row * along_col
    c = np.arange(cols)[None, :, None] * d_col * along_row
    for path, ipp in zip(files, ipps, strict=True):
        pos = (ipp + r + c).astype(np.float32)
        expect = ct_phantom_hu(pos[..., 0], pos[..., 1], pos[..., 2])
        got = read_frames(path)[0].astype(np.float32) - 1024.0
        diff = got - expect
        inside = np.abs(diff) < 50  # noise sigma is 10 HU
        assert inside.mean() > 0.97, (path.name, float(inside.mean()))
        assert abs(float(diff[inside].mean())) < 5
    assert (got < -900).any() and (got > 600).any()  # air and bone in the last slice


def test_rle_and_j2k_hold_the_same_pixels_as_explicit(tmp_path: Path) -> None:
    args = {
        "patients": 1,
        "series": 2,
        "slices": 3,
        "rows": 32,
        "cols": 32,
        "modality": "mixed",
    }
    ref = synthesize(tmp_path / "explicit", **args)  # type: ignore[arg-type]
    for syntax, ts in (
        ("rle", "1.2.840.10008.1.2.5"),
        ("j2k", "1.2.840.10008.1.2.4.90"),
    ):
        got = synthesize(tmp_path / syntax, syntax=syntax, **args)  # type: ignore[arg-type]
        for a, b in zip(ref, got, strict=True):
            assert pydicom.dcmread(b).file_meta.TransferSyntaxUID == ts
            np.testing.assert_array_equal(read_frames(a), read_frames(b))


def test_fast_path_and_pydicom_agree_on_synth_files(
    synth_study: Path, pixel_info: PixelInfoOf
) -> None:
    for path in sorted(synth_study.rglob("IM00002.dcm")):
        layout = pixel_info(path)
        ref = pydicom.dcmread(path).pixel_array
        np.testing.assert_array_equal(read_frames(path)[0], ref)
        if layout.offset is not None:
            np.testing.assert_array_equal(read_frames(path, info=layout)[0], ref)


def test_encoded_bytes_equal_pydicoms_own_writer(synth_study: Path) -> None:
    for path in sorted(synth_study.rglob("IM00001.dcm")):
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, pydicom.dcmread(path), enforce_file_format=True)
        assert buf.getvalue() == path.read_bytes(), path


def test_plan_and_uids() -> None:
    plans = plan(patients=1, series=3, modality="mixed", syntax="mixed")
    assert [(p.modality, p.orientation, p.syntax) for p in plans] == [
        ("CT", "axial", "explicit"),
        ("MR", "oblique", "rle"),
        ("CT", "coronal", "explicit"),
    ]
    assert synth_uid(0, "x") == synth_uid(0, "x") != synth_uid(1, "x")
    for bad in (
        {"modality": "PET"},
        {"syntax": "jpeg"},
        {"rows": 2},
        {"patients": 0},
        {"syntax": "j2k", "rows": 16},
    ):
        with pytest.raises(UsageError):
            plan(**bad)  # type: ignore[arg-type]


def _documented_command() -> list[str]:
    doc = (ROOT / "docs" / "synth.md").read_text(encoding="utf-8")
    lines = [
        line
        for line in doc.splitlines()
        if line.startswith("clisonix synth sample_data")
    ]
    assert len(lines) == 1, "docs/synth.md must hold exactly one sample_data command"
    return shlex.split(lines[0])[1:]


def test_sample_data_rebuilds_exactly(tmp_path: Path) -> None:
    """The committed sample_data is what the documented command writes, byte for byte."""
    args = _documented_command()
    assert args[1] == "sample_data" and "--sha256sums" in args
    out = tmp_path / "sample_data"
    result = CliRunner().invoke(app, [args[0], str(out), *args[2:]])
    assert result.exit_code == 0, result.output
    committed = (ROOT / "sample_data" / "SHA256SUMS").read_text(encoding="ascii")
    assert (out / "SHA256SUMS").read_text(encoding="ascii") == committed
    dicom = sorted((ROOT / "sample_data").rglob("*.dcm"))
    assert sha256sums(ROOT / "sample_data", dicom) == committed  # nobody edited a file
    assert sum(p.stat().st_size for p in dicom) < 3 * 2**20
