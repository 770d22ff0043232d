"""The native fast path: uncompressed pixel data read straight from the file.

With a :class:`~clisonix_cli.dicom.model.PixelInfo` from the index (uncompressed syntax,
``offset`` known) the bytes are read into a preallocated array (one ``readinto``),
byte-swapped for big endian, and the unused high bits are corrected as pydicom does (shift
left then right: masks unsigned values and sign-extends signed ones, PS3.5 8.1.1). No header
parse. The layout checks and bit helpers here serve the pydicom path too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.syntax import EXPLICIT_BE, NATIVE_SYNTAXES
from clisonix_cli.errors import (
    InputError,
    PixelDataSizeError,
    TruncatedFileError,
    UnsupportedImageError,
)
from clisonix_cli.fsio import open_regular

__all__ = [
    "check_layout",
    "check_out",
    "correct_unused_bits",
    "frame_indices",
    "hash_file",
    "native_dtype",
    "native_fast_path",
    "read_native_at",
    "unpack_frame_bits",
]

_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


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


def check_layout(
    name: str, samples: int, photometric: str, bits_allocated: int, bits_stored: int
) -> None:
    """Raise UnsupportedImageError unless the pixels are greyscale with a usable depth."""
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


def frame_indices(frames: Sequence[int] | None, n_frames: int, name: str) -> list[int]:
    """The wanted 0-based frame indices (all when None), each checked against the header."""
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


def correct_unused_bits(arr: np.ndarray, bits_allocated: int, bits_stored: int) -> None:
    """In place: ignore bits above BitsStored (mask unsigned, sign-extend signed)."""
    if bits_allocated > bits_stored and bits_allocated > 1:
        shift = bits_allocated - bits_stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)


def read_native_at(
    path: Path,
    info: PixelInfo,
    frames: Sequence[int] | None,
    name: str,
    out: np.ndarray | None = None,
    sha256: Any | None = None,
) -> np.ndarray:
    """Stored values of uncompressed frames read at ``info.offset`` (see ``read_frames``)."""
    assert info.offset is not None
    rows, cols, n_frames = info.rows, info.cols, max(info.n_frames, 1)
    idx = frame_indices(frames, n_frames, name)
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
        check_out(out, (len(idx), rows, cols), dtype, name)
    try:
        fh = open_regular(path, raw=True)  # never a FIFO; closed below
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
    correct_unused_bits(arr, bits, info.bits_stored)
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


def hash_file(path: Path, sha256: Any, name: str) -> None:
    """Feed every byte of the file to a hash."""
    try:
        with open_regular(path, raw=True) as fh:
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


def unpack_frame_bits(data: bytes, bit_start: int, rows: int, cols: int) -> np.ndarray:
    """One frame of 1-bit pixels, from ``bit_start`` in packed bytes, as uint8 0/1."""
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
        out[k] = unpack_frame_bits(bytes(buf), start - 8 * first, rows, cols)
    return out


def native_fast_path(info: PixelInfo) -> bool:
    """True when ``read_frames`` reads this file's pixels straight from ``info.offset``.

    Native (uncompressed) syntaxes with a known Pixel Data offset, except 1- and 8-bit big
    endian (OW may hold swapped byte pairs: pydicom reads those).
    """
    ts = info.transfer_syntax.strip("\x00 ")
    return (
        info.offset is not None
        and ts in NATIVE_SYNTAXES
        and not (ts == EXPLICIT_BE and info.bits_allocated < 16)
    )


def check_out(
    out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any], name: str
) -> None:
    """Raise ValueError unless ``out`` is a writable C-contiguous array of the frames' shape."""
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"{name}: read_frames(out=...) got a {out.dtype} array of {out.shape}, the "
            f"frames are {dtype} {tuple(shape)}"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"{name}: read_frames(out=...) needs a writable C-contiguous array"
        )
