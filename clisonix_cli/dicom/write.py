"""Writing DICOM: a derived series from a volume, and a fast encoder for many similar files.

:func:`write_dicom_series` turns an ``(S, R, C)`` volume and its LPS affine into one file
per slice: ImageType DERIVED\\SECONDARY, geometry from the affine, UIDs derived from the
series UID (no randomness, no clock), an empty patient module, atomic writes.
:func:`write_derived` is ``--format dicom``: the series UID from the input series and the
pipeline (:func:`derived_series_uid`), the pipeline named in DerivationDescription, and a
4-D volume written as one series per volume.

:class:`SeriesEncoder` encodes the header elements that every file of a series shares once,
and per file only the few that change (UIDs, position, pixels): the bytes are exactly what
``pydicom.dcmwrite(..., enforce_file_format=True)`` writes, several times faster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from clisonix_cli import __version__
from clisonix_cli.dicom.implementation import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)
from clisonix_cli.errors import WriteFailedError
from clisonix_cli.fsio import atomic_write_bytes

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


# Acquisition keywords copied from ``meta`` into a derived series (DICOM units, as
# clisonix_cli.dicom.sidecar keeps them). Nothing that identifies the patient.
COPIED_KEYWORDS: tuple[str, ...] = (
    "BodyPartExamined",
    "ConvolutionKernel",
    "DerivationDescription",
    "EchoNumbers",
    "EchoTime",
    "FlipAngle",
    "InversionTime",
    "KVP",
    "MagneticFieldStrength",
    "Manufacturer",
    "ManufacturerModelName",
    "PatientPosition",
    "PixelBandwidth",
    "ProtocolName",
    "RepetitionTime",
    "RescaleType",
    "ScanningSequence",
    "SequenceName",
    "SequenceVariant",
    "SeriesDescription",
    "SeriesNumber",
    "StudyInstanceUID",
)

# The elements that differ between the files of one series (PS3.3 C.12.1, C.7.6.2).
PER_FILE_TAGS: tuple[int, ...] = (
    0x00080018,  # SOP Instance UID
    0x00200013,  # Instance Number
    0x00200032,  # Image Position (Patient)
    0x00201041,  # Slice Location
    0x7FE00010,  # Pixel Data
)


def derived_uid(*parts: object) -> str:
    """A stable UID ``2.25.<128-bit int of sha256(parts)>`` (PS3.5 B.2; at most 44 chars)."""
    key = "|".join(map(str, parts)).encode()
    return "2.25." + str(int.from_bytes(hashlib.sha256(key).digest()[:16], "big"))


def derived_series_uid(
    series_uid: str, stack_key: str, pipeline_sha256: str, *, volume: int | None = None
) -> str:
    """The SeriesInstanceUID of a derived series: stable for inputs + pipeline.

    ``2.25.<128-bit integer>`` from sha256 of the input series UID, the stack key and the
    pipeline hash (PS3.5 B.2: UUID-derived UIDs under the 2.25 root).

    Parameters
    ----------
    series_uid, stack_key : str
        The input series and its stack.
    pipeline_sha256 : str
    volume : int or None
        Index of the volume when a 4-D stack is written as one series per volume.

    Returns
    -------
    str
    """
    extra = () if volume is None else (f"volume-{volume}",)
    return derived_uid(
        "clisonix-derived", series_uid, stack_key, pipeline_sha256, *extra
    )


def derivation_description(
    pipeline: Sequence[Mapping[str, Any]], pipeline_sha256: str
) -> str:
    """(0008,2111) Derivation Description: the clisonix version, the ops and the pipeline
    hash (``conversion`` when there are no ops), cut to the 1024 characters of ST."""
    ops = ", ".join(str(op.get("name")) for op in pipeline) or "conversion"
    return f"clisonix {__version__}: {ops} (pipeline sha256 {pipeline_sha256})"[:1024]


def _encode_elements(ds: Dataset, encoding: str | list[str]) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds, parent_encoding=encoding)
    return bytes(fp.getvalue())


class SeriesEncoder:
    """Encode Part 10 files (explicit VR little endian, or encapsulated) of one series fast.

    pydicom's writer costs about 40 us per element, most of a file's encoding time; here
    the shared elements are encoded once, as runs between the per-file tags.

    Parameters
    ----------
    base : Dataset
        The elements shared by every file (no file meta). Elements whose tags are in
        ``per_file`` are ignored here and come from :meth:`encode`'s ``values``.
    per_file : sequence of int
        Tags that change from file to file (default :data:`PER_FILE_TAGS`).
    """

    def __init__(self, base: Dataset, per_file: Sequence[int] = PER_FILE_TAGS) -> None:
        self._per_file = sorted(int(Tag(t)) for t in per_file)
        runs: list[Dataset] = [Dataset() for _ in range(len(self._per_file) + 1)]
        for elem in base:
            tag = int(elem.tag)
            if tag not in self._per_file:
                runs[sum(1 for c in self._per_file if c < tag)].add(elem)
        charset = base.get("SpecificCharacterSet")
        # Text after the first run is encoded with the dataset's character set.
        self._encoding: str | list[str] = (
            "iso8859" if charset is None else [str(c) for c in np.atleast_1d(charset)]
        )
        self._runs = [_encode_elements(run, self._encoding) for run in runs]

    def encode(self, file_meta: FileMetaDataset, values: Dataset) -> bytes:
        """The bytes of one file: preamble, file meta, shared runs and ``values`` in tag order.

        Parameters
        ----------
        file_meta : FileMetaDataset
            Group 0x0002 (MediaStorageSOPInstanceUID, TransferSyntaxUID, ...).
        values : Dataset
            The per-file elements (any subset of the ``per_file`` tags).

        Returns
        -------
        bytes
            Identical to ``pydicom.dcmwrite(..., enforce_file_format=True)`` of the merged
            dataset.
        """
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = False
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, file_meta, enforce_standard=True)
        parts = [bytes(fp.getvalue())]
        for i, tag in enumerate(self._per_file):
            parts.append(self._runs[i])
            if tag in values:
                one = Dataset()
                one.add(values[tag])
                parts.append(_encode_elements(one, self._encoding))
        parts.append(self._runs[-1])
        return b"".join(parts)


def file_meta_for(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str
) -> FileMetaDataset:
    """Group 0x0002 with clisonix's fixed implementation identity."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


