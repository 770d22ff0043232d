"""The header index: find DICOM files by content and read the few tags clisonix needs, fast.

Header parsing is what makes a pydicom loop slow (NOTES.md: 0.4-0.7 ms per file whatever the
payload). For the common native encodings (explicit and implicit VR little endian, and the
explicit-VR encapsulated syntaxes) :func:`read_header` walks the data elements itself from the
first few KiB of the file, up to (7FE0,0010) Pixel Data, keeps the tags it needs, skips every
other value and sequence without decoding it, and records where the pixel bytes lie
(:class:`~clisonix_cli.dicom.model.PixelInfo`), so that conversion reads the pixels straight
from the file without a second header parse. Anything unusual (big endian, deflate, enhanced
multi-frame functional groups, an encoding surprise) falls back to ``pydicom.dcmread``.

Each file is parsed once: :func:`scan` turns the headers into
:class:`~clisonix_cli.dicom.model.Stack` records that carry everything conversion needs.
"""

from __future__ import annotations

import importlib
import os
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from clisonix_cli.dicom.discover import list_files, normalize_files
from clisonix_cli.dicom.model import PixelInfo, ScanResult, Skipped, Stack
from clisonix_cli.dicom.pixels import (
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    NATIVE_SYNTAXES,
)
from clisonix_cli.errors import (
    InputError,
    NoPixelDataError,
    PixelDataSizeError,
    TruncatedFileError,
    UnsupportedImageError,
)

__all__ = [
    "SCAN_SCHEMA",
    "FileHeader",
    "HeaderFailure",
    "read_header",
    "scan",
    "scan_document",
    "stack_document",
    "syntax_name",
]

_CHUNK = 16384  # first read; enough for the header of nearly every single-frame file
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_FUNCTIONAL_GROUPS = frozenset({0x52009229, 0x52009230})
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(
    {
        b"OB",
        b"OD",
        b"OF",
        b"OL",
        b"OV",
        b"OW",
        b"SQ",
        b"SV",
        b"UC",
        b"UN",
        b"UR",
        b"UT",
        b"UV",
    }
)
_VRS = _LONG_VRS | frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip

