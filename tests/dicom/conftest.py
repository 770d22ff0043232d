"""Fixtures for the DICOM room: tiny hand-made DICOM files written with pydicom."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Recognisable identifiers: tests assert they never reach any output.
PATIENT_NAME = "ZZSECRET^PATIENTNAME"
PATIENT_ID = "ZZSECRETID-4711"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SERIES_UID = "1.2.826.0.1.3680043.8.498.2"

MakeSlice = Callable[..., Path]


def write_slice(
    path: Path,
    *,
    ipp: Sequence[float],
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    spacing: Sequence[float] = (1.0, 1.0),
    rows: int = 4,
    cols: int = 6,
    instance: int = 1,
    sop_uid: str | None = None,
    series_uid: str = SERIES_UID,
    study_uid: str = STUDY_UID,
    series_number: int = 3,
    echo: int | None = None,
    echo_time: float | None = None,
    acquisition: int | None = None,
    acquisition_time: str | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    slope: float | None = None,
    intercept: float | None = None,
    pixels: np.ndarray | None = None,
    fill: int = 0,
    implicit: bool = False,
    modality: str = "CT",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write one single-frame greyscale slice (int16) and return its path.

    Pixel (r, c) holds ``fill + 100 * r + c`` unless ``pixels`` is given, so that tests can
    tell rows, columns and slices apart after loading.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    digest = int(hashlib.sha256(str(path).encode()).hexdigest()[:12], 16)
    sop = sop_uid or f"1.2.826.0.1.3680043.8.498.9.{digest}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    )
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = sop
    ds.ImageType = list(image_type)
    ds.Modality = modality
    ds.Manufacturer = "TESTVENDOR"
    ds.InstitutionName = "ZZSECRET HOSPITAL"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19010101"
    ds.SeriesDescription = "test series"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = 1.0
    if echo is not None:
        ds.EchoNumbers = echo
    if echo_time is not None:
        ds.EchoTime = echo_time
    if acquisition is not None:
        ds.AcquisitionNumber = acquisition
    if acquisition_time is not None:
        ds.AcquisitionTime = acquisition_time
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    if pixels is None:
        pixels = fill + 100 * np.arange(rows)[:, None] + np.arange(cols)[None, :]
    arr = np.asarray(pixels, dtype=np.int16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return path


@pytest.fixture
def make_slice() -> MakeSlice:
    """The :func:`write_slice` helper."""
    return write_slice


@pytest.fixture
def oblique_iop() -> tuple[float, ...]:
    """A double-oblique orientation (rotations about two axes), rows and columns unit."""
    a, b = np.radians(20.0), np.radians(-35.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rx @ rz
    row_dir, col_dir = rot[:, 0], rot[:, 1]
    return tuple(round(float(v), 8) for v in (*row_dir, *col_dir))