# --- derived series ----------------------------------------------------------------------


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters (PS3.5 6.2), deterministic."""
    text = str(format_number_as_ds(float(value)))
    return "0.0" if text == "-0.0" else text


def geometry_from_affine(
    affine_lps: np.ndarray, n_slices: int
) -> tuple[list[float], list[float], list[list[float]], float]:
    """DICOM geometry of an ``(S, R, C)`` volume from its index -> LPS affine.

    Returns
    -------
    iop : list of 6 float
        (0020,0037): direction of increasing column index, then of increasing row index.
    pixel_spacing : list of 2 float
        (0028,0030): spacing between rows, spacing between columns (PS3.3 C.7.6.2.1.1).
    ipps : list of S lists of 3 float
        (0020,0032) of each slice, in index order.
    slice_step : float
        Distance between consecutive slice origins (mm).

    Raises
    ------
    WriteFailedError
        A degenerate affine (zero spacing, parallel row and column directions).
    """
    a = np.asarray(affine_lps, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise WriteFailedError(
            f"affine_lps has shape {a.shape} or non-finite values, expected a finite 4x4 "
            "matrix - the volume's geometry was lost upstream"
        )
    slice_vec, row_vec, col_vec = a[:3, 0], a[:3, 1], a[:3, 2]
    d_row, d_col = float(np.linalg.norm(row_vec)), float(np.linalg.norm(col_vec))
    if d_row <= 0 or d_col <= 0:
        raise WriteFailedError(
            f"affine_lps gives row spacing {d_row} and column spacing {d_col} mm, "
            "expected both > 0 - the volume's geometry is degenerate"
        )
    along_row, along_col = col_vec / d_col, row_vec / d_row
    if float(np.linalg.norm(np.cross(along_row, along_col))) < 1e-6:
        raise WriteFailedError(
            "affine_lps has parallel row and column directions - the volume's geometry "
            "is degenerate"
        )
    iop = [float(v) for v in (*along_row, *along_col)]
    ipps = [[float(v) for v in a[:3, 3] + k * slice_vec] for k in range(n_slices)]
    return iop, [d_row, d_col], ipps, float(np.linalg.norm(slice_vec))


def _quantize(
    vol: np.ndarray, slope: float, intercept: float
) -> tuple[np.ndarray, float, float]:
    """Stored int16/uint16 values and the rescale that maps them back to real values."""
    if vol.dtype == np.bool_:
        return vol.astype(np.uint16), slope, intercept
    if vol.dtype.kind in "iu":
        lo, hi = (int(vol.min()), int(vol.max())) if vol.size else (0, 0)
        if -32768 <= lo and hi <= 32767:
            return vol.astype(np.int16), slope, intercept
        if 0 <= lo and hi <= 65535:
            return vol.astype(np.uint16), slope, intercept
    real = vol.astype(np.float64)  # in place from here: a volume can be large
    real *= float(slope)
    real += float(intercept)
    finite = np.isfinite(real)
    if not finite.all():
        raise WriteFailedError(
            f"volume has {int(np.count_nonzero(~finite))} NaN or infinite voxels, which "
            "DICOM integers cannot store - fix the pipeline or write NIfTI"
        )
    del finite
    lo_f, hi_f = (float(real.min()), float(real.max())) if real.size else (0.0, 0.0)
    if -32768 <= lo_f and hi_f <= 32767:
        rounded = np.rint(real)
        if np.array_equal(rounded, real):
            return rounded.astype(np.int16), 1.0, 0.0  # integral values: stored exactly
        del rounded
    # Spread [lo, hi] over [-32767, 32767]; parse the DS strings back so that the file's
    # own slope/intercept reproduce the values to within half a quantum.
    new_slope = float(_ds((hi_f - lo_f) / 65534.0)) if hi_f > lo_f else 1.0
    new_slope = new_slope if new_slope > 0 else 1.0
    new_intercept = float(_ds(lo_f + 32767.0 * new_slope))
    stored = real
    stored -= new_intercept
    stored /= new_slope
    np.rint(stored, out=stored)
    np.clip(stored, -32768, 32767, out=stored)
    return stored.astype(np.int16), new_slope, new_intercept


def write_dicom_series(
    out_dir: Path,
    vol: np.ndarray,
    affine_lps: np.ndarray,
    *,
    meta: Mapping[str, Any],
    series_uid: str,
    slope: float,
    intercept: float,
    deid: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a derived DICOM series, one file per slice, atomically.

    Parameters
    ----------
    out_dir : Path
        Folder for ``IM00001.dcm`` ... (created when missing).
    vol : (S, R, C) ndarray
        Integer stored values (kept as int16/uint16 when they fit) or real values of any
        dtype; real data is quantized to int16 with a computed slope/intercept.
    affine_lps : (4, 4) ndarray
        Voxel index ``(s, r, c, 1)`` -> patient LPS mm.
    meta : mapping
        Sidecar-safe acquisition fields; only :data:`COPIED_KEYWORDS` are used
        (``Modality`` picks the SOP class: CT, MR, else Secondary Capture).
    series_uid : str
        The new SeriesInstanceUID; every other UID is derived from it.
    slope, intercept : float
        Real value = ``vol * slope + intercept``.
    deid : mapping or None
        A de-identifying run's fields (``transform --deidentify``): ``pseudonym`` as
        PatientID and PatientName, the PS3.15 marking (``method``, ``codes``,
        ``temporal``) and the input's ``burned_in`` (YES, NO or empty). ``meta`` and
        ``series_uid`` are then already de-identified (new UIDs, no descriptions).
        Without it the series claims no de-identification.

    Returns
    -------
    list of Path
        The files written, in slice order.

    Raises
    ------
    WriteFailedError
        Not 3-D, degenerate geometry, NaN/inf voxels, or the folder cannot be written.
    """
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise WriteFailedError(
            f"volume has shape {vol.shape}, expected (slices, rows, cols) - write 4-D "
            "data one volume at a time"
        )
    n_slices, rows, cols = (int(n) for n in vol.shape)
    iop, spacing, ipps, step = geometry_from_affine(affine_lps, n_slices)
    if n_slices > 1 and not step > 0:
        raise WriteFailedError(
            "affine_lps gives a zero slice step for a volume of "
            f"{n_slices} slices - the volume's geometry is degenerate"
        )
    stored, slope_out, intercept_out = _quantize(vol, slope, intercept)
    modality = str(meta.get("Modality", "OT") or "OT")
    sop_class = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE}.get(
        modality, SECONDARY_CAPTURE_STORAGE
    )
    base = _derived_base(
        meta, series_uid, sop_class, modality, iop, spacing, step, stored, rows, cols
    )
    base.RescaleIntercept = _ds(intercept_out)
    base.RescaleSlope = _ds(slope_out)
    if deid is not None:
        _mark_deidentified(base, deid)
    encoder = SeriesEncoder(base)
    normal = np.cross(np.array(iop[:3]), np.array(iop[3:]))
    paths: list[Path] = []
    for k in range(n_slices):
        uid = derived_uid(series_uid, "instance", k)
        values = Dataset()
        values.SOPInstanceUID = uid
        values.InstanceNumber = k + 1
        values.ImagePositionPatient = [_ds(v) for v in ipps[k]]
        values.SliceLocation = _ds(float(np.dot(ipps[k], normal)))
        values.PixelData = (
            np.ascontiguousarray(stored[k])
            .astype(stored.dtype.newbyteorder("<"))
            .tobytes()
        )
        values["PixelData"].VR = "OW"
        data = encoder.encode(
            file_meta_for(sop_class, uid, ExplicitVRLittleEndian), values
        )
        path = Path(out_dir) / f"IM{k + 1:05d}.dcm"
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise WriteFailedError(
                f"{path.name}: cannot be written in {out_dir} ({exc.strerror}) - check "
                "free space and permissions"
            ) from None
        paths.append(path)
    return paths