# The only tags the index keeps: (keyword, VR). No patient identifiers are ever read.
WANTED: dict[int, tuple[str, str]] = {
    0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080032: ("AcquisitionTime", "TM"),
    0x00080060: ("Modality", "CS"),
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
    0x00181030: ("ProtocolName", "LO"),
    0x00181210: ("ConvolutionKernel", "SH"),
    0x00181314: ("FlipAngle", "DS"),
    0x00185100: ("PatientPosition", "CS"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200100: ("TemporalPositionIdentifier", "IS"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"),
    0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
    0x00281054: ("RescaleType", "LO"),
}
_KEYWORDS = tuple(kw for kw, _ in WANTED.values())
_VR_OF = {kw: vr for kw, vr in WANTED.values()}
_MULTI = frozenset(
    {"ImageType", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"}
)
_FLOAT_LISTS = frozenset(
    {"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"}
)
_CSA_CREATOR = "SIEMENS CSA HEADER"

_S_HDR_EXPLICIT = struct.Struct("<HH2sH")
_S_HDR_IMPLICIT = struct.Struct("<HHI")
_S_U32 = struct.Struct("<I")
_S_U16 = struct.Struct("<H")


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


class _Fallback(Exception):
    """The fast reader met something it leaves to pydicom."""


class _NotDicom(Exception):
    """The bytes are not a DICOM dataset."""


@dataclass
class _Walk:
    values: dict[str, bytes] = field(default_factory=dict)
    pixel_tag: int = 0
    pixel_offset: int | None = None
    pixel_length: int | None = None
    csa: bytes | None = None


class _Buffer:
    """A window on the file: the bytes at [base, base + len(buf)), refilled on demand."""

    __slots__ = ("base", "buf", "fh", "size")

    def __init__(self, fh: BinaryIO, size: int, first: bytes) -> None:
        self.fh = fh
        self.size = size
        self.base = 0
        self.buf = first

    def window(self, pos: int, need: int) -> tuple[bytes, int]:
        """Return (buf, offset of ``pos`` in buf) with at least ``need`` bytes available.

        Raises ``TruncatedFileError`` when the file ends before ``pos + need``.
        """
        off = pos - self.base
        if 0 <= off and off + need <= len(self.buf):
            return self.buf, off
        if pos + need > self.size:
            raise TruncatedFileError(
                f"the file ends at byte {self.size}, inside a data element that needs "
                f"bytes up to {pos + need}"
            )
        self.fh.seek(pos)
        self.buf = self.fh.read(max(need, _CHUNK))
        self.base = pos
        if len(self.buf) < need:  # the file shrank while we read it
            raise TruncatedFileError(f"the file ends before byte {pos + need}")
        return self.buf, 0


def _skip_undefined(r: _Buffer, pos: int, implicit: bool, depth: int) -> int:
    """Skip the items of an undefined-length sequence starting at ``pos``; return the end."""
    if depth > 16:
        raise _Fallback("sequences nested deeper than 16 levels")
    while True:
        buf, off = r.window(pos, 8)
        group, elem, length = _S_HDR_IMPLICIT.unpack_from(buf, off)
        tag = (group << 16) | elem
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM:
            raise _Fallback(
                f"expected an item tag in a sequence, found ({group:04X},{elem:04X})"
            )
        pos += 8
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _walk_item(r, pos, implicit, depth + 1)


def _walk_item(r: _Buffer, pos: int, implicit: bool, depth: int) -> int:
    """Skip the elements of an undefined-length item up to its delimiter; return the end."""
    while True:
        buf, off = r.window(pos, 8)
        group, elem = struct.unpack_from("<HH", buf, off)
        tag = (group << 16) | elem
        if tag == _ITEM_END:
            return pos + 8
        pos, _ = _element_end(r, pos, implicit, depth)


def _element_end(r: _Buffer, pos: int, implicit: bool, depth: int) -> tuple[int, int]:
    """End of the element starting at ``pos`` (nested sequences walked); and its value start."""
    buf, off = r.window(pos, 8)
    if implicit:
        _, _, length = _S_HDR_IMPLICIT.unpack_from(buf, off)
        start = pos + 8
        if length == _UNDEFINED:
            return _skip_undefined(r, start, True, depth), start
        return start + length, start
    _, _, vr, length = _S_HDR_EXPLICIT.unpack_from(buf, off)
    if vr in _LONG_VRS:
        buf, off = r.window(pos, 12)
        length = _S_U32.unpack_from(buf, off + 8)[0]
        start = pos + 12
    elif vr in _VRS:
        start = pos + 8
    else:
        raise _Fallback(f"unknown VR {vr!r}")
    if length == _UNDEFINED:
        # an undefined-length UN holds an implicit VR little endian sequence (PS3.5 6.2.2)
        return _skip_undefined(r, start, implicit or vr == b"UN", depth), start
    return start + length, start


# One dict lookup per element: keyword of a wanted tag, or 1 = pixel data, 2 = enhanced.
_ACTION: dict[int, str | int] = {tag: kw for tag, (kw, _) in WANTED.items()}
_ACTION.update({t: 1 for t in _PIXEL_TAGS})
_ACTION.update({t: 2 for t in _FUNCTIONAL_GROUPS})
_VR_LONG: dict[bytes, bool] = {vr: vr in _LONG_VRS for vr in _VRS}


def _walk_dataset(r: _Buffer, pos: int, implicit: bool) -> _Walk:
    """Walk top-level elements from ``pos`` to the pixel data (or the end of the file).

    The hot loop of the index: one ``unpack_from`` and one dict lookup per element; values
    of unwanted elements and whole defined-length sequences are skipped without reading.
    """
    out = _Walk()
    values = out.values
    action_of = _ACTION.get
    vr_long = _VR_LONG.get
    unpack_hdr = (_S_HDR_IMPLICIT if implicit else _S_HDR_EXPLICIT).unpack_from
    unpack_u32 = _S_U32.unpack_from
    size = r.size
    buf, base = r.buf, r.base
    blen = len(buf)
    creators: dict[int, str] = {}
    while True:
        off = pos - base
        if off < 0 or off + 12 > blen:
            if pos >= size:
                if pos > size:
                    raise TruncatedFileError(
                        f"the last data element ends at byte {pos}, past the end of the "
                        f"file ({size} bytes)"
                    )
                return out  # clean end of file: no pixel data
            buf, off = r.window(pos, min(12, size - pos))
            base, blen = r.base, len(buf)
            if blen - off < 8:
                raise TruncatedFileError(
                    f"the file ends inside a data element at byte {pos}"
                )
        if implicit:
            group, elem, length = unpack_hdr(buf, off)
            start = pos + 8
            vr = b""
        else:
            group, elem, vr, length = unpack_hdr(buf, off)
            is_long = vr_long(vr)
            if is_long:
                if blen - off < 12:
                    buf, off = r.window(pos, 12)
                    base, blen = r.base, len(buf)
                length = unpack_u32(buf, off + 8)[0]
                start = pos + 12
            elif is_long is None:
                raise _Fallback(f"unknown VR {vr!r} at ({group:04X},{elem:04X})")
            else:
                start = pos + 8
        tag = (group << 16) | elem
        action = action_of(tag)
        if action is not None:
            if action == 1:
                out.pixel_tag = tag
                out.pixel_offset = start
                out.pixel_length = None if length == _UNDEFINED else length
                return out
            if action == 2:
                raise _Fallback("enhanced multi-frame functional groups")
        if length == _UNDEFINED:
            pos = _skip_undefined(r, start, implicit or vr == b"UN", 1)
            buf, base = r.buf, r.base
            blen = len(buf)
            continue
        end = start + length
        if action is not None:
            voff = start - base
            if voff + length <= blen:
                values[action] = buf[voff : voff + length]  # type: ignore[index]
            else:
                if end > size:
                    raise TruncatedFileError(
                        f"({group:04X},{elem:04X}) needs bytes up to {end}, the file has {size}"
                    )
                vbuf, voff = r.window(start, length)
                values[action] = vbuf[voff : voff + length]  # type: ignore[index]
                buf, base = r.buf, r.base
                blen = len(buf)
        elif group == 0x0029 and b"MOSAIC" in values.get("ImageType", b""):
            vbuf, voff = r.window(start, length)
            if 0x0010 <= elem < 0x0100:
                creators[elem] = (
                    vbuf[voff : voff + length].decode("latin-1").strip(" \x00")
                )
            elif (elem & 0xFF) == 0x10 and creators.get(elem >> 8) == _CSA_CREATOR:
                out.csa = vbuf[voff : voff + length]
            buf, base = r.buf, r.base
            blen = len(buf)
        elif group > 0x7FE0 and group != 0xFFFC:
            return out  # past the pixel data group: no pixels
        pos = end


def _text(raw: bytes) -> str | None:
    return raw.decode("latin-1").strip(" \x00") or None


def _us(raw: bytes) -> int | None:
    return _S_U16.unpack_from(raw, 0)[0] if len(raw) >= 2 else None


def _ds(raw: bytes) -> float | None:
    text = raw.decode("latin-1").strip(" \x00")
    return float(text.split("\\", 1)[0]) if text else None


def _is(raw: bytes) -> int | None:
    text = raw.decode("latin-1").strip(" \x00")
    return int(float(text.split("\\", 1)[0])) if text else None


def _floats(raw: bytes) -> tuple[float, ...] | None:
    text = raw.decode("latin-1").strip(" \x00")
    return tuple(float(p) for p in text.split("\\")) if text else None


def _strings(raw: bytes) -> tuple[str, ...] | None:
    text = raw.decode("latin-1").strip(" \x00")
    return tuple(p.strip(" \x00") for p in text.split("\\")) if text else None


def _decoder(keyword: str, vr: str) -> Callable[[bytes], Any]:
    if keyword in _FLOAT_LISTS:
        return _floats
    if keyword in _MULTI:
        return _strings
    return {"US": _us, "DS": _ds, "IS": _is}.get(vr, _text)


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    kw: _decoder(kw, vr) for kw, vr in WANTED.values()
}


def _decode(keyword: str, raw: bytes) -> Any:
    """Turn the raw bytes of a :data:`WANTED` element into a Python value (None if empty)."""
    return _DECODERS[keyword](raw)


# Most values repeat across the files of a series (manufacturer, orientation, spacing...):
# decoded values are memoised by their raw bytes (bounded; values are immutable).
_DECODE_CACHE: dict[tuple[str, bytes], Any] = {}
_DECODE_CACHE_MAX = 65536
_MISSING = object()


def _decode_values(raw: dict[str, bytes]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    decoders = _DECODERS
    cache = _DECODE_CACHE
    for kw, data in raw.items():
        key = (kw, data)
        val = cache.get(key, _MISSING)
        if val is _MISSING:
            try:
                val = decoders[kw](data)
            except (ValueError, struct.error):
                val = None  # a malformed number: treat as absent, like a missing attribute
            if len(cache) >= _DECODE_CACHE_MAX:
                cache.clear()
            cache[key] = val
        if val is not None:
            values[kw] = val
    return values


def _parse_meta(r: _Buffer, pos: int) -> tuple[str | None, int]:
    """Walk group 0002 (always explicit VR little endian); return (syntax UID, dataset start)."""
    syntax: str | None = None
    while True:
        if pos + 8 > r.size:
            if pos != r.size:
                raise TruncatedFileError(
                    f"the file ends at byte {r.size}, inside the file meta (group 0002)"
                )
            return syntax, pos
        buf, off = r.window(pos, 8)
        group, elem, vr, length = _S_HDR_EXPLICIT.unpack_from(buf, off)
        if group != 0x0002:
            return syntax, pos
        if vr in _LONG_VRS:
            buf, off = r.window(pos, 12)
            length = _S_U32.unpack_from(buf, off + 8)[0]
            start = pos + 12
        elif vr in _VRS:
            start = pos + 8
        else:
            raise _NotDicom(
                f"file meta element ({group:04X},{elem:04X}) has no valid VR"
            )
        if length == _UNDEFINED:
            raise _NotDicom("undefined length in the file meta group")
        if elem == 0x0010:
            vbuf, voff = r.window(start, length)
            syntax = vbuf[voff : voff + length].decode("latin-1").strip(" \x00")
        pos = start + length


def _looks_like_dataset(head: bytes) -> str | None:
    """For a file without the DICM marker: 'meta', 'explicit', 'implicit' or None."""
    if len(head) < 8:
        return None
    group, elem = struct.unpack_from("<HH", head, 0)
    vr = head[4:6]
    if group == 0x0002 and vr in _VRS:
        return "meta"
    if group != 0x0008:
        return None
    if vr in _VRS:
        return "explicit"
    length = _S_U32.unpack_from(head, 4)[0]
    if elem <= 0x0018 and length < 1024:
        return "implicit"
    return None


def _fast_walk(fh: BinaryIO, size: int, head: bytes) -> tuple[str, _Walk, str]:
    """Parse the file with the fast reader; return (syntax, walk, how the file starts).

    ``head`` holds the first bytes of the file (read once by the caller).
    """
    r = _Buffer(fh, size, head)
    if len(head) >= 132 and head[128:132] == b"DICM":
        start = "preamble"
        syntax, pos = _parse_meta(r, 132)
        if syntax is None:
            raise _Fallback("no (0002,0010) Transfer Syntax UID in the file meta")
    else:
        kind = _looks_like_dataset(head)
        if kind is None:
            raise _NotDicom("no DICM marker and no dataset at the start")
        start = "raw"
        if kind == "meta":
            syntax, pos = _parse_meta(r, 0)
            if syntax is None:
                raise _Fallback("no (0002,0010) Transfer Syntax UID in the file meta")
        else:
            syntax, pos = (EXPLICIT_LE if kind == "explicit" else IMPLICIT_LE), 0
    if syntax in (DEFLATED_LE, EXPLICIT_BE):
        raise _Fallback(f"transfer syntax {syntax}")
    if (
        syntax != IMPLICIT_LE
        and syntax != EXPLICIT_LE
        and not syntax.startswith(("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5"))
    ):
        raise _Fallback(f"transfer syntax {syntax}")
    return syntax, _walk_dataset(r, pos, syntax == IMPLICIT_LE), start


def _expected_bytes(rows: int, cols: int, frames: int, samples: int, bits: int) -> int:
    n_bits = rows * cols * frames * samples * bits
    return (n_bits + 7) // 8


def _csa_fields(raw: bytes | None) -> dict[str, Any] | None:
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


def _pixel_info(values: dict[str, Any], syntax: str, walk: _Walk | None) -> PixelInfo:
    offset = length = None
    if (
        walk is not None
        and walk.pixel_tag == 0x7FE00010
        and walk.pixel_length is not None
    ):
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


def _check_pixels(info: PixelInfo, walk: _Walk, size: int) -> None:
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
        need = _expected_bytes(
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


# --- pydicom fallback ------------------------------------------------------------------


def _plain(value: Any, keyword: str) -> Any:
    """A pydicom value as plain Python (tuples for multi-valued), None when empty."""
    if value is None or value == "":
        return None
    vr = _VR_OF.get(keyword, "")
    seq = _as_list(value)
    if keyword in _MULTI:
        if keyword in _FLOAT_LISTS:
            return tuple(float(v) for v in seq)
        return tuple(str(v).strip(" \x00") for v in seq)
    if not seq:
        return None
    value = seq[0]
    if vr == "DS":
        return float(value)
    if vr in ("IS", "US"):
        return int(value)
    return str(value).strip()


def _first(item: Any, seq_kw: str, attr: str) -> Any:
    """``item.<seq_kw>[0].<attr>`` or None."""
    if item is None:
        return None
    seq = item.get(seq_kw)
    if not seq:
        return None
    return seq[0].get(attr)


def _enhanced_frames(ds: Any, n_frames: int) -> list[dict[str, Any]]:
    """Per-frame geometry, scaling and dimension indices of an enhanced multi-frame object."""
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    frames: list[dict[str, Any]] = []
    top_slope = ds.get("RescaleSlope")
    top_inter = ds.get("RescaleIntercept")
    for i in range(n_frames):
        item = per_frame[i] if i < len(per_frame) else None

        def find(seq_kw: str, attr: str, item: Any = item) -> Any:
            val = _first(item, seq_kw, attr)
            return val if val is not None else _first(shared, seq_kw, attr)

        fc = item.get("FrameContentSequence") if item is not None else None
        fc0 = fc[0] if fc else None
        slope = find("PixelValueTransformationSequence", "RescaleSlope")
        inter = find("PixelValueTransformationSequence", "RescaleIntercept")
        ipp = find("PlanePositionSequence", "ImagePositionPatient")
        iop = find("PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = find("PixelMeasuresSequence", "PixelSpacing")
        dims = fc0.get("DimensionIndexValues") if fc0 is not None else None
        if dims is not None and not isinstance(dims, list | tuple):
            dims = [dims]
        frames.append(
            {
                "ImagePositionPatient": tuple(float(v) for v in ipp) if ipp else None,
                "ImageOrientationPatient": tuple(float(v) for v in iop)
                if iop
                else None,
                "PixelSpacing": tuple(float(v) for v in spacing) if spacing else None,
                "SliceThickness": _num(find("PixelMeasuresSequence", "SliceThickness")),
                "SpacingBetweenSlices": _num(
                    find("PixelMeasuresSequence", "SpacingBetweenSlices")
                ),
                "RescaleSlope": _num(slope if slope is not None else top_slope),
                "RescaleIntercept": _num(inter if inter is not None else top_inter),
                "EchoTime": _num(find("MREchoSequence", "EffectiveEchoTime")),
                "StackID": str(fc0.get("StackID"))
                if fc0 is not None and fc0.get("StackID") is not None
                else None,  # noqa: E501
                "InStackPositionNumber": _int(fc0.get("InStackPositionNumber"))
                if fc0 is not None
                else None,  # noqa: E501
                "TemporalPositionIndex": _int(fc0.get("TemporalPositionIndex"))
                if fc0 is not None
                else None,  # noqa: E501
                "FrameAcquisitionNumber": _int(fc0.get("FrameAcquisitionNumber"))
                if fc0 is not None
                else None,  # noqa: E501
                "DimensionIndexValues": tuple(int(v) for v in dims) if dims else None,
            }
        )
    return frames


def _as_list(value: Any) -> list[Any]:
    """A pydicom value as a list (MultiValue and sequences unpacked, scalars wrapped)."""
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _num(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """No pydicom warnings or log lines (they can quote element values), no validation."""
    import logging

    from pydicom import config

    logger = logging.getLogger("pydicom")
    old_level, old_mode = logger.level, config.settings.reading_validation_mode
    logger.setLevel(logging.CRITICAL)
    config.settings.reading_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old_level)
        config.settings.reading_validation_mode = old_mode


def _has_pixel_tag_bytes(path: Path) -> bool:
    """Whether the (7FE0,0010) tag bytes occur in the file (used when pydicom gave up)."""
    import mmap

    with (
        open(path, "rb") as fh,
        mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm,
    ):
        return mm.rfind(b"\xe0\x7f\x10\x00") >= 0 or mm.rfind(b"\x7f\xe0\x00\x10") >= 0


def _dcmread(path: Path, has_preamble: bool, **kw: Any) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, force=not has_preamble, **kw)
    except InvalidDicomError as exc:
        raise _NotDicom(str(exc)) from None
    except (EOFError, OSError) as exc:
        raise TruncatedFileError(
            f"the file ends early ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a skipped file
        raise InputError(
            f"the header cannot be parsed ({type(exc).__name__})"
        ) from None


def _read_with_pydicom(
    path: Path, rel: str, size: int, has_preamble: bool
) -> FileHeader:
    with _quiet_pydicom():
        ds = _dcmread(path, has_preamble, defer_size=4096)
        guessed_pixels = False
        if len(ds) == 0:
            # pydicom returns an empty dataset when the (encapsulated) pixel data is cut
            # short; the header itself may be fine: read it alone.
            ds = _dcmread(path, has_preamble, stop_before_pixels=True)
            guessed_pixels = _has_pixel_tag_bytes(path)
        meta = getattr(ds, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if not syntax:
            syntax = IMPLICIT_LE if ds.is_implicit_VR else EXPLICIT_LE
        values: dict[str, Any] = {}
        for kw in _KEYWORDS:
            try:
                val = _plain(ds.get(kw), kw)
            except (TypeError, ValueError):
                val = None
            if val is not None:
                values[kw] = val
        if not values:
            raise _NotDicom("no known attribute in the dataset")
        walk = _Walk()
        pixel_tag = next(
            (t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), 0
        )
        if guessed_pixels:
            pixel_tag = 0x7FE00010
        elif pixel_tag:
            raw = ds.get_item(pixel_tag, keep_deferred=True)
            walk.pixel_tag = pixel_tag
            tell = getattr(raw, "value_tell", None)
            length = getattr(raw, "length", None)
            if syntax in NATIVE_SYNTAXES and tell is not None:
                walk.pixel_offset = int(tell)
                walk.pixel_length = (
                    None if length in (None, _UNDEFINED) else int(length)
                )
        csa = None
        if "MOSAIC" in (values.get("ImageType") or ()):
            csa_raw = _private_csa(ds)
            csa = _csa_fields(csa_raw)
        info = _pixel_info(values, syntax, walk)
        _check_pixels(info, walk, size)
        frames = None
        if (
            "PerFrameFunctionalGroupsSequence" in ds
            or "SharedFunctionalGroupsSequence" in ds
        ):
            frames = _enhanced_frames(ds, info.n_frames)
    return FileHeader(
        path=rel,
        values=values,
        pixel=info,
        has_pixels=bool(pixel_tag),
        frames=frames,
        csa=csa,
        parser="pydicom",
    )


def _private_csa(ds: Any) -> bytes | None:
    try:
        block = ds.private_block(0x0029, _CSA_CREATOR)
        elem = block[0x10]
    except KeyError:
        return None
    value = elem.value
    return bytes(value) if isinstance(value, bytes | bytearray) else None


# --- public ----------------------------------------------------------------------------


def _fast_header(fh: BinaryIO, head: bytes, size: int, rel: str) -> FileHeader:
    """The fast reader's header; raises ``_Fallback`` for what it leaves to pydicom."""
    syntax, walk, start = _fast_walk(fh, size, head)
    values = _decode_values(walk.values)
    if start == "raw" and not (
        values.get("SOPClassUID") or (values.get("Rows") and values.get("Columns"))
    ):
        raise _NotDicom("no SOP Class UID and no image matrix")
    info = _pixel_info(values, syntax, walk)
    _check_pixels(info, walk, size)
    csa = _csa_fields(walk.csa) if walk.csa is not None else None
    if "MOSAIC" in (values.get("ImageType") or ()) and csa is None:
        raise _Fallback("mosaic without a CSA header in reach")
    return FileHeader(rel, values, info, bool(walk.pixel_tag), None, csa, "fast")


def read_header(
    path: Path, rel: str, *, fast: bool = True
) -> FileHeader | HeaderFailure:
    """Read the header of one file, by content, and classify it.

    Parameters
    ----------
    path : Path
        The file to read.
    rel : str
        Its name relative to the scan root (used in records and messages).
    fast : bool, optional
        Use the fast reader when the encoding allows it (default); False always uses pydicom
        (for tests that compare both).

    Returns
    -------
    FileHeader or HeaderFailure
        The header, or why the file is not usable: ``is_dicom=False`` for files that are not
        DICOM (text, PDF, NIfTI...), else a CLX-E code and a one-line reason.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        return HeaderFailure(
            rel, True, InputError.code, f"cannot be opened ({exc.strerror})"
        )
    has_preamble = False
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return HeaderFailure(rel, True, InputError.code, "empty file (0 bytes)")
            head = fh.read(_CHUNK)
            has_preamble = len(head) >= 132 and head[128:132] == b"DICM"
            if not has_preamble and _looks_like_dataset(head) is None:
                return HeaderFailure(rel, False)
            if fast:
                try:
                    return _fast_header(fh, head, size, rel)
                except _Fallback:
                    pass
            return _read_with_pydicom(path, rel, size, has_preamble)
        except _NotDicom as exc:
            if has_preamble:
                return HeaderFailure(
                    rel,
                    True,
                    InputError.code,
                    f"DICM marker present but the header cannot be parsed ({exc}) - the file "
                    "is corrupt",
                )
            return HeaderFailure(rel, False)
        except InputError as exc:
            return HeaderFailure(rel, True, exc.code, exc.message)
        except (
            struct.error,
            UnicodeDecodeError,
            ValueError,
            OverflowError,
            MemoryError,
        ) as exc:
            return HeaderFailure(
                rel,
                True,
                InputError.code,
                f"the header cannot be parsed ({type(exc).__name__}) - the file is corrupt",
            )
        except OSError as exc:
            return HeaderFailure(
                rel, True, InputError.code, f"read error ({exc.strerror})"
            )


#: Names of the image transfer syntaxes, as pydicom's UID dictionary spells them (a test
#: checks): naming them needs no pydicom import, which costs the scan 0.3-0.45 s.
_SYNTAX_NAMES: dict[str, str] = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 and 4)",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, Non-Hierarchical, First-Order Prediction "
    "(Process 14 [Selection Value 1])",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless Image Compression",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless) Image Compression",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 Image Compression "
    "(Lossless Only)",
    "1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options Image "
    "Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}


def syntax_name(uid: str) -> str:
    """Human name of a transfer syntax UID (the UID itself when unknown)."""
    known = _SYNTAX_NAMES.get(uid)
    if known is not None:
        return known
    from pydicom.uid import UID

    name = UID(uid).name
    return str(name) if name else uid


def _skip_for_layout(h: FileHeader) -> Skipped | None:
    """Skip files that hold no image clisonix can convert (no pixels, colour)."""
    if not h.has_pixels:
        sop = h.get("SOPClassUID") or "?"
        kind = syntax_name(sop) if sop != "?" else "unknown SOP class"
        return Skipped(
            h.path,
            NoPixelDataError.code,
            f"no pixel data ({kind}, Modality {h.get('Modality') or '?'}): not an image, "
            "skipped",
        )
    info = h.pixel
    if info.samples_per_pixel != 1 or info.photometric.startswith(
        ("RGB", "YBR", "PALETTE", "HSV", "ARGB", "CMYK")
    ):
        return Skipped(
            h.path,
            UnsupportedImageError.code,
            f"(0028,0004) 'Photometric Interpretation' is {info.photometric or '?'} with "
            f"{info.samples_per_pixel} samples per pixel, expected MONOCHROME1/2 with 1 - "
            "colour images (secondary captures, ultrasound) are not converted",
        )
    if info.rows <= 0 or info.cols <= 0 or info.bits_allocated <= 0:
        return Skipped(
            h.path,
            UnsupportedImageError.code,
            f"the image matrix is {info.rows}x{info.cols} with {info.bits_allocated} bits "
            "allocated - (0028,0010)/(0028,0011)/(0028,0100) are missing or zero",
        )
    return None


def scan(
    root: Path,
    *,
    files: Sequence[Path] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Find the DICOM files under ``root`` by content and group them into stacks.

    Parameters
    ----------
    root : Path
        The input folder; every name in the result is relative to it.
    files : sequence of Path, optional
        Scan only these files (absolute, or relative to ``root``) instead of walking ``root``.
    progress : callable, optional
        Called as ``progress(done, total)`` while headers are read.

    Returns
    -------
    ScanResult
        Stacks in a stable order (study, series number, series UID, stack key), skipped files
        with codes, counts, and the transfer syntaxes present with their decoders.

    Raises
    ------
    InputUnreadableError
        ``root`` is not a readable folder.
    """
    from clisonix_cli.dicom.series import build_stacks

    names = list_files(root) if files is None else normalize_files(list(files), root)
    headers: list[FileHeader] = []
    skipped: list[Skipped] = []
    non_dicom: list[str] = []
    n_unreadable = 0
    total = len(names)
    for i, rel in enumerate(names):
        got = read_header(root / rel, rel)
        if isinstance(got, HeaderFailure):
            if not got.is_dicom:
                non_dicom.append(rel)
            else:
                skipped.append(Skipped(rel, got.code, got.reason))
                if got.reason.startswith(
                    ("cannot be opened", "empty file", "read error")
                ):
                    n_unreadable += 1
        else:
            skip = _skip_for_layout(got)
            if skip is not None:
                skipped.append(skip)
            else:
                headers.append(got)
        if progress is not None and (i + 1 == total or (i + 1) % 64 == 0):
            progress(i + 1, total)
    stacks, more_skipped = build_stacks(headers)
    skipped.extend(more_skipped)
    skipped.sort(key=lambda s: (s.path, s.code))
    n_dicom = total - len(non_dicom) - n_unreadable
    return ScanResult(
        root=str(root),
        stacks=stacks,
        skipped=skipped,
        n_files=total,
        n_dicom=n_dicom,
        n_non_dicom=len(non_dicom),
        transfer_syntaxes=_preflight(headers),
        non_dicom=non_dicom,
        n_unreadable=n_unreadable,
    )


def _preflight(headers: Sequence[FileHeader]) -> dict[str, dict[str, Any]]:
    """Transfer syntaxes present among image files, with file counts and their decoder."""
    from clisonix_cli.dicom.pixels import decoder_for

    counts = Counter(h.pixel.transfer_syntax for h in headers)
    out: dict[str, dict[str, Any]] = {}
    for uid in sorted(counts):
        decoder = decoder_for(uid)
        out[uid] = {
            "name": syntax_name(uid),
            "files": counts[uid],
            "decoder": decoder,
            "supported": decoder is not None,
        }
    return out


# --- the --json document ---------------------------------------------------------------

SCAN_SCHEMA = "clisonix.scan/1"


def _stack_spacing(stack: Stack) -> list[float] | None:
    geo = stack.geometry
    if geo is None:
        return None
    import numpy as np

    if stack.kind != "mosaic" and stack.n_slices > 1:
        pos = np.asarray(geo.positions[: stack.n_slices], dtype=np.float64)
        step = float(np.linalg.norm(pos[-1] - pos[0])) / (stack.n_slices - 1)
    else:
        step = float(geo.slice_spacing or 1.0)
    return [
        round(step, 6),
        round(geo.pixel_spacing[0], 6),
        round(geo.pixel_spacing[1], 6),
    ]


def _folder(files: Sequence[str]) -> str:
    parents = sorted({f.rsplit("/", 1)[0] if "/" in f else "." for f in files})
    return os.path.commonpath(parents) if parents and parents[0] != "." else "."


def stack_document(stack: Stack) -> dict[str, Any]:
    """The ``--json`` record of one stack (documented in docs/scan.md)."""
    shape = [stack.n_slices, stack.rows, stack.cols]
    if stack.n_volumes > 1:
        shape.insert(0, stack.n_volumes)
    return {
        "stack_key": stack.stack_key,
        "kind": stack.kind,
        "folder": _folder(stack.files),
        "n_files": len(set(stack.files)),
        "rows": stack.rows,
        "cols": stack.cols,
        "n_slices": stack.n_slices,
        "n_volumes": stack.n_volumes,
        "shape": shape,
        "spacing_mm": _stack_spacing(stack),
        "orientation": list(stack.geometry.orientation) if stack.geometry else None,
        "transfer_syntax": stack.transfer_syntax,
        "bits_allocated": stack.bits_allocated,
        "est_bytes": stack.est_bytes,
        "convertible": not any(p.blocking for p in stack.problems),
        "split_reason": stack.split_reason,
        "problems": [
            {"code": p.code, "message": p.message, "blocking": p.blocking}
            for p in stack.problems
        ],
    }


def scan_document(result: ScanResult) -> dict[str, Any]:
    """The whole ``clisonix scan --json`` document (documented in docs/scan.md).

    Parameters
    ----------
    result : ScanResult
        What :func:`scan` returned.

    Returns
    -------
    dict
        JSON-ready; no patient identifiers (the index never reads them).
    """
    studies: dict[str, dict[str, dict[str, Any]]] = {}
    for st in result.stacks:
        series = studies.setdefault(st.study_uid, {})
        rec = series.get(st.series_uid)
        if rec is None:
            rec = series[st.series_uid] = {
                "series_uid": st.series_uid,
                "series_number": st.series_number,
                "series_description": st.series_description,
                "modality": st.modality,
                "stacks": [],
            }
        rec["stacks"].append(stack_document(st))
    by_code: dict[str, dict[str, Any]] = {}
    for sk in result.skipped:
        entry = by_code.setdefault(
            sk.code, {"count": 0, "summary": _summary_of(sk.code)}
        )
        entry["count"] += 1
    n_series = sum(len(s) for s in studies.values())
    return {
        "schema": SCAN_SCHEMA,
        "root": result.root,
        "counts": {
            "files": result.n_files,
            "dicom": result.n_dicom,
            "non_dicom": result.n_non_dicom,
            "unreadable": result.n_unreadable,
            "skipped": len(result.skipped),
            "studies": len(studies),
            "series": n_series,
            "stacks": len(result.stacks),
            "convertible_stacks": sum(
                1 for st in result.stacks if not any(p.blocking for p in st.problems)
            ),
        },
        "transfer_syntaxes": [
            {"uid": uid, **info}
            for uid, info in sorted(result.transfer_syntaxes.items())
        ],
        "studies": [
            {"study_uid": uid, "series": list(series.values())}
            for uid, series in studies.items()
        ],
        "skipped": [
            {"path": s.path, "code": s.code, "reason": s.reason} for s in result.skipped
        ],
        "skipped_by_code": dict(sorted(by_code.items())),
        "non_dicom": list(result.non_dicom),
    }


def _summary_of(code: str) -> str:
    from clisonix_cli.errors import by_code

    cls = by_code(code)
    return "" if cls is None else cls.summary
