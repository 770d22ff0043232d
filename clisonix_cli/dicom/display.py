"""Display attributes of an image (PS3.4 N.2) as plain values for the ``voi`` op.

The index reads the attributes the display pipeline needs from the first image of a stack
(:func:`display_of`): photometric interpretation, (0028,1050)/(0028,1051) windows,
(0028,1056) VOI LUT Function, (2050,0020) Presentation LUT Shape, and whether a VOI LUT,
Modality LUT or ultrasound region sequence is present. The content of those sequences is
read with pydicom only when a stack is loaded and has one (:func:`read_sequences`): the
transforms room receives numbers and arrays, never a dataset.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.errors import InputError, VoiLutError

__all__ = ["apply_modality_lut", "display_of", "read_sequences"]

#: The ultrasound region fields recorded in the sidecar (PS3.3 C.8.5.5.1).
_US_REGION_FIELDS = (
    "RegionSpatialFormat",
    "RegionDataType",
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
    "PhysicalUnitsXDirection",
    "PhysicalUnitsYDirection",
    "PhysicalDeltaX",
    "PhysicalDeltaY",
)


def display_of(
    values: Mapping[str, Any], pixel: PixelInfo
) -> tuple[tuple[str, Any], ...]:
    """The display attributes of one header, as sorted ``(key, value)`` pairs.

    Keys: ``photometric``, ``bits_stored``, ``signed``, ``windows`` (tuple of (centre,
    width) pairs), ``function`` (VOI LUT Function), ``presentation`` (Presentation LUT
    Shape), ``voi_lut`` / ``modality_lut`` / ``us_regions`` (True when the sequence is
    present; its content is read at load time).
    """
    centres = values.get("WindowCenter") or ()
    widths = values.get("WindowWidth") or ()
    windows = tuple(
        (float(c), float(w))
        for c, w in zip(centres, widths, strict=False)
        if math.isfinite(float(c)) and math.isfinite(float(w))
    )
    out: dict[str, Any] = {
        "photometric": pixel.photometric,
        "bits_stored": int(pixel.bits_stored),
        "signed": bool(pixel.pixel_representation),
        "windows": windows,
        "function": str(values.get("VOILUTFunction") or "LINEAR").upper(),
        "presentation": str(values.get("PresentationLUTShape") or "").upper(),
        "voi_lut": bool(values.get("HasVOILUT")),
        "modality_lut": bool(values.get("HasModalityLUT")),
        "us_regions": bool(values.get("HasUltrasoundRegions")),
    }
    return tuple(sorted(out.items()))


def _lut(item: Any, name: str, label: str, little: bool) -> dict[str, Any]:
    """One LUT item (descriptor and data) checked against itself."""
    desc = item.get("LUTDescriptor")
    elem = item.get("LUTData") if "LUTData" in item else None
    if desc is None or elem is None or len(desc) != 3:
        raise VoiLutError(
            f"{label}: a {name} item lacks (0028,3002) 'LUT Descriptor' (3 values) or "
            "(0028,3006) 'LUT Data' - the header is corrupt"
        )
    n_entries = int(desc[0]) or 65536
    first = int(desc[1])
    bits = int(desc[2])
    raw = item["LUTData"]
    if raw.VR == "OW" or isinstance(raw.value, bytes | bytearray):
        buf = bytes(raw.value)
        count = len(buf) // 2
        data = list(
            struct.unpack(f"{'<' if little else '>'}{count}H", buf[: 2 * count])
        )
    else:
        value = raw.value
        data = [int(v) for v in (value if isinstance(value, list | tuple) else [value])]
    if len(data) != n_entries:
        raise VoiLutError(
            f"{label}: the {name} (0028,3006) 'LUT Data' holds {len(data)} entries, its "
            f"(0028,3002) 'LUT Descriptor' declares {n_entries} - the header is corrupt"
        )
    if not 1 <= bits <= 16:
        raise VoiLutError(
            f"{label}: the {name} (0028,3002) 'LUT Descriptor' declares {bits} bits per "
            "entry, expected 1 to 16 - the header is corrupt"
        )
    return {
        "first": first,
        "bits": bits,
        "data": np.asarray(data, dtype=np.uint16 if bits > 8 else np.uint8),
    }


def read_sequences(
    path: Path, label: str, display: Mapping[str, Any]
) -> dict[str, Any]:
    """Read the VOI LUT, Modality LUT and ultrasound region sequences of one file.

    Parameters
    ----------
    path : Path
        The file (the first of its stack).
    label : str
        How messages name it.
    display : mapping
        What :func:`display_of` found: only the sequences flagged there are read.

    Returns
    -------
    dict
        ``voi_luts`` (list of {first, bits, data}), ``modality_lut`` ({first, bits, data}
        or None), ``us_regions`` (list of dicts of :data:`_US_REGION_FIELDS`).

    Raises
    ------
    VoiLutError
        A LUT's data length disagrees with its descriptor.
    """
    out: dict[str, Any] = {"voi_luts": [], "modality_lut": None, "us_regions": []}
    if not (
        display.get("voi_lut")
        or display.get("modality_lut")
        or display.get("us_regions")
    ):
        return out
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # noqa: BLE001 - the pixels were read: the header is odd
        raise InputError(
            f"{label}: its LUT or region sequences cannot be read ({type(exc).__name__})"
        ) from None
    little = bool(getattr(ds, "is_little_endian", True) in (True, None))
    for item in ds.get("VOILUTSequence") or ():
        out["voi_luts"].append(_lut(item, "VOI LUT", label, little))
    mlut = ds.get("ModalityLUTSequence")
    if mlut:
        out["modality_lut"] = _lut(mlut[0], "Modality LUT", label, little)
    for item in ds.get("SequenceOfUltrasoundRegions") or ():
        region = {}
        for key in _US_REGION_FIELDS:
            val = item.get(key)
            if val is not None:
                region[key] = float(val) if isinstance(val, float) else int(val)
        out["us_regions"].append(region)
    return out


def apply_modality_lut(data: np.ndarray, lut: Mapping[str, Any]) -> np.ndarray:
    """Stored values through a Modality LUT (PS3.3 C.11.1): values below the first mapped
    value take the first entry, values past the last entry the last one (as pydicom's
    ``apply_modality_lut``)."""
    table = np.asarray(lut["data"])
    idx = data.astype(np.int64) - int(lut["first"])
    np.clip(idx, 0, table.size - 1, out=idx)
    return table[idx]
