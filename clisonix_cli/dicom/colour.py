"""Colour pixel data: RGB, YBR_FULL, YBR_FULL_422, YBR_RCT/ICT and PALETTE COLOR to RGB.

Every colour image decodes to one R, G, B triple per pixel, held as the structured type of
:func:`rgb_dtype` (``(F, R, C)`` frames of ``[("R", u), ("G", u), ("B", u)]``): the volume
keeps its (S, R, C) shape through the rooms, and its C-order bytes are exactly the
interleaved RGB that NIfTI RGB24, NumPy ``(..., 3)`` and PNG store.

The conversions are pydicom's own (PS3.3 C.7.6.3.1.2, C.7.9): the decoder plugin and
``convert_color_space`` for the YBR models (JPEG 2000's reversible and irreversible colour
transforms, YBR_RCT/ICT, are undone by the codec), planar configuration 0 and 1 alike, and
``apply_color_lut`` for palettes, segmented ones included. The layout is checked first, so
that a header that contradicts itself fails with one line and a stable code.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.errors import (
    ClisonixError,
    ColourLayoutError,
    DecodeError,
    PaletteError,
    UnsupportedImageError,
)

__all__ = [
    "COLOUR_MODELS",
    "colour_problem",
    "is_colour",
    "read_colour_frames",
    "rgb_dtype",
    "to_channels",
]

#: Colour models clisonix decodes (samples per pixel of each).
COLOUR_MODELS: dict[str, int] = {
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_PARTIAL_422": 3,
    "YBR_PARTIAL_420": 3,
    "YBR_RCT": 3,
    "YBR_ICT": 3,
    "PALETTE COLOR": 1,
}
_GREY = ("MONOCHROME1", "MONOCHROME2")
_PALETTE_TAGS = (
    ("Red", "(0028,1101)", "(0028,1201)", "(0028,1221)"),
    ("Green", "(0028,1102)", "(0028,1202)", "(0028,1222)"),
    ("Blue", "(0028,1103)", "(0028,1203)", "(0028,1223)"),
)


def rgb_dtype(itemsize: int) -> np.dtype[Any]:
    """The structured RGB type with unsigned channels of ``itemsize`` bytes (1, 2 or 4)."""
    base = np.dtype(f"=u{itemsize}")
    return np.dtype([("R", base), ("G", base), ("B", base)])


def is_rgb(dtype: np.dtype[Any]) -> bool:
    """True for a structured RGB type of :func:`rgb_dtype`."""
    return dtype.names == ("R", "G", "B")


def to_channels(arr: np.ndarray) -> np.ndarray:
    """A view of a structured RGB array as plain values with a trailing axis of 3."""
    base = arr.dtype.fields["R"][0]  # type: ignore[index]
    return arr.view(base).reshape(*arr.shape, 3)


def is_colour(info: PixelInfo) -> bool:
    """True when the header declares colour pixels (or samples that are not greyscale)."""
    return info.samples_per_pixel != 1 or info.photometric not in ("", *_GREY)


def colour_problem(info: PixelInfo) -> tuple[str, str] | None:
    """(code, reason) when a colour or greyscale layout contradicts itself, else None."""
    pi, spp = info.photometric, info.samples_per_pixel
    if pi in _GREY or pi == "":
        if spp != 1:
            return (
                ColourLayoutError.code,
                (
                    f"(0028,0004) 'Photometric Interpretation' is {pi or 'missing'} with "
                    f"(0028,0002) 'Samples per Pixel' {spp}, expected 1 for greyscale - the "
                    "header contradicts itself; fix one of the two"
                ),
            )
        return None
    want = COLOUR_MODELS.get(pi)
    if want is None:
        return (
            ColourLayoutError.code,
            (
                f"(0028,0004) 'Photometric Interpretation' is {pi!r}, not a colour model "
                f"clisonix decodes ({', '.join(COLOUR_MODELS)}, MONOCHROME1/2)"
            ),
        )
    if spp != want:
        return (
            ColourLayoutError.code,
            (
                f"(0028,0004) 'Photometric Interpretation' is {pi} with (0028,0002) 'Samples "
                f"per Pixel' {spp}, expected {want} - the header contradicts itself"
            ),
        )
    if info.bits_allocated not in (8, 16, 32) and not (
        pi == "PALETTE COLOR" and info.bits_allocated in (8, 16)
    ):
        return (
            UnsupportedImageError.code,
            (
                f"(0028,0100) 'Bits Allocated' is {info.bits_allocated} in a {pi} image, "
                "expected 8, 16 or 32"
            ),
        )
    return None


def _check_palette(ds: Any, name: str) -> None:
    """Raise PaletteError unless every channel has a descriptor and enough data."""
    for colour, desc_tag, data_tag, seg_tag in _PALETTE_TAGS:
        desc = ds.get(f"{colour}PaletteColorLookupTableDescriptor")
        if desc is None or len(desc) != 3:
            raise PaletteError(
                f"{name}: PALETTE COLOR image without a 3-value {desc_tag} '{colour} "
                "Palette Color Lookup Table Descriptor' - the palette is missing"
            )
        n_entries = int(desc[0]) or 65536
        bits = int(desc[2])
        if bits not in (8, 16):
            raise PaletteError(
                f"{name}: {desc_tag} declares {bits} bits per palette entry, expected 8 "
                "or 16 - the header is corrupt"
            )
        data = ds.get(f"{colour}PaletteColorLookupTableData")
        segmented = ds.get(f"Segmented{colour}PaletteColorLookupTableData")
        if data is None and segmented is None:
            raise PaletteError(
                f"{name}: PALETTE COLOR image without {data_tag} '{colour} Palette Color "
                f"Lookup Table Data' (nor the segmented {seg_tag}) - the palette is missing"
            )
        if data is not None:
            have = len(data) // (2 if bits == 16 or len(data) >= 2 * n_entries else 1)
            if have < n_entries:
                raise PaletteError(
                    f"{name}: {data_tag} holds {have} entries, {desc_tag} declares "
                    f"{n_entries} - the palette is cut short"
                )


def read_colour_frames(
    path: Path,
    frames: Sequence[int] | None,
    info: PixelInfo,
    name: str,
    plugin_for: Any,
) -> np.ndarray:
    """RGB frames of one colour file as a structured ``(F, R, C)`` array.

    Parameters
    ----------
    path : Path
        The DICOM file.
    frames : sequence of int, optional
        0-based frame indices in the order wanted; all when None.
    info : PixelInfo
        The layout the index read (checked with :func:`colour_problem`).
    name : str
        How messages name the file.
    plugin_for : callable
        ``transfer syntax -> (pydicom plugin, reported name) | None`` (the decoder choice
        of :mod:`clisonix_cli.dicom.syntax`).

    Returns
    -------
    (F, R, C) ndarray of :func:`rgb_dtype`
        8-bit data stays 8-bit; palettes give the bit depth of their entries.

    Raises
    ------
    ColourLayoutError, PaletteError, DecodeError
        The layout contradicts itself, the palette is missing or short, decoding failed.
    """
    problem = colour_problem(info)
    if problem is not None:
        cls = (
            ColourLayoutError
            if problem[0] == ColourLayoutError.code
            else UnsupportedImageError
        )
        raise cls(f"{name}: {problem[1]}")
    from pydicom.pixels.processing import apply_color_lut
    from pydicom.pixels.utils import pixel_array

    from clisonix_cli.dicom.pixels_native import frame_indices
    from clisonix_cli.dicom.pixels_pydicom import read_dataset, transfer_syntax_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(path, name)
        n_frames = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
        idx = frame_indices(frames, n_frames, name)
        palette = info.photometric == "PALETTE COLOR"
        if palette:
            _check_palette(ds, name)
        ts = transfer_syntax_of(ds)
        if not str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "") or ""):
            from pydicom.dataset import FileMetaDataset

            meta = getattr(ds, "file_meta", None) or FileMetaDataset()
            meta.TransferSyntaxUID = ts  # no file meta (ACR-NEMA style): as guessed
            ds.file_meta = meta
        found = plugin_for(ts) if ts else None
        plugin = found[0] if found else ""
        try:
            if idx == list(range(n_frames)):
                arr = pixel_array(ds, decoding_plugin=plugin)
                arr = arr.reshape(n_frames, *arr.shape[-3 if not palette else -2 :])
            else:
                arr = np.stack(
                    [pixel_array(ds, index=i, decoding_plugin=plugin) for i in idx]
                )
            if palette:
                arr = apply_color_lut(arr, ds)
        except ClisonixError:
            raise
        except Exception as exc:
            raise DecodeError(
                f"{name}: the {info.photometric} pixel data could not be decoded "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
            ) from None
    arr = np.ascontiguousarray(arr)
    if arr.shape[-1] != 3 or arr.dtype.kind != "u":
        raise DecodeError(
            f"{name}: decoding gave {arr.dtype} {arr.shape}, expected unsigned RGB triples"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    out = np.ascontiguousarray(arr).view(rgb_dtype(arr.dtype.itemsize))
    return out.reshape(arr.shape[:-1])
