"""What the header index reads from one file, and what its two readers share.

:func:`clisonix_cli.dicom.index.read_header` reads a file with the fast reader
(:mod:`clisonix_cli.dicom.header_fast`) or, for what that one leaves, with pydicom
(:mod:`clisonix_cli.dicom.header_pydicom`). Both fill the same :class:`FileHeader`: the
values of the :data:`WANTED` tags, and where the pixel bytes lie
(:class:`~clisonix_cli.dicom.model.PixelInfo`), so that conversion reads the pixels straight
from the file without a second header parse.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from typing import Any

from clisonix_cli.dicom.limits import (
    check_bit_depth,
    check_native_length,
    claimed_bytes,
)
from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.syntax import NATIVE_SYNTAXES
from clisonix_cli.errors import PixelDataSizeError, TruncatedFileError

__all__ = [
    "CSA_CREATOR",
    "FLAG_SEQUENCES",
    "FLOAT_LISTS",
    "INT_LISTS",
    "KEYWORDS",
    "MULTI_VALUED",
    "NM_VECTORS",
    "UNDEFINED_LENGTH",
    "VR_OF",
    "WANTED",
    "Fallback",
    "FileHeader",
    "HeaderFailure",
    "NotDicom",
    "Walk",
    "checked_pixel_info",
    "csa_fields",
]

UNDEFINED_LENGTH = 0xFFFFFFFF

# The only tags the index keeps: (keyword, VR). No patient identifiers are ever read.
WANTED: dict[int, tuple[str, str]] = {
    0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080032: ("AcquisitionTime", "TM"),
    0x00080060: ("Modality", "CS"),
    0x00080068: ("PresentationIntentType", "CS"),
    0x00080070: ("Manufacturer", "LO"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00081090: ("ManufacturerModelName", "LO"),
    0x00180015: ("BodyPartExamined", "CS"),
    0x00180020: ("ScanningSequence", "CS"),
    0x00180021: ("SequenceVariant", "CS"),
    0x00180024: ("SequenceName", "SH"),
    0x00180050: ("SliceThickness", "DS"),
    0x00180060: ("KVP", "DS"),
    0x00180080: ("RepetitionTime", "DS"),
    0x00180081: ("EchoTime", "DS"),
    0x00180082: ("InversionTime", "DS"),
    0x00180086: ("EchoNumbers", "IS"),
    0x00180087: ("MagneticFieldStrength", "DS"),
    0x00180088: ("SpacingBetweenSlices", "DS"),
    0x00180095: ("PixelBandwidth", "DS"),
    0x00181020: ("SoftwareVersions", "LO"),
    0x00181030: ("ProtocolName", "LO"),
    0x00181063: ("FrameTime", "DS"),
    0x00181065: ("FrameTimeVector", "DS"),
    0x00181100: ("ReconstructionDiameter", "DS"),
    0x00181114: ("EstimatedRadiographicMagnificationFactor", "DS"),
    0x00181150: ("ExposureTime", "IS"),
    0x00181151: ("XRayTubeCurrent", "IS"),
    0x00181152: ("Exposure", "IS"),
    0x00181164: ("ImagerPixelSpacing", "DS"),
    0x00181210: ("ConvolutionKernel", "SH"),
    0x00181310: ("AcquisitionMatrix", "US"),
    0x00181314: ("FlipAngle", "DS"),
    0x00182010: ("NominalScannedPixelSpacing", "DS"),
    0x00185100: ("PatientPosition", "CS"),
    0x00189345: ("CTDIvol", "FD"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200020: ("PatientOrientation", "CS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200100: ("TemporalPositionIdentifier", "IS"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280006: ("PlanarConfiguration", "US"),
    0x00280009: ("FrameIncrementPointer", "AT"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280102: ("HighBit", "US"),
    0x00280103: ("PixelRepresentation", "US"),
    0x00280301: ("BurnedInAnnotation", "CS"),
    0x00281050: ("WindowCenter", "DS"),
    0x00281051: ("WindowWidth", "DS"),
    0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
    0x00281054: ("RescaleType", "LO"),
    0x00281056: ("VOILUTFunction", "CS"),
    0x00282110: ("LossyImageCompression", "CS"),
    0x00540010: ("EnergyWindowVector", "US"),
    0x00540020: ("DetectorVector", "US"),
    0x00540030: ("PhaseVector", "US"),
    0x00540050: ("RotationVector", "US"),
    0x00540060: ("RRIntervalVector", "US"),
    0x00540070: ("TimeSlotVector", "US"),
    0x00540080: ("SliceVector", "US"),
    0x00540090: ("AngularViewVector", "US"),
    0x00540100: ("TimeSliceVector", "US"),
    0x20500020: ("PresentationLUTShape", "CS"),
    0x30040002: ("DoseUnits", "CS"),
    0x30040004: ("DoseType", "CS"),
    0x3004000A: ("DoseSummationType", "CS"),
    0x3004000C: ("GridFrameOffsetVector", "DS"),
    0x3004000E: ("DoseGridScaling", "DS"),
}
# Sequences whose presence only the index records (``values[flag] = True``); their content
# is read with pydicom when a stack needs it (dicom/display.py).
FLAG_SEQUENCES: dict[int, str] = {
    0x00186011: "HasUltrasoundRegions",
    0x00283000: "HasModalityLUT",
    0x00283010: "HasVOILUT",
}
KEYWORDS = tuple(kw for kw, _ in WANTED.values())
VR_OF = {kw: vr for kw, vr in WANTED.values()}
FLOAT_LISTS = frozenset(
    {
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "ImagerPixelSpacing",
        "NominalScannedPixelSpacing",
        "WindowCenter",
        "WindowWidth",
        "GridFrameOffsetVector",
        "FrameTimeVector",
    }
)
#: NM frame index vectors (PS3.3 C.8.4.8), named by (0028,0009) Frame Increment Pointer.
NM_VECTORS: dict[int, str] = {
    0x00540010: "EnergyWindowVector",
    0x00540020: "DetectorVector",
    0x00540030: "PhaseVector",
    0x00540050: "RotationVector",
    0x00540060: "RRIntervalVector",
    0x00540070: "TimeSlotVector",
    0x00540080: "SliceVector",
    0x00540090: "AngularViewVector",
    0x00540100: "TimeSliceVector",
}
#: US and AT values with several entries (kept as tuples of int; a tag as group << 16 |
#: element).
INT_LISTS = frozenset(
    {"AcquisitionMatrix", "FrameIncrementPointer", *NM_VECTORS.values()}
)
MULTI_VALUED = (
    frozenset({"ImageType", "PatientOrientation", "SoftwareVersions"})
    | FLOAT_LISTS
    | INT_LISTS
)
CSA_CREATOR = "SIEMENS CSA HEADER"
#: The index keeps at most this many bytes of a value (the longest standard value of these
#: tags is 64 characters; a 16 MB Series Description must not cost 16 MB per file).
MAX_VALUE_BYTES = 1024
#: Largest Siemens CSA image header the fast reader reads (real ones are 10-30 KB).
MAX_CSA_BYTES = 1 << 20


@dataclass
class FileHeader:
    """What the index read from one DICOM file (no patient identifiers).

    ``values`` maps the keywords of :data:`WANTED` to plain Python values (str, int, float,
    tuples of them). ``frames`` holds one dict per frame of an enhanced multi-frame object
    (its per-frame geometry, scaling and dimension indices) and is None for other files.
    ``csa`` holds the Siemens CSA image header fields of a mosaic (``n_mosaic``,
    ``slice_normal``) and is None otherwise.
    """

    path: str
    values: dict[str, Any]
    pixel: PixelInfo
    has_pixels: bool = True
    frames: list[dict[str, Any]] | None = None
    csa: dict[str, Any] | None = None
    parser: str = "fast"  # "fast" | "pydicom"

    def get(self, keyword: str, default: Any = None) -> Any:
        """``values.get`` shortcut."""
        return self.values.get(keyword, default)


@dataclass(frozen=True)
class HeaderFailure:
    """A file the index could not use: not DICOM at all, or DICOM it must skip."""

    path: str
    is_dicom: bool
    code: str = ""
    reason: str = ""


class Fallback(Exception):
    """The fast reader met something it leaves to pydicom."""


class NotDicom(Exception):
    """The bytes are not a DICOM dataset."""


@dataclass
class Walk:
    """What a reader found besides the values: the pixel element, and a mosaic's CSA bytes.

    ``values`` holds the raw bytes of the :data:`WANTED` elements (the fast reader only).
    """

    values: dict[str, bytes] = field(default_factory=dict)
    pixel_tag: int = 0
    pixel_offset: int | None = None
    pixel_length: int | None = None
    csa: bytes | None = None


def csa_fields(raw: bytes | None) -> dict[str, Any] | None:
    """The Siemens CSA image header fields a mosaic needs; None when absent or broken."""
    if not raw:
        return None
    with (
        warnings.catch_warnings()
    ):  # nibabel.nicom warns on import that it is experimental
        warnings.simplefilter("ignore")
        csareader: Any = importlib.import_module(
            "nibabel.nicom.csareader"
        )  # mosaics only

    try:
        csa = csareader.read(raw)
    except Exception:  # noqa: BLE001 - a broken private header is reported as absent
        return None
    n_mosaic = csareader.get_n_mosaic(csa)
    normal = csareader.get_slice_normal(csa)
    out: dict[str, Any] = {"n_mosaic": int(n_mosaic) if n_mosaic else 0}
    if normal is not None:
        out["slice_normal"] = tuple(float(v) for v in normal)
    try:
        ref = csa["tags"].get("MosaicRefAcqTimes", {}).get("items")
    except (KeyError, AttributeError, TypeError):
        ref = None
    if ref:
        out["slice_times_ms"] = tuple(float(t) for t in ref)
    return out


def _pixel_layout(values: dict[str, Any], syntax: str, walk: Walk) -> PixelInfo:
    """The pixel layout the header values declare; the pixel offset for native syntaxes."""
    offset = length = None
    if walk.pixel_tag == 0x7FE00010 and walk.pixel_length is not None:
        if syntax in NATIVE_SYNTAXES:
            offset, length = walk.pixel_offset, walk.pixel_length
    return PixelInfo(
        transfer_syntax=syntax,
        rows=int(values.get("Rows") or 0),
        cols=int(values.get("Columns") or 0),
        n_frames=max(1, int(values.get("NumberOfFrames") or 1)),
        bits_allocated=int(values.get("BitsAllocated") or 0),
        bits_stored=int(values.get("BitsStored") or values.get("BitsAllocated") or 0),
        pixel_representation=int(values.get("PixelRepresentation") or 0),
        samples_per_pixel=int(values.get("SamplesPerPixel") or 1),
        photometric=str(values.get("PhotometricInterpretation") or ""),
        offset=offset,
        length=length,
    )


def _check_pixels(info: PixelInfo, walk: Walk, size: int) -> None:
    """Raise when the native pixel value is cut short or smaller than the header claims."""
    if walk.pixel_offset is None or walk.pixel_length is None:
        return
    if walk.pixel_offset + walk.pixel_length > size:
        raise TruncatedFileError(
            f"(7FE0,0010) 'Pixel Data' declares {walk.pixel_length} bytes but the file holds "
            f"{size - walk.pixel_offset} after its header - the copy was cut short; "
            "copy the file again from the source"
        )
    if info.transfer_syntax in NATIVE_SYNTAXES and walk.pixel_tag == 0x7FE00010:
        need = claimed_bytes(
            info.rows,
            info.cols,
            info.n_frames,
            info.samples_per_pixel,
            info.bits_allocated,
        )
        if walk.pixel_length < need:
            raise PixelDataSizeError(
                f"(7FE0,0010) 'Pixel Data' holds {walk.pixel_length} bytes, the header "
                f"claims {info.rows}x{info.cols}x{info.n_frames} frames of "
                f"{info.bits_allocated}-bit samples = {need} bytes - the header or the "
                "pixel data is corrupt"
            )
        check_native_length("", walk.pixel_length, need, "(7FE0,0010) 'Pixel Data'")


def checked_pixel_info(
    values: dict[str, Any], syntax: str, walk: Walk, size: int
) -> PixelInfo:
    """The pixel layout the header declares, checked against the file's pixel element.

    Raises
    ------
    TruncatedFileError
        The native pixel value runs past the end of the file (``size`` bytes).
    PixelDataSizeError
        It holds fewer bytes than the header's matrix needs (more than one pad byte more:
        :class:`~clisonix_cli.errors.PixelDataLengthError`).
    BitDepthError
        Bits Allocated / Bits Stored / High Bit outside PS3.5.
    """
    info = _pixel_layout(values, syntax, walk)
    if walk.pixel_tag == 0x7FE00010:
        check_bit_depth(
            "",
            info.bits_allocated,
            values.get("BitsStored"),
            values.get("HighBit"),
        )
    _check_pixels(info, walk, size)
    return info
