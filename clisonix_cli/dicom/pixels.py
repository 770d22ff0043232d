"""Pixel decoding: stored values of greyscale DICOM frames as ``(F, R, C)`` arrays.

Two paths give the same values as pydicom's ``Dataset.pixel_array``:

- the fast native path (:mod:`~clisonix_cli.dicom.pixels_native`): with a
  :class:`~clisonix_cli.dicom.model.PixelInfo` from the index (uncompressed syntax,
  ``offset`` known) the bytes are read straight from the file into a preallocated array.
  No header parse.
- the pydicom path (:mod:`~clisonix_cli.dicom.pixels_pydicom`): ``dcmread``, the header's
  claim checked against the Pixel Data actually present, then decoded with an explicitly
  chosen plugin; 1-bit RLE and Deflated Image Frame Compression are decoded there too.

Colour and palette images (by the index's :class:`PixelInfo`) decode to RGB triples through
:mod:`~clisonix_cli.dicom.colour`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.colour import is_colour, read_colour_frames
from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels_native import (
    check_layout,
    check_out,
    hash_file,
    native_fast_path,
    read_native_at,
)
from clisonix_cli.dicom.pixels_pydicom import read_with_pydicom
from clisonix_cli.dicom.syntax import plugin_for

__all__ = ["read_frames"]


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
    sha256 : hash object, optional
        A ``hashlib``-like object (the manifest's, :func:`clisonix_cli.digest.hasher`)
        updated with every byte of the file, in order (the input digest of the manifest).
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
    if check_greyscale and info is not None and is_colour(info):
        if sha256 is not None:
            hash_file(path, sha256, name)
        rgb = read_colour_frames(path, frames, info, name, plugin_for)
        if out is None:
            return rgb
        check_out(out, rgb.shape, rgb.dtype, name)
        out[...] = rgb
        return out
    if info is not None and native_fast_path(info):
        check_layout(
            name,
            info.samples_per_pixel,
            info.photometric if check_greyscale else "",
            info.bits_allocated,
            info.bits_stored,
        )
        return read_native_at(path, info, frames, name, out, sha256)
    if sha256 is not None:
        hash_file(path, sha256, name)
    arr = read_with_pydicom(path, frames, name, check_greyscale)
    if out is None:
        return arr
    check_out(out, arr.shape, arr.dtype, name)
    out[...] = arr
    return out
