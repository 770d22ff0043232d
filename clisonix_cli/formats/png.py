"""PNG writer: one greyscale or RGB PNG per 2-D image or frame, plus a JSON sidecar.

``--format png`` writes every (R, C) plane of the (S, R, C) or (T, S, R, C) output as its
own file: ``<stem>.png`` for a single image, else ``<stem>_0000.png``, ``<stem>_0001.png``...
in C order (volume, then slice), and ``<stem>.json`` with the geometry (``affine_lps`` of
the stack: plane ``k`` is slice ``k % S``), ``slope``/``intercept`` (what the stored
samples mean), the pipeline and the acquisition fields.

What each output type becomes (PNG holds display values, not modality values):

- uint8: 8-bit greyscale; uint16: 16-bit greyscale (``voi:dtype=uint16``);
- bool: 8-bit, 0 and 255;
- float: display values on 0..255 (``voi`` then a spatial op such as ``resize``),
  ``rint`` and clipped to 0..255, NaN to 0;
- RGB (colour images): 8-bit RGB, 16-bit RGB for 16-bit channels, 32-bit channels
  reduced to 16 (``rint(x / 65537)``);
- anything else (signed modality values) fails the task (CLX-E176): add ``--op voi``.

The encoder is written here with zlib (PNG 1.2, ISO/IEC 15948): IHDR, one IDAT, IEND; no
time, text or gamma chunks; filter type 1 (Sub) on every row, zlib level 1 with the
run-length strategy (``Z_RLE``: 2-4x faster than level 6 here, and smaller files on
radiographs after the Sub filter). The bytes depend only on the pixels and the zlib
library: the same on every run and machine. Files are written atomically.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.errors import DisplayValuesError, UsageError, WriteFailedError
from clisonix_cli.formats._declare import Source, VolumeSource, Writer
from clisonix_cli.formats.nifti import sidecar_bytes
from clisonix_cli.fsio import atomic_write_bytes

__all__ = ["WRITERS", "png_bytes", "png_planes"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZLIB_LEVEL = 1
_GREY, _RGB = 0, 2  # PNG colour types


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bytes(img: np.ndarray) -> bytes:
    """The PNG file of one plane.

    Parameters
    ----------
    img : (R, C) or (R, C, 3) ndarray of uint8 or uint16
        Greyscale or RGB samples.

    Returns
    -------
    bytes
        A PNG with IHDR, one IDAT and IEND only (deterministic).
    """
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3):
        raise UsageError(
            f"png_bytes takes (R, C[, 3]) uint8/uint16, got {img.dtype} {img.shape}"
        )
    rows, cols = img.shape[:2]
    colour = _RGB if img.ndim == 3 else _GREY
    depth = 8 * img.dtype.itemsize
    samples = np.ascontiguousarray(img, dtype=img.dtype.newbyteorder(">"))
    line = samples.reshape(rows, -1).view(np.uint8)
    bpp = img.dtype.itemsize * (3 if colour == _RGB else 1)  # bytes per pixel
    raw = np.empty((rows, 1 + line.shape[1]), dtype=np.uint8)
    raw[:, 0] = 1  # filter type 1 (Sub): each byte minus the byte one pixel to its left
    raw[:, 1 : 1 + bpp] = line[:, :bpp]
    np.subtract(line[:, bpp:], line[:, :-bpp], out=raw[:, 1 + bpp :])
    comp = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    header = struct.pack(">IIBBBBB", cols, rows, depth, colour, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", comp.compress(raw.tobytes()) + comp.flush())
        + _chunk(b"IEND", b"")
    )


def _plane_values(data: np.ndarray) -> np.ndarray:
    """The values of ``data`` as PNG samples (uint8/uint16, RGB with a trailing 3)."""
    dt = data.dtype
    if dt.names == ("R", "G", "B"):
        base = dt.fields["R"][0]  # type: ignore[index]
        chan: np.ndarray = data.view(base).reshape(*data.shape, 3)
        if base.itemsize == 4:
            return np.rint(chan / 65537.0).astype(np.uint16)
        return chan
    if dt in (np.uint8, np.uint16):
        return data
    if dt == np.bool_:
        return data.astype(np.uint8) * np.uint8(255)
    if dt.kind == "f":
        out: np.ndarray = np.rint(np.nan_to_num(data, nan=0.0))
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
    raise DisplayValuesError(
        f"PNG holds 8- or 16-bit display values; the pipeline gives {dt} - add --op voi "
        "(the DICOM display pipeline) or end with window:dtype=uint8"
    )


def png_planes(stem: Path, n: int) -> list[Path]:
    """The PNG paths of ``n`` planes for an output stem (``<stem>.png`` when one)."""
    if n == 1:
        return [stem.with_name(stem.name + ".png")]
    width = max(4, len(str(n - 1)))
    return [stem.with_name(f"{stem.name}_{k:0{width}d}.png") for k in range(n)]


def _write(
    path: Path, src: Source, digests: MutableMapping[Path, str] | None
) -> list[Path]:
    """Every plane of ``src`` as PNG, then the sidecar: the registry's write function."""
    data = src.data
    if isinstance(data, VolumeSource):
        raise UsageError("the png writer takes a whole array")
    if not path.name.endswith(".png"):
        raise UsageError(f"{path}: a PNG output path ends in .png")
    if data.ndim not in (3, 4):
        raise UsageError(
            f"the png writer takes (S, R, C) or (T, S, R, C), got {data.shape}"
        )
    planes = data.reshape(-1, *data.shape[-2:])
    stem = path.with_name(path.name[: -len(".png")])
    targets = png_planes(stem, planes.shape[0])
    aff = np.asarray(src.affine_lps, dtype=np.float64)
    written: list[Path] = []

    def put(target: Path, data: bytes) -> None:
        sha = atomic_write_bytes(target, data, digest=digests is not None)
        if digests is not None and sha is not None:
            digests[target] = sha
        written.append(target)

    try:
        for plane, target in zip(planes, targets, strict=True):
            put(target, png_bytes(_plane_values(plane)))
        # built once the data are written: it may hold facts gathered while they were read
        doc: dict[str, Any] = {
            **(src.sidecar() if src.sidecar is not None else {}),
            "affine_lps": aff.tolist(),
            "slope": float(src.slope),
            "intercept": float(src.intercept),
            "shape": [int(n) for n in data.shape],
            "axes": "TSRC" if data.ndim == 4 else "SRC",
            "files": [p.name for p in targets],
        }
        put(stem.with_name(stem.name + ".json"), sidecar_bytes(doc))
    except OSError as exc:
        raise WriteFailedError(
            f"{path}: cannot write ({exc.strerror}) - check free space and permissions"
        ) from None
    return written


WRITERS = (Writer(name="png", suffix=".png", streams=False, write=_write, kinds="u"),)
