"""Pixel decoding: stored values of greyscale DICOM frames as ``(F, R, C)`` arrays.

Two paths give the same values as pydicom's ``Dataset.pixel_array``:

- the fast native path: with a :class:`~clisonix_cli.dicom.model.PixelInfo` from the index
  (uncompressed syntax, ``offset`` known) the bytes are read straight from the file into a
  preallocated array (one ``readinto``), byte-swapped for big endian, and the unused high
  bits are corrected as pydicom does (shift left then right: masks unsigned values and
  sign-extends signed ones, PS3.5 8.1.1). No header parse.
- the pydicom path: ``dcmread``, the header's claim checked against the Pixel Data actually
  present (before anything the size of the claim is allocated), then decoded with an
  explicitly chosen plugin (pylibjpeg-rle for RLE: about 10x faster than pydicom's own).

Extras that pydicom 3.0 lacks: 1-bit RLE frames (segmentations) and the Deflated Image
Frame Compression syntax (1.2.840.10008.1.2.8.1) are decoded here.

Only greyscale stacks are converted: ``SamplesPerPixel`` 1 and MONOCHROME1/2. Colour and
palette images raise :class:`~clisonix_cli.errors.UnsupportedImageError`.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.errors import (
    ClisonixError,
    DecodeError,
    InputError,
    NoPixelDataError,
    PixelDataSizeError,
    TruncatedFileError,
    UnsupportedImageError,
    UnsupportedSyntaxError,
)

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = (
    "1.2.840.10008.1.2.1.99"  # whole dataset deflated; pixels native once inflated
)
DEFLATED_FRAMES = (
    "1.2.840.10008.1.2.8.1"  # Deflated Image Frame Compression (per frame)
)
RLE = "1.2.840.10008.1.2.5"

NATIVE_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE})
_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
_JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
_JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_J2K = (
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
)

# (pydicom plugin name, the name we report), most preferred first. pylibjpeg first: it is
# the fastest here (RLE 0.7 vs 7 ms/slice, NOTES.md) and single-threaded, so --jobs scales.
_PLUGINS: dict[str, tuple[tuple[str, str], ...]] = {
    RLE: (("pylibjpeg", "pylibjpeg-rle"), ("pydicom", "pydicom-rle"), ("gdcm", "gdcm")),
    **{
        u: (("pylibjpeg", "pylibjpeg-libjpeg"), ("gdcm", "gdcm"), ("pillow", "pillow"))
        for u in _JPEG
    },
    **{
        u: (("pylibjpeg", "pylibjpeg-libjpeg"), ("gdcm", "gdcm"))
        for u in _JPEG_LOSSLESS
    },
    **{
        u: (
            ("pylibjpeg", "pylibjpeg-libjpeg"),
            ("pyjpegls", "pyjpegls"),
            ("gdcm", "gdcm"),
        )
        for u in _JPEG_LS
    },
    **{
        u: (("pylibjpeg", "pylibjpeg-openjpeg"), ("gdcm", "gdcm"), ("pillow", "pillow"))
        for u in _J2K
    },
}

_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"  # (7FE0,0010) as stored in little endian
_PIXEL_TAG_BE = b"\x7f\xe0\x00\x10"
# RLE (PS3.5 G.3.1): a 2-byte replicate run decodes to at most 128 bytes.
_RLE_MAX_RATIO = 64


@lru_cache(maxsize=64)
def _plugin(transfer_syntax_uid: str) -> tuple[str, str] | None:
    """(pydicom plugin, reported name) of the preferred installed decoder, or None."""
    if transfer_syntax_uid in NATIVE_SYNTAXES:
        return ("", "native")
    if transfer_syntax_uid == DEFLATED_LE:
        return ("", "pydicom-deflate")
    if transfer_syntax_uid == DEFLATED_FRAMES:
        return ("", "zlib")
    choices = _PLUGINS.get(transfer_syntax_uid)
    if not choices:
        return None
    from pydicom.pixels.decoders.base import get_decoder

    try:
        available = set(get_decoder(transfer_syntax_uid).available_plugins)
    except NotImplementedError:
        return None
    for plugin, name in choices:
        if plugin in available:
            return (plugin, name)
    return None


def decoder_for(transfer_syntax_uid: str) -> str | None:
    """Name the installed decoder that :func:`read_frames` uses for a transfer syntax.

    Parameters
    ----------
    transfer_syntax_uid : str
        (0002,0010) Transfer Syntax UID.

    Returns
    -------
    str or None
        ``"native"`` (uncompressed), ``"pydicom-deflate"``, ``"zlib"``,
        ``"pylibjpeg-rle"``, ``"pydicom-rle"``, ``"pylibjpeg-libjpeg"``,
        ``"pylibjpeg-openjpeg"``, ``"pyjpegls"``, ``"gdcm"``, ``"pillow"``; None when no
        installed plugin decodes the syntax (the scan's decoder preflight reports it).
    """
    found = _plugin(str(transfer_syntax_uid).strip())
    return None if found is None else found[1]


def native_dtype(bits_allocated: int, pixel_representation: int) -> np.dtype[Any]:
    """The native-endian dtype holding stored values (BitsAllocated 1 unpacks to uint8).

    Raises
    ------
    UnsupportedImageError
        BitsAllocated not in 1, 8, 16, 32.
    """
    if bits_allocated == 1:
        return np.dtype(np.uint8)
    if bits_allocated not in (8, 16, 32):
        raise UnsupportedImageError(
            f"(0028,0100) 'Bits Allocated' is {bits_allocated}, expected 1, 8, 16 or 32"
        )
    kind = "i" if pixel_representation == 1 else "u"
    return np.dtype(f"={kind}{bits_allocated // 8}")


def _check_layout(
    name: str, samples: int, photometric: str, bits_allocated: int, bits_stored: int
) -> None:
    if samples != 1 or (photometric and photometric not in _GREYSCALE):
        raise UnsupportedImageError(
            f"{name}: pixels are {photometric or 'unknown'} with {samples} sample(s) per "
            "pixel, expected greyscale (MONOCHROME1/2, 1 sample) - colour and palette "
            "images are not converted; export a greyscale series instead"
        )
    if bits_allocated not in (1, 8, 16, 32):
        raise UnsupportedImageError(
            f"{name}: (0028,0100) 'Bits Allocated' is {bits_allocated}, expected 1, 8, 16 "
            "or 32"
        )
    if not 1 <= bits_stored <= bits_allocated:
        raise UnsupportedImageError(
            f"{name}: (0028,0101) 'Bits Stored' is {bits_stored}, expected 1 to "
            f"{bits_allocated} (Bits Allocated) - the header is corrupt"
        )


def _frame_indices(frames: Sequence[int] | None, n_frames: int, name: str) -> list[int]:
    if frames is None:
        return list(range(n_frames))
    idx = [int(i) for i in frames]
    bad = [i for i in idx if not 0 <= i < n_frames]
    if bad:
        raise PixelDataSizeError(
            f"{name}: frame index {bad[0]} requested but the header declares {n_frames} "
            "frame(s) - the stack was planned from a different version of this file; "
            "scan again"
        )
    return idx


def _correct_unused_bits(
    arr: np.ndarray, bits_allocated: int, bits_stored: int
) -> None:
    """In place: ignore bits above BitsStored (mask unsigned, sign-extend signed)."""
    if bits_allocated > bits_stored and bits_allocated > 1:
        shift = bits_allocated - bits_stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)


def pixel_info(path: Path, *, label: str | None = None) -> PixelInfo:
    """Read one file's pixel layout with pydicom (header only, Pixel Data not loaded).

    The index (D1's ``scan``) builds the same record from its own header pass; this one is
    the reference, used by tests and by callers that have no index.

    Raises
    ------
    NoPixelDataError, InputError, TruncatedFileError
        As :func:`read_frames`.
    """
    from pydicom import dcmread

    name = label if label is not None else str(path)
    try:
        ds = dcmread(path, defer_size=256, force=True)
        tag = next(
            (t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), None
        )  # Pixel Data, Float Pixel Data, Double Float Pixel Data
        ts = _transfer_syntax(ds)
        if tag is None:
            if _file_has_pixel_tag(path):
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
            f"{_first_line(exc)}) - the header is corrupt"
        ) from None


# --- the fast native path ----------------------------------------------------------------


def _read_native_at(
    path: Path,
    info: PixelInfo,
    frames: Sequence[int] | None,
    name: str,
    out: np.ndarray | None = None,
    sha256: Any | None = None,
) -> np.ndarray:
    assert info.offset is not None
    rows, cols, n_frames = info.rows, info.cols, max(info.n_frames, 1)
    idx = _frame_indices(frames, n_frames, name)
    bits = info.bits_allocated
    pixels_per_frame = rows * cols
    claimed = math.ceil(pixels_per_frame * n_frames * bits / 8)
    if info.length is not None and info.length < claimed:
        raise PixelDataSizeError(
            f"{name}: header claims {n_frames} frame(s) of {rows}x{cols} at {bits} bits = "
            f"{claimed} bytes, the Pixel Data element holds {info.length} bytes - the "
            "file is truncated or its header is wrong; re-export it"
        )
    dtype = native_dtype(bits, info.pixel_representation)
    if out is not None:
        _check_out(out, (len(idx), rows, cols), dtype, name)
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        available = size - info.offset
        if available < claimed:
            raise PixelDataSizeError(
                f"{name}: header claims {n_frames} frame(s) of {rows}x{cols} at {bits} "
                f"bits = {claimed} bytes of Pixel Data, the file holds "
                f"{max(available, 0)} bytes after offset {info.offset} - the file is "
                "truncated or its header is wrong; re-export it"
            )
        whole = idx == list(range(n_frames)) and bits != 1
        if sha256 is not None and whole:
            # One pass: header, the pixels straight into the array, then the rest.
            _hash_range(fh, 0, info.offset, sha256, name)
        if bits == 1:
            arr = _read_bit_packed(fh, info.offset, idx, rows, cols, name)
            if out is not None:
                out[...] = arr
                arr = out
        else:
            arr = _read_bytes_into(fh, info.offset, idx, rows, cols, dtype, name, out)
        if sha256 is not None:
            if whole:
                sha256.update(arr.reshape(-1).view(np.uint8).data)
                _hash_range(fh, info.offset + claimed, size, sha256, name)
            else:
                _hash_range(fh, 0, size, sha256, name)
    if info.transfer_syntax == EXPLICIT_BE and dtype.itemsize > 1:
        arr.byteswap(inplace=True)
    _correct_unused_bits(arr, bits, info.bits_stored)
    return arr


def _hash_range(fh: Any, start: int, stop: int, sha256: Any, name: str) -> None:
    """Feed bytes ``[start, stop)`` of an open file to a hash, 1 MiB at a time."""
    fh.seek(start)
    buf = bytearray(min(max(stop - start, 0), 1 << 20))
    view = memoryview(buf)
    left = stop - start
    while left > 0:
        n = fh.readinto(view[: min(left, len(buf))])
        if not n:
            raise TruncatedFileError(
                f"{name}: file ended {left} bytes early while being hashed - it changed "
                "or was truncated while being read; check the copy"
            )
        sha256.update(view[:n])
        left -= n


def _hash_file(path: Path, sha256: Any, name: str) -> None:
    try:
        with open(path, "rb", buffering=0) as fh:
            _hash_range(fh, 0, os.fstat(fh.fileno()).st_size, sha256, name)
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from None


def _readinto_exact(fh: Any, buf: memoryview, name: str) -> None:
    got = 0
    while got < len(buf):
        n = fh.readinto(buf[got:])
        if not n:
            raise TruncatedFileError(
                f"{name}: file ended after {got} of {len(buf)} pixel bytes - it changed "
                "or was truncated while being read; check the copy"
            )
        got += n


def _read_bytes_into(
    fh: Any,
    offset: int,
    idx: list[int],
    rows: int,
    cols: int,
    dtype: np.dtype[Any],
    name: str,
    out: np.ndarray | None = None,
) -> np.ndarray:
    if out is None:
        out = np.empty((len(idx), rows, cols), dtype=dtype)
    frame_bytes = rows * cols * dtype.itemsize
    if not idx:
        return out
    contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
    if contiguous:
        fh.seek(offset + idx[0] * frame_bytes)
        _readinto_exact(fh, out.reshape(-1).view(np.uint8).data, name)
    else:
        for k, i in enumerate(idx):
            fh.seek(offset + i * frame_bytes)
            _readinto_exact(fh, out[k].reshape(-1).view(np.uint8).data, name)
    return out


def _unpack_frame_bits(data: bytes, bit_start: int, rows: int, cols: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return bits[bit_start : bit_start + rows * cols].reshape(rows, cols)


def _read_bit_packed(
    fh: Any, offset: int, idx: list[int], rows: int, cols: int, name: str
) -> np.ndarray:
    # PS3.5 8.1.1: 1-bit frames follow each other with no padding to a byte boundary.
    out = np.empty((len(idx), rows, cols), dtype=np.uint8)
    n = rows * cols
    for k, i in enumerate(idx):
        start, stop = i * n, (i + 1) * n
        first, last = start // 8, math.ceil(stop / 8)
        buf = bytearray(last - first)
        fh.seek(offset + first)
        _readinto_exact(fh, memoryview(buf), name)
        out[k] = _unpack_frame_bits(bytes(buf), start - 8 * first, rows, cols)
    return out


# --- the pydicom path --------------------------------------------------------------------


def _file_has_pixel_tag(path: Path) -> bool:
    """True when the bytes of the (7FE0,0010) tag occur in the file (chunked scan)."""
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            chunk = tail + block
            if _PIXEL_TAG_LE in chunk or _PIXEL_TAG_BE in chunk:
                return True
            tail = block[-3:]
    return False


def _dcmread(path: Path, name: str) -> Any:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        try:
            ds = dcmread(path)
        except InvalidDicomError:
            # No 'DICM' preamble: old ACR-NEMA style files; read with a guessed encoding.
            ds = dcmread(path, force=True)
    except FileNotFoundError:
        raise InputError(f"{name}: file not found - it was moved or deleted") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from None
    except EOFError:
        raise TruncatedFileError(
            f"{name}: file ends inside its header - the copy is truncated; re-export it"
        ) from None
    except Exception as exc:  # pydicom raises many kinds on corrupt headers
        raise InputError(
            f"{name}: header cannot be parsed as DICOM ({type(exc).__name__}: "
            f"{_first_line(exc)})"
        ) from None
    return ds


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def _transfer_syntax(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts).strip()
    implicit, little = ds.original_encoding
    if little is False:
        return EXPLICIT_BE
    return IMPLICIT_LE if implicit in (True, None) else EXPLICIT_LE


def read_frames(
    path: Path,
    *,
    frames: Sequence[int] | None = None,
    info: PixelInfo | None = None,
    label: str | None = None,
    check_greyscale: bool = True,
    out: np.ndarray | None = None,
    sha256: Any | None = None,
) -> np.ndarray:
    """Read the stored pixel values of one DICOM file as ``(F, R, C)``.

    Parameters
    ----------
    path : Path
        The DICOM file.
    frames : sequence of int, optional
        0-based frame indices, in the order wanted; all frames when None.
    info : PixelInfo, optional
        The layout the index read. With a native syntax and a known ``offset`` the pixels
        are read straight from the file (no header parse); otherwise pydicom reads it.
    label : str, optional
        How to name the file in error messages (the path relative to the input root);
        defaults to ``str(path)``.
    check_greyscale : bool
        True (the product contract): anything but MONOCHROME1/2 raises
        UnsupportedImageError. False: single-sample non-greyscale data (palette indices)
        is decoded too, for tests and diagnostics; multi-sample data still raises.
    out : (F, R, C) ndarray, optional
        A writable C-contiguous array of exactly the shape and stored type of the frames
        (e.g. a slice of the caller's whole volume). On the native fast path the file's
        bytes are read straight into it (no other buffer); otherwise the decoded frames
        are copied in. It is returned.
    sha256 : hashlib object, optional
        Updated with every byte of the file, in order (the input digest of the manifest).
        On the native fast path with all frames wanted this costs no second read: the
        header, the pixels as they land in the array, and the bytes after them are hashed
        from the same reads. Otherwise the file is hashed in a separate pass.

    Returns
    -------
    (F, R, C) ndarray
        Stored values, native byte order: uint8/int8, uint16/int16 or uint32/int32 after
        (0028,0103) Pixel Representation; uint8 0/1 for 1-bit data; float32/float64 for
        Float / Double Float Pixel Data. The same values as pydicom's ``pixel_array``.

    Raises
    ------
    PixelDataSizeError
        The header claims more pixel data than the file holds (checked before
        allocating), or a frame index is out of range.
    UnsupportedImageError
        Colour, palette, or an unusual bit depth.
    UnsupportedSyntaxError
        No installed decoder handles the transfer syntax.
    DecodeError
        The decoder failed on the compressed data.
    TruncatedFileError, NoPixelDataError, InputError
        The file ends early, holds no pixel data, or is not readable DICOM.
    ValueError
        ``out`` does not have the frames' shape and type, or is not writable and
        C-contiguous (a caller's bug, not the file's).
    """
    name = label if label is not None else str(path)
    if info is not None and info.transfer_syntax != info.transfer_syntax.strip("\x00 "):
        info = replace(info, transfer_syntax=info.transfer_syntax.strip("\x00 "))
    if info is not None and native_fast_path(info):
        _check_layout(
            name,
            info.samples_per_pixel,
            info.photometric if check_greyscale else "",
            info.bits_allocated,
            info.bits_stored,
        )
        return _read_native_at(path, info, frames, name, out, sha256)
    if sha256 is not None:
        _hash_file(path, sha256, name)
    arr = _read_with_pydicom(path, frames, name, check_greyscale)
    if out is None:
        return arr
    _check_out(out, arr.shape, arr.dtype, name)
    out[...] = arr
    return out


def native_fast_path(info: PixelInfo) -> bool:
    """True when :func:`read_frames` reads this file's pixels straight from ``info.offset``.

    Native (uncompressed) syntaxes with a known Pixel Data offset, except 1- and 8-bit big
    endian (OW may hold swapped byte pairs: pydicom reads those).
    """
    ts = info.transfer_syntax.strip("\x00 ")
    return (
        info.offset is not None
        and ts in NATIVE_SYNTAXES
        and not (ts == EXPLICIT_BE and info.bits_allocated < 16)
    )


def _check_out(
    out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any], name: str
) -> None:
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"{name}: read_frames(out=...) got a {out.dtype} array of {out.shape}, the "
            f"frames are {dtype} {tuple(shape)}"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"{name}: read_frames(out=...) needs a writable C-contiguous array"
        )


def _read_with_pydicom(
    path: Path, frames: Sequence[int] | None, name: str, check_greyscale: bool
) -> np.ndarray:
    ds = _dcmread(path, name)
    ts = _transfer_syntax(ds)
    keyword = next(
        (k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds),
        None,
    )
    if keyword is None:
        if _file_has_pixel_tag(path):
            raise TruncatedFileError(
                f"{name}: the file ends inside its (7FE0,0010) 'Pixel Data' element - "
                "the copy is truncated; re-export it"
            )
        raise NoPixelDataError(
            f"{name}: no (7FE0,0010) 'Pixel Data' ({ds.get('Modality', '?')} object) - "
            "not an image; skipped"
        )
    try:
        rows = int(ds.Rows)
        cols = int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
        bits_allocated = int(ds.BitsAllocated)
        bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
        pixel_rep = int(ds.get("PixelRepresentation", 0) or 0)
        n_frames = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(
            f"{name}: the image pixel module (0028,xxxx) is incomplete or invalid "
            f"({_first_line(exc)}) - the header is corrupt"
        ) from None
    if rows < 1 or cols < 1:
        raise PixelDataSizeError(
            f"{name}: header claims {rows}x{cols} pixels - the header is corrupt"
        )
    if not check_greyscale:
        photometric = ""
    if keyword != "PixelData":
        _check_layout(name, samples, photometric, 8, 8)
        return _float_pixels(ds, keyword, frames, n_frames, name)
    _check_layout(name, samples, photometric, bits_allocated, bits_stored)
    idx = _frame_indices(frames, n_frames, name)
    if ts == DEFLATED_LE:
        ts_native = EXPLICIT_LE  # dcmread inflated the dataset: the pixels are native
    else:
        ts_native = ts
    if ts_native in NATIVE_SYNTAXES:
        layout = (rows, cols, n_frames, bits_allocated, bits_stored, pixel_rep)
        vr = str(ds["PixelData"].VR)
        return _native_from_value(ds.PixelData, ts_native, vr, layout, idx, name)
    plugin = _plugin(ts)
    if plugin is None:
        from pydicom.uid import UID

        raise UnsupportedSyntaxError(
            f"{name}: transfer syntax {ts} ({UID(ts).name}) has no installed decoder - "
            "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle, or "
            "decompress the files first (gdcmconv --raw, dcmdjpeg)"
        )
    encoded = _encapsulated_frames(ds.PixelData, ds, n_frames, idx, name)
    _check_codestreams(ts, encoded, rows, cols, bits_allocated, name)
    if ts == DEFLATED_FRAMES:
        return _inflate_frames(
            encoded, rows, cols, bits_allocated, bits_stored, pixel_rep, name
        )
    if ts == RLE and bits_allocated == 1:
        return _rle_bit_frames(encoded, rows, cols, name)
    return _decode_with_plugin(ds, idx, n_frames, rows, cols, plugin, name)


def _native_from_value(
    value: bytes,
    ts: str,
    vr: str,
    layout: tuple[int, int, int, int, int, int],
    idx: list[int],
    name: str,
) -> np.ndarray:
    """Stored values from an uncompressed Pixel Data value (pydicom path)."""
    rows, cols, n_frames, bits_allocated, bits_stored, pixel_rep = layout
    claimed = math.ceil(rows * cols * n_frames * bits_allocated / 8)
    if len(value) < claimed:
        raise PixelDataSizeError(
            f"{name}: header claims {n_frames} frame(s) of {rows}x{cols} at "
            f"{bits_allocated} bits = {claimed} bytes, the Pixel Data holds {len(value)} "
            "bytes - the file is truncated or its header is wrong; re-export it"
        )
    big = ts == EXPLICIT_BE
    if big and bits_allocated in (1, 8) and vr == "OW":
        # PS3.5 8.1.1: OW is a stream of 16-bit words; in big endian the two bytes of
        # each word are swapped relative to the pixel (or bit) order.
        value = (
            np.frombuffer(value, dtype=np.uint16, count=len(value) // 2)
            .byteswap()
            .tobytes()
        )
    if bits_allocated == 1:
        n = rows * cols
        packed = np.empty((len(idx), rows, cols), dtype=np.uint8)
        for k, i in enumerate(idx):
            first, last = i * n // 8, math.ceil((i + 1) * n / 8)
            packed[k] = _unpack_frame_bits(
                value[first:last], i * n - 8 * first, rows, cols
            )
        return packed
    dtype = native_dtype(bits_allocated, pixel_rep)
    src = np.frombuffer(
        value,
        dtype=dtype.newbyteorder(">" if big else "<"),
        count=rows * cols * n_frames,
    ).reshape(n_frames, rows, cols)
    out = src[idx].astype(dtype)  # fancy indexing copies: a writable native array
    _correct_unused_bits(out, bits_allocated, bits_stored)
    return out


def _encapsulated_frames(
    value: bytes, ds: Any, n_frames: int, idx: list[int], name: str
) -> list[bytes]:
    """The encoded bytes of each wanted frame, after checking the fragment count."""
    from pydicom.encaps import get_frame, parse_basic_offsets, parse_fragments

    try:
        buf = io.BytesIO(value)
        parse_basic_offsets(buf)
        n_fragments, _ = parse_fragments(buf)
    except Exception as exc:
        raise TruncatedFileError(
            f"{name}: the encapsulated Pixel Data items cannot be parsed "
            f"({_first_line(exc)}) - the file is truncated or corrupt; re-export it"
        ) from None
    if n_fragments < n_frames:
        raise PixelDataSizeError(
            f"{name}: header claims {n_frames} frame(s), the encapsulated Pixel Data "
            f"holds {n_fragments} fragment(s) - the file is truncated or its (0028,0008) "
            "'Number of Frames' is wrong; re-export it"
        )
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    out: list[bytes] = []
    for i in idx:
        try:
            out.append(
                get_frame(
                    value, i, number_of_frames=n_frames, extended_offsets=extended
                )
            )
        except Exception as exc:
            raise TruncatedFileError(
                f"{name}: frame {i} cannot be located in the encapsulated Pixel Data "
                f"({_first_line(exc)}) - the file is truncated or corrupt; re-export it"
            ) from None
    return out


def _codestream_shape(ts: str, frame: bytes) -> tuple[int, int] | None:
    """(rows, cols) as the codestream itself declares them, None when not found."""
    if ts in _J2K:
        # SOC then SIZ (PS3.5 A.4.4; ISO 15444-1 A.5.1): Xsiz, Ysiz, XOsiz, YOsiz.
        at = frame.find(b"\xff\x4f\xff\x51")
        if at < 0 or len(frame) < at + 24:
            return None
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", frame[at + 8 : at + 24])
        return (ysiz - yo, xsiz - xo)
    if ts in _JPEG or ts in _JPEG_LOSSLESS or ts in _JPEG_LS:
        # Walk the marker segments up to the first SOFn (ITU T.81 B.2.2; T.87 SOF55).
        pos = 2 if frame[:2] == b"\xff\xd8" else -1
        while 0 <= pos < len(frame) - 9:
            if frame[pos] != 0xFF:
                return None
            marker = frame[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            length = struct.unpack(">H", frame[pos + 2 : pos + 4])[0]
            is_sof = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
            if is_sof or marker == 0xF7:
                height, width = struct.unpack(">HH", frame[pos + 5 : pos + 9])
                return (height, width) if height else None  # 0: defined by DNL later
            pos += 2 + length
        return None
    return None


def _check_codestreams(
    ts: str, encoded: list[bytes], rows: int, cols: int, bits_allocated: int, name: str
) -> None:
    """Reject a header whose claim the encoded frames cannot hold, before decoding."""
    frame_bytes = math.ceil(rows * cols * bits_allocated / 8)
    for k, frame in enumerate(encoded):
        if ts == RLE:
            if frame_bytes > _RLE_MAX_RATIO * len(frame):
                raise PixelDataSizeError(
                    f"{name}: header claims {rows}x{cols} at {bits_allocated} bits = "
                    f"{frame_bytes} bytes per frame, more than RLE can expand "
                    f"{len(frame)} encoded bytes into - the header is wrong or the file "
                    "is truncated; re-export it"
                )
            continue
        shape = _codestream_shape(ts, frame)
        if shape is not None and shape != (rows, cols):
            raise PixelDataSizeError(
                f"{name}: header claims {rows}x{cols} pixels, the codestream of frame "
                f"{k} holds {shape[0]}x{shape[1]} - the header is wrong; re-export it"
            )


def _inflate_frames(
    encoded: list[bytes],
    rows: int,
    cols: int,
    bits_allocated: int,
    bits_stored: int,
    pixel_rep: int,
    name: str,
) -> np.ndarray:
    """Deflated Image Frame Compression: each frame is raw deflate (RFC 1951) of native LE."""
    frame_bytes = math.ceil(rows * cols * bits_allocated / 8)
    dtype = native_dtype(bits_allocated, pixel_rep)
    out = np.empty((len(encoded), rows, cols), dtype=dtype)
    for k, frame in enumerate(encoded):
        try:
            # max_length bounds the allocation by the header's claim (zip-bomb safe).
            raw = zlib.decompressobj(-15).decompress(frame, frame_bytes)
        except zlib.error as exc:
            raise DecodeError(
                f"{name}: frame {k} is not valid deflate data ({exc}) - the file is "
                "corrupt; re-export it"
            ) from None
        if len(raw) < frame_bytes:
            raise PixelDataSizeError(
                f"{name}: frame {k} inflates to {len(raw)} bytes, the header claims "
                f"{frame_bytes} - the header is wrong or the file truncated; re-export it"
            )
        if bits_allocated == 1:
            out[k] = _unpack_frame_bits(raw, 0, rows, cols)
        else:
            out[k] = np.frombuffer(
                raw, dtype=dtype.newbyteorder("<"), count=rows * cols
            ).reshape(rows, cols)
    _correct_unused_bits(out, bits_allocated, bits_stored)
    return out


def _rle_bit_frames(
    encoded: list[bytes], rows: int, cols: int, name: str
) -> np.ndarray:
    """1-bit RLE (pydicom 3.0 cannot): one segment of byte-aligned packed bits per frame."""
    out = np.empty((len(encoded), rows, cols), dtype=np.uint8)
    frame_bytes = math.ceil(rows * cols / 8)
    for k, frame in enumerate(encoded):
        header = struct.unpack("<16L", frame[:64]) if len(frame) >= 64 else (0,)
        if header[0] != 1 or header[1] != 64:
            raise DecodeError(
                f"{name}: 1-bit RLE frame {k} has {header[0]} segment(s), expected 1 "
                "(PS3.5 G.5) - the file is corrupt; re-export it"
            )
        raw = _rle_segment(frame[64:], frame_bytes)
        if len(raw) < frame_bytes:
            raise PixelDataSizeError(
                f"{name}: 1-bit RLE frame {k} decodes to {len(raw)} bytes, the header "
                f"claims {frame_bytes} - the header is wrong; re-export it"
            )
        out[k] = _unpack_frame_bits(raw, 0, rows, cols)
    return out


def _rle_segment(src: bytes, max_len: int) -> bytes:
    """Decode one PackBits RLE segment (PS3.5 G.3.1), stopping at ``max_len`` bytes."""
    out = bytearray()
    pos, n = 0, len(src)
    while pos < n and len(out) < max_len:
        header = src[pos]
        pos += 1
        if header < 128:  # copy the next header + 1 bytes literally
            out += src[pos : pos + header + 1]
            pos += header + 1
        elif header > 128:  # repeat the next byte 257 - header times
            if pos < n:
                out += src[pos : pos + 1] * (257 - header)
            pos += 1
        # header == 128: no operation
    return bytes(out[:max_len])


def _decode_with_plugin(
    ds: Any,
    idx: list[int],
    n_frames: int,
    rows: int,
    cols: int,
    plugin: tuple[str, str],
    name: str,
) -> np.ndarray:
    from pydicom.pixels.utils import pixel_array

    try:
        if idx == list(range(n_frames)):
            arr = pixel_array(ds, decoding_plugin=plugin[0], raw=True)
            arr = arr.reshape(len(idx), rows, cols)
        else:
            arr = np.stack(
                [
                    pixel_array(ds, index=i, decoding_plugin=plugin[0], raw=True)
                    for i in idx
                ]
            ).reshape(len(idx), rows, cols)
    except ClisonixError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"{name}: {plugin[1]} could not decode the pixel data "
            f"({type(exc).__name__}: {_first_line(exc)}) - the file is corrupt or "
            "truncated; re-export it"
        ) from None
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


def _float_pixels(
    ds: Any, keyword: str, frames: Sequence[int] | None, n_frames: int, name: str
) -> np.ndarray:
    rows, cols = int(ds.Rows), int(ds.Columns)
    size = 4 if keyword == "FloatPixelData" else 8
    value = ds[keyword].value
    claimed = rows * cols * n_frames * size
    if len(value) < claimed:
        raise PixelDataSizeError(
            f"{name}: header claims {n_frames} frame(s) of {rows}x{cols} floats = "
            f"{claimed} bytes, the {keyword} element holds {len(value)} bytes - the file "
            "is truncated or its header is wrong; re-export it"
        )
    big = _transfer_syntax(ds) == EXPLICIT_BE
    src = np.frombuffer(
        value,
        dtype=np.dtype(f"{'>' if big else '<'}f{size}"),
        count=rows * cols * n_frames,
    ).reshape(n_frames, rows, cols)
    idx = _frame_indices(frames, n_frames, name)
    return src[idx].astype(np.dtype(f"=f{size}"))