def write_derived(
    out_dir: Path,
    data: np.ndarray,
    affine_lps: np.ndarray,
    *,
    slope: float,
    intercept: float,
    meta: Mapping[str, Any],
    series_uid: str,
    stack_key: str,
    pipeline: Sequence[Mapping[str, Any]],
    pipeline_sha256: str,
    deid: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write the derived series of a pipeline's output (``--format dicom``).

    Parameters
    ----------
    out_dir : Path
        Folder of the series; a 4-D volume gets one subfolder ``t0000``, ``t0001``, ...
        per volume.
    data : (S, R, C) or (T, S, R, C) ndarray
        Stored values, as :func:`write_dicom_series` takes each volume.
    affine_lps : (4, 4) ndarray
        Voxel index ``(s, r, c, 1)`` -> patient LPS mm.
    slope, intercept : float
        Real value = ``data * slope + intercept``.
    meta : mapping
        The input's acquisition fields (as :func:`write_dicom_series`); its
        DerivationDescription is replaced by :func:`derivation_description`.
    series_uid, stack_key : str
        The input series and stack, from which the new UIDs are derived
        (:func:`derived_series_uid`).
    pipeline : sequence of dict
        The pipeline's canonical form.
    pipeline_sha256 : str
    deid : mapping or None
        See :func:`write_dicom_series`.

    Returns
    -------
    list of Path
        The files written, series by series, in slice order.
    """
    fields = dict(meta)
    fields["DerivationDescription"] = derivation_description(pipeline, pipeline_sha256)
    if data.ndim == 3:
        return write_dicom_series(
            out_dir,
            data,
            affine_lps,
            meta=fields,
            series_uid=derived_series_uid(series_uid, stack_key, pipeline_sha256),
            slope=slope,
            intercept=intercept,
            deid=deid,
        )
    paths: list[Path] = []
    for t in range(data.shape[0]):
        paths += write_dicom_series(
            out_dir / f"t{t:04d}",
            data[t],
            affine_lps,
            meta=fields,
            series_uid=derived_series_uid(
                series_uid, stack_key, pipeline_sha256, volume=t
            ),
            slope=slope,
            intercept=intercept,
            deid=deid,
        )
    return paths


def _set_copied(ds: Dataset, meta: Mapping[str, Any]) -> None:
    for keyword in COPIED_KEYWORDS:
        value = meta.get(keyword)
        if value is None or value == "":
            continue
        if isinstance(value, float):
            value = _ds(value)
        elif isinstance(value, list | tuple):
            value = [_ds(v) if isinstance(v, float) else v for v in value]
        try:
            setattr(ds, keyword, value)
        except (TypeError, ValueError, OverflowError):
            continue  # a value this keyword's VR cannot hold is left out, not guessed


def _derived_base(
    meta: Mapping[str, Any],
    series_uid: str,
    sop_class: str,
    modality: str,
    iop: Iterable[float],
    spacing: Sequence[float],
    step: float,
    stored: np.ndarray,
    rows: int,
    cols: int,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.ReferringPhysicianName = ""
    ds.SoftwareVersions = f"clisonix {__version__}"
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = derived_uid(series_uid, "study")
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ""
    ds.SeriesNumber = None
    _set_copied(ds, meta)
    if sop_class == SECONDARY_CAPTURE_STORAGE:
        ds.ConversionType = "WSD"  # workstation (PS3.3 C.8.6.1)
    ds.SliceThickness = _ds(step)
    ds.SpacingBetweenSlices = _ds(step)
    ds.FrameOfReferenceUID = derived_uid(series_uid, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [_ds(v) for v in iop]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [_ds(spacing[0]), _ds(spacing[1])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    # BurnedInAnnotation is not claimed: the pixels are the input's, whose text (if any)
    # is not known here; a de-identifying run copies the input's value (_mark_deidentified).
    return ds


def _mark_deidentified(ds: Dataset, deid: Mapping[str, Any]) -> None:
    """Pseudonym, PS3.15 E.1.1 marking and the input's BurnedInAnnotation."""
    ds.PatientName = str(deid["pseudonym"])
    ds.PatientID = str(deid["pseudonym"])
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(deid["method"])
    items = []
    for code, meaning in deid["codes"]:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
            code,
            "DCM",
            meaning,
        )
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = str(deid["temporal"])
    if deid.get("burned_in") in ("YES", "NO"):
        ds.BurnedInAnnotation = deid["burned_in"]
