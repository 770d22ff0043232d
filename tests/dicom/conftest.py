"""Fixtures for the DICOM room: tiny hand-made DICOM files written with pydicom."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels_pydicom import (
    file_has_pixel_tag,
    first_line,
    transfer_syntax_of,
)
from clisonix_cli.dicom.syntax import NATIVE_SYNTAXES
from clisonix_cli.errors import (
    ClisonixError,
    InputError,
    NoPixelDataError,
    TruncatedFileError,
)

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


def read_pixel_info(path: Path) -> PixelInfo:
    """Read one file's pixel layout with pydicom (header only, Pixel Data not loaded).

    The index (``read_header``) builds the same record from its own header pass; this one
    is the reference the tests hold the fast pixel path to.

    Raises
    ------
    NoPixelDataError, InputError, TruncatedFileError
        As ``read_frames``.
    """
    from pydicom import dcmread

    name = str(path)
    try:
        ds = dcmread(path, defer_size=256, force=True)
        tag = next(
            (t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), None
        )  # Pixel Data, Float Pixel Data, Double Float Pixel Data
        ts = transfer_syntax_of(ds)
        if tag is None:
            if file_has_pixel_tag(path):
                raise TruncatedFileError(
                    f"{name}: the file ends inside its (7FE0,0010) 'Pixel Data' element "
                    "- the copy is truncated; re-export it"
                )
            raise NoPixelDataError(
                f"{name}: no (7FE0,0010) 'Pixel Data' - not an image"
            )
        raw = ds.get_item(tag, keep_deferred=True)
        native = ts in NATIVE_SYNTAXES and tag == 0x7FE00010
        offset = getattr(raw, "value_tell", None) if native else None
        length = getattr(raw, "length", None) if native else None
        return PixelInfo(
            transfer_syntax=ts,
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            n_frames=max(int(ds.get("NumberOfFrames", 1) or 1), 1),
            bits_allocated=int(ds.BitsAllocated),
            bits_stored=int(ds.get("BitsStored") or ds.BitsAllocated),
            pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
            samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
            photometric=str(ds.get("PhotometricInterpretation", "") or "").strip(),
            offset=None if offset is None else int(offset),
            length=None if length is None else int(length),
        )
    except ClisonixError:
        raise
    except EOFError:
        raise TruncatedFileError(
            f"{name}: file ends inside its header - the copy is truncated; re-export it"
        ) from None
    except Exception as exc:
        raise InputError(
            f"{name}: pixel layout cannot be read ({type(exc).__name__}: "
            f"{first_line(exc)}) - the header is corrupt"
        ) from None


@pytest.fixture
def pixel_info() -> Callable[[Path], PixelInfo]:
    """The :func:`read_pixel_info` helper."""
    return read_pixel_info
