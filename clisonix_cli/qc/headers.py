"""Acquisition header fields QC compares, read once per series, and the scanner groups.

The fields come from the scan's header index (its sidecar-safe acquisition fields, read
once per file for the conversion anyway): QC reads no header again and no patient
identifier at all. The station name is not in the index; with a key (``--key-file``) QC
reads it from the first file of the series and keeps only ``HMAC-SHA256(key, name)`` cut to
12 hex digits; without a key it is left out (an unkeyed hash of a short name is easy to
reverse by guessing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clisonix_cli.errors import QcKeyError

#: Header fields by modality kind: numbers (compared as values) and categories (as text).
#: Fields of every kind: the scanner (group key) and the pixel grid.
COMMON = ("Manufacturer", "ManufacturerModelName", "SoftwareVersions", "PixelSpacing")
FIELDS: dict[str, tuple[str, ...]] = {
    "ct": (
        "KVP",
        "XRayTubeCurrent",
        "Exposure",
        "CTDIvol",
        "ConvolutionKernel",
        "SliceThickness",
        "ReconstructionDiameter",
    ),  # fmt: skip
    "mr": (
        "MagneticFieldStrength",
        "RepetitionTime",
        "EchoTime",
        "FlipAngle",
        "SliceThickness",
    ),  # fmt: skip
    "xr": ("KVP", "Exposure", "ExposureTime", "ImagerPixelSpacing"),
    "other": ("SliceThickness",),
}
#: Fields whose values are measurements (drift by numeric test); the rest are categories.
NUMERIC = frozenset({"XRayTubeCurrent", "Exposure", "CTDIvol", "ExposureTime"})
#: Kept as well, not compared: the protocol label and whether text is burned in.
EXTRA = ("ProtocolName", "BurnedInAnnotation")
MIN_KEY_BYTES = 32


def kind_of(modality: str) -> str:
    """``ct``, ``mr``, ``xr`` (projection radiography) or ``other``."""
    m = modality.upper()
    if m == "CT":
        return "ct"
    if m == "MR":
        return "mr"
    if m in {"CR", "DX", "MG", "RG", "IO", "PX", "XA", "RF", "DR"}:
        return "xr"
    return "other"


def compared_fields(kind: str) -> tuple[str, ...]:
    """Header fields compared for a modality kind, in report order."""
    return COMMON + FIELDS.get(kind, FIELDS["other"])


def load_key(path: Path) -> bytes:
    """Read a station-hashing key file (the ``deid`` key rules: 32+ bytes, not readable
    by others).

    Raises
    ------
    QcKeyError
        Missing, unreadable, too short or world-readable (exit 2).
    """
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise QcKeyError(
            f"--key-file {path}: cannot read it ({exc.strerror or exc}); give an existing "
            "key file (e.g. one made with `head -c 32 /dev/urandom > key && chmod 600 key`)"
        ) from None
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise QcKeyError(
            f"--key-file {path}: readable or writable by every user (mode "
            f"{stat.S_IMODE(st.st_mode):o}); restrict it with chmod 600"
        )
    key = data  # raw bytes: the same key file gives the same hashes everywhere
    if len(key) < MIN_KEY_BYTES:
        raise QcKeyError(
            f"--key-file {path}: {len(key)} bytes, expected at least {MIN_KEY_BYTES}; "
            "make one with `head -c 32 /dev/urandom > key && chmod 600 key`"
        )
    return key


def key_id(key: bytes | None) -> str | None:
    """A public fingerprint of the key (to tell whether two runs used the same one)."""
    if key is None:
        return None
    return hmac.new(key, b"clisonix-qc-key-id", hashlib.sha256).hexdigest()[:12]


def keyed(key: bytes, text: str) -> str:
    """12 hex digits of HMAC-SHA256(key, text)."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:12]


def _plain(value: Any) -> Any:
    """A JSON-ready value: numbers rounded, several values as a list, text stripped."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return items if items else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value), 6)
    text = str(value).strip()
    return text or None


def station_of(path: Path, key: bytes) -> str | None:
    """HMAC of (0008,1010) Station Name of one file, or None when absent or unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["StationName"], force=True
        )
        name = str(ds.get("StationName", "") or "").strip()
    except Exception:  # a damaged header: no station, QC goes on
        return None
    return keyed(key, name) if name else None


def series_fields(
    meta: Mapping[str, Any],
    pixel_spacing: tuple[float, float] | None,
    kind: str,
    station: str | None,
) -> dict[str, Any]:
    """The compared fields of a series, from what the scan read (its sidecar-safe fields
    and pixel spacing), plus the hashed station."""
    out: dict[str, Any] = {}
    for kw in (*compared_fields(kind), *EXTRA):
        val = pixel_spacing if kw == "PixelSpacing" else meta.get(kw)
        val = _plain(val)
        if val is not None:
            out[kw] = val
    out["Station"] = station
    return out


def category(value: Any) -> str | None:
    """A header value as one category string (``a\\b`` for several values)."""
    if value is None:
        return None
    if isinstance(value, list):
        return "\\".join(category(v) or "" for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def group_key(modality: str, header: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Scanner group: (id, what it is). Modality, manufacturer, model and station."""
    parts = {
        "Modality": modality or None,
        "Manufacturer": category(header.get("Manufacturer")),
        "ManufacturerModelName": category(header.get("ManufacturerModelName")),
        "Station": header.get("Station"),
    }
    blob = json.dumps(list(parts.values()), separators=(",", ":"))
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:8]
    return f"{(modality or 'XX').upper()}-{digest}", parts


def protocol_key(
    group: str, header: Mapping[str, Any], description: str, key: bytes | None
) -> str:
    """Protocol group id within a scanner group: ProtocolName, else the series
    description, hashed (keyed when a key is given)."""
    text = category(header.get("ProtocolName")) or description or ""
    secret = key or b"clisonix-qc-protocol"
    return (
        f"{group}/p-{hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:8]}"
    )
