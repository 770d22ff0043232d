"""Acquisition fields that are safe to write into a sidecar, manifest or log.

An allow-list, never a deny-list: only the keywords in :data:`SAFE_FIELDS` ever leave the
index. Patient identifiers (name, ID, birth date, other IDs, address), accession numbers and
institution or physician names are not even read by the index; :data:`FORBIDDEN` lists them so
that tests can assert they never appear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FORBIDDEN", "SAFE_FIELDS", "sidecar_meta"]

# Keyword -> DICOM unit note (documented in docs/scan.md; values keep DICOM units).
SAFE_FIELDS: dict[str, str] = {
    "BodyPartExamined": "",
    "BurnedInAnnotation": "",
    "CTDIvol": "mGy",
    "DoseSummationType": "",
    "DoseType": "",
    "DoseUnits": "",
    "ConvolutionKernel": "",
    "EchoNumbers": "",
    "EchoTime": "ms",
    "Exposure": "mAs",
    "ExposureTime": "ms",
    "FlipAngle": "degrees",
    "ImageType": "",
    "ImagerPixelSpacing": "mm",
    "InversionTime": "ms",
    "KVP": "kV",
    "MagneticFieldStrength": "T",
    "Manufacturer": "",
    "ManufacturerModelName": "",
    "Modality": "",
    "PatientPosition": "",
    "PixelBandwidth": "Hz/pixel",
    "ProtocolName": "",
    "ReconstructionDiameter": "mm",
    "RepetitionTime": "ms",
    "RescaleType": "",
    "ScanningSequence": "",
    "SequenceName": "",
    "SequenceVariant": "",
    "SeriesDescription": "",
    "SeriesInstanceUID": "",
    "SeriesNumber": "",
    "SliceThickness": "mm",
    "SoftwareVersions": "",
    "SpacingBetweenSlices": "mm",
    "StudyInstanceUID": "",
    "XRayTubeCurrent": "mA",
}

FORBIDDEN: frozenset[str] = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "PatientAge",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientMotherBirthName",
        "AccessionNumber",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy",
        "OperatorsName",
        "StudyID",
        "StudyDate",
        "SeriesDate",
        "AcquisitionDate",
        "ContentDate",
        "StationName",
        "DeviceSerialNumber",
    }
)


def sidecar_meta(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the sidecar-safe fields of a header, as JSON-ready values.

    Parameters
    ----------
    values : mapping
        Header values by DICOM keyword (as read by the index).

    Returns
    -------
    dict
        The :data:`SAFE_FIELDS` present, sorted by keyword; tuples become lists.
    """
    out: dict[str, Any] = {}
    for key in sorted(SAFE_FIELDS):
        if key in FORBIDDEN:  # defensive: the two sets must never meet
            continue
        val = values.get(key)
        if val is None or val == "":
            continue
        out[key] = list(val) if isinstance(val, tuple) else val
    return out
