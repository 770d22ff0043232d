"""The PNG encoder: lossless round trips (Pillow and a decoder written here), what each
output type becomes, names, and the bytes' independence from everything but the pixels."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.errors import DisplayValuesError
from clisonix_cli.formats.png import _plane_values, png_bytes, png_planes


def _decode(data: bytes) -> np.ndarray:
    """A minimal PNG reader for what png_bytes writes (filter type 1 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0]
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            head = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    cols, rows, depth, colour = struct.unpack(">IIBB", head[:10])
    chans = 3 if colour == 2 else 1
    bpp = depth // 8 * chans
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(rows, -1)
    assert (raw[:, 0] == 1).all()
    line = raw[:, 1:].astype(np.int64)
    for lane in range(bpp):  # undo Sub: running sums modulo 256 along each byte lane
        line[:, lane::bpp] = np.cumsum(line[:, lane::bpp], axis=1) % 256
    dtype = np.dtype(">u2") if depth == 16 else np.dtype("u1")
    arr = line.astype(np.uint8).view(dtype).astype(dtype.newbyteorder("="))
    return arr.reshape(rows, cols, chans) if chans == 3 else arr.reshape(rows, cols)


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((7, 5), "u1"),
        ((4, 9), "u2"),
        ((6, 3, 3), "u1"),
        ((3, 4, 3), "u2"),
        ((1, 1), "u1"),
    ],
)
def test_round_trip(shape: tuple[int, ...], dtype: str) -> None:
    rng = np.random.default_rng(len(shape) * 7 + int(dtype[1]))
    img = rng.integers(0, 2 ** (8 * int(dtype[1])), size=shape).astype(dtype)
    data = png_bytes(img)
    np.testing.assert_array_equal(_decode(data), img)
    if not (img.ndim == 3 and dtype == "u2"):  # Pillow does not read 16-bit RGB
        from PIL import Image

        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
    assert png_bytes(img.copy()) == data  # the bytes depend on the pixels only


def test_what_each_type_becomes() -> None:
    f = np.array([[-3.0, 0.4, 0.5, 254.6, 300.0, np.nan]])
    np.testing.assert_array_equal(_plane_values(f), [[0, 0, 0, 255, 255, 0]])
    np.testing.assert_array_equal(_plane_values(np.array([[True, False]])), [[255, 0]])
    rgb32 = np.array([[0, 65537 * 7, 2**32 - 1]], dtype=np.uint32)
    rgb = rgb32.view([("R", "u4"), ("G", "u4"), ("B", "u4")]).reshape(1)
    np.testing.assert_array_equal(_plane_values(rgb), [[0, 7, 65535]])
    with pytest.raises(DisplayValuesError, match="add --op voi"):
        _plane_values(np.zeros((2, 2), dtype=np.int16))


def test_names() -> None:
    stem = Path("out/0001_x_1_abcd")
    assert png_planes(stem, 1) == [Path("out/0001_x_1_abcd.png")]
    assert png_planes(stem, 3)[2] == Path("out/0001_x_1_abcd_0002.png")
    assert png_planes(stem, 12345)[-1].name == "0001_x_1_abcd_12344.png"
