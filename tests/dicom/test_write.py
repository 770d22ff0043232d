"""Derived DICOM series: geometry and values round-trip through pydicom, bytes are stable."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.dicom.write import (
    derived_uid,
    geometry_from_affine,
    write_dicom_series,
)
from clisonix_cli.errors import WriteFailedError
from clisonix_cli.fsio import sha256_file

SERIES_UID = derived_uid("test-series")
PixelInfoOf = Callable[[Path], PixelInfo]

META = {
    "Modality": "CT",
    "SeriesDescription": "clisonix window",
    "SeriesNumber": 1001,
    "KVP": 120.0,
    "StudyInstanceUID": "1.2.3.4",
    "PatientName": "MUST^NOT^APPEAR",  # not in the copied keywords: ignored
    "RescaleType": "HU",
}


def _oblique_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """(s, r, c) -> LPS with a rotated frame and a non-trivial origin."""
    a, b = np.radians(17.0), np.radians(-8.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    rot = rz @ rx
    along_row, along_col = rot[:, 0], rot[:, 1]
    normal = np.cross(along_row, along_col)
    aff = np.eye(4)
    aff[:3, 0] = normal * spacing[0]
    aff[:3, 1] = along_col * spacing[1]
    aff[:3, 2] = along_row * spacing[2]
    aff[:3, 3] = [-101.25, 37.5, -412.125]
    return aff


def _read_back(
    paths: list[Path],
) -> tuple[np.ndarray, np.ndarray, list[pydicom.Dataset]]:
    dss = [pydicom.dcmread(p) for p in paths]
    real = np.stack(
        [
            ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            for ds in dss
        ]
    )
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    d_row, d_col = (float(v) for v in dss[0].PixelSpacing)
    ipp0 = np.array([float(v) for v in dss[0].ImagePositionPatient])
    step = np.array([float(v) for v in dss[1].ImagePositionPatient]) - ipp0
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = (
        step,
        iop[3:] * d_row,
        iop[:3] * d_col,
        ipp0,
    )
    return real, aff, dss


def test_int16_volume_round_trips(tmp_path: Path, pixel_info: PixelInfoOf) -> None:
    rng = np.random.default_rng(0)
    vol = rng.integers(-1024, 3000, size=(5, 12, 9), dtype=np.int16)
    aff = _oblique_affine((2.5, 0.7, 0.9))
    paths = write_dicom_series(
        tmp_path / "d",
        vol,
        aff,
        meta=META,
        series_uid=SERIES_UID,
        slope=1.0,
        intercept=-1024.0,
    )
    assert [p.name for p in paths] == [f"IM{k:05d}.dcm" for k in range(1, 6)]
    real, aff_back, dss = _read_back(paths)
    np.testing.assert_array_equal(real, vol.astype(np.float64) - 1024.0)
    np.testing.assert_allclose(aff_back, aff, atol=1e-6)
    ds = dss[0]
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert ds.SeriesInstanceUID == SERIES_UID and ds.StudyInstanceUID == "1.2.3.4"
    assert ds.SeriesDescription == "clisonix window" and ds.SeriesNumber == 1001
    assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""
    assert "StudyDate" in ds and ds.StudyDate == "" and "ContentTime" not in ds
    assert b"MUST^NOT^APPEAR" not in paths[0].read_bytes()
    assert len({d.SOPInstanceUID for d in dss}) == 5
    assert [d.InstanceNumber for d in dss] == [1, 2, 3, 4, 5]
    assert float(ds.SliceThickness) == pytest.approx(2.5)
    # clisonix's own reader: the fast path and pydicom agree with what was written
    for k, p in enumerate(paths):
        np.testing.assert_array_equal(read_frames(p, info=pixel_info(p))[0], vol[k])


def test_float_volume_is_quantized_within_half_a_quantum(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vol = (rng.standard_normal((4, 10, 11)) * 0.3 + 0.5).astype(np.float32)
    aff = _oblique_affine((1.25, 0.5, 0.5))
    paths = write_dicom_series(
        tmp_path,
        vol,
        aff,
        meta={"Modality": "MR"},
        series_uid=SERIES_UID,
        slope=1.0,
        intercept=0.0,
    )
    real, aff_back, dss = _read_back(paths)
    slope = float(dss[0].RescaleSlope)
    span = float(vol.max() - vol.min())
    assert 0 < slope <= span / 60000  # uses (almost) the whole int16 range
    assert np.max(np.abs(real - vol.astype(np.float64))) <= slope / 2 * 1.0001
    assert dss[0].SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert dss[0].PixelRepresentation == 1
    np.testing.assert_allclose(aff_back, aff, atol=1e-6)


def test_pending_rescale_is_applied_for_real_data(tmp_path: Path) -> None:
    vol = np.linspace(0, 1, 2 * 4 * 4, dtype=np.float64).reshape(2, 4, 4)
    paths = write_dicom_series(
        tmp_path, vol, np.diag([3.0, 1.0, 1.0, 1.0]), meta={}, series_uid=SERIES_UID,
        slope=2000.0, intercept=-1000.0,
    )  # fmt: skip
    real, _, dss = _read_back(paths)
    assert np.max(np.abs(real - (vol * 2000.0 - 1000.0))) <= float(dss[0].RescaleSlope)
    assert dss[0].Modality == "OT" and dss[0].SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"


def test_integral_floats_and_uint16_are_stored_exactly(tmp_path: Path) -> None:
    hu = np.array([[[-1000.0, 0.0], [40.0, 3071.0]]])
    paths = write_dicom_series(
        tmp_path / "a",
        hu,
        np.eye(4),
        meta={},
        series_uid=SERIES_UID,
        slope=1.0,
        intercept=0.0,
    )
    ds = pydicom.dcmread(paths[0])
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
    np.testing.assert_array_equal(ds.pixel_array, hu[0])
    mr = np.array([[[0, 65535], [4095, 12]]], dtype=np.uint16)
    paths = write_dicom_series(
        tmp_path / "b",
        mr,
        np.eye(4),
        meta={},
        series_uid=SERIES_UID,
        slope=1.0,
        intercept=0.0,
    )
    ds = pydicom.dcmread(paths[0])
    assert ds.PixelRepresentation == 0
    np.testing.assert_array_equal(ds.pixel_array, mr[0])


def test_same_inputs_same_bytes_and_pydicom_encoding(tmp_path: Path) -> None:
    vol = np.arange(3 * 6 * 5, dtype=np.int16).reshape(3, 6, 5)
    aff = _oblique_affine((3.0, 1.1, 0.9))
    kw = {"meta": META, "series_uid": SERIES_UID, "slope": 1.0, "intercept": 0.0}
    a = write_dicom_series(tmp_path / "a", vol, aff, **kw)  # type: ignore[arg-type]
    b = write_dicom_series(tmp_path / "b", vol, aff, **kw)  # type: ignore[arg-type]
    assert [sha256_file(p) for p in a] == [sha256_file(p) for p in b]
    other = write_dicom_series(
        tmp_path / "c",
        vol,
        aff,
        meta=META,
        series_uid=derived_uid("x"),
        slope=1.0,
        intercept=0.0,
    )
    assert sha256_file(other[0]) != sha256_file(a[0])
    for p in a:  # the fast encoder writes exactly what pydicom's writer writes
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, pydicom.dcmread(p), enforce_file_format=True)
        assert buf.getvalue() == p.read_bytes()
    assert sorted(x.name for x in (tmp_path / "a").iterdir()) == [p.name for p in a]


@pytest.mark.parametrize(
    ("vol", "aff", "words"),
    [
        (np.zeros((2, 3)), np.eye(4), "shape"),
        (np.zeros((2, 3, 3)), np.diag([0.0, 1.0, 1.0, 1.0]), "zero slice step"),
        (np.zeros((2, 3, 3)), np.diag([1.0, 0.0, 1.0, 1.0]), "spacing"),
        (np.full((2, 3, 3), np.nan), np.eye(4), "NaN"),
        (np.zeros((2, 3, 3)), np.full((4, 4), np.inf), "non-finite"),
    ],
)
def test_bad_inputs_fail_with_a_code(
    tmp_path: Path, vol: np.ndarray, aff: np.ndarray, words: str
) -> None:
    with pytest.raises(WriteFailedError) as info:
        write_dicom_series(
            tmp_path, vol, aff, meta={}, series_uid=SERIES_UID, slope=1.0, intercept=0.0
        )
    assert info.value.code == "CLX-E140" and words in info.value.message
    assert not any(tmp_path.iterdir())


def test_geometry_from_affine_follows_ps3_3() -> None:
    aff = np.array(
        [
            [0.0, 0.0, 0.8, -10.0],
            [0.0, 0.6, 0.0, 20.0],
            [2.0, 0.0, 0.0, 30.0],
            [0, 0, 0, 1],
        ]
    )
    iop, spacing, ipps, step = geometry_from_affine(aff, 3)
    assert iop == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # along a row (columns) first
    assert spacing == [0.6, 0.8]  # between rows, between columns
    assert ipps[2] == [-10.0, 20.0, 34.0] and step == 2.0
