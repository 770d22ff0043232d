"""Bounded decoding: what one file may decode to, checked before anything is allocated.

A hostile or broken file can claim a huge image in a few bytes: a 1,180-byte JPEG whose
frame header says 16384x16384 decodes to 256 MB of zeros, and a deflated dataset can
inflate 1000-fold. Every decoder entry point asks here first:

- :func:`check_budget`: the decoded bytes the header claims (Rows x Columns x Samples x
  Frames x Bits Allocated) against :class:`DecodeLimits` (a cap relative to the file's size,
  a floor every file may use whatever its size, and an absolute cap);
- :func:`check_codestreams`: the codec's own header (JPEG SOF, JPEG 2000 SIZ, RLE header)
  against the DICOM header, and the end-of-codestream marker (a stream cut short would be
  zero-filled by some decoders, never an error);
- :func:`check_native_length` and :func:`check_bit_depth`: uncompressed Pixel Data exactly
  as long as the matrix (one pad byte allowed) and a bit depth PS3.5 allows;
- :class:`InflatingReader` / :func:`read_deflated`: Deflated Explicit VR Little Endian
  inflated incrementally, never past the cap, and for the scan never past the header.

The limits in force are a context variable (:func:`decode_limits`): a task sets the run's
limits around its work, so they reach worker processes and threads with the task.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from clisonix_cli.dicom.syntax import (
    DEFLATED_FRAMES,
    J2K,
    JPEG,
    JPEG_LOSSLESS,
    JPEG_LS,
    RLE,
)
from clisonix_cli.errors import (
    BitDepthError,
    CodestreamMismatchError,
    DecodeLimitError,
    PixelDataLengthError,
    PixelDataSizeError,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeLimits",
    "InflatingReader",
    "check_bit_depth",
    "check_budget",
    "check_codestreams",
    "check_coverage",
    "check_native_length",
    "claimed_bytes",
    "codestream_info",
    "current_limits",
    "decode_limits",
    "file_syntax",
    "read_deflated",
]

_MiB = 1 << 20


@dataclass(frozen=True)
class DecodeLimits:
    """How many decoded bytes one file may produce.

    Parameters
    ----------
    max_ratio : float
        Decoded bytes per byte of the file (``--max-decode-ratio``). Real data stays far
        below the default 100: lossless JPEG 2000 and JPEG-LS of CT/MR give 2-4, lossy J2K
        10-30 (the pydicom test files: at most 30), RLE 2-10; a blank frame, which can
        compress far more, is covered by ``floor_bytes``.
    max_bytes : int
        Absolute cap on the decoded bytes of one compressed file
        (``--max-decoded-mib``).
    floor_bytes : int
        Every file may decode to this much whatever its size (a blank frame compresses to a
        few hundred bytes).
    header_bytes : int
        The inflated header of a deflated file, read by the scan (the driver never inflates
        pixel data).
    """

    max_ratio: float = 100.0
    max_bytes: int = 8192 * _MiB
    floor_bytes: int = 64 * _MiB
    header_bytes: int = 64 * _MiB

    def allowed(self, file_size: int) -> int:
        """Decoded bytes a file of ``file_size`` bytes may produce."""
        relative = int(self.max_ratio * max(file_size, 0))
        return min(self.max_bytes, max(self.floor_bytes, relative))


DEFAULT_LIMITS = DecodeLimits()
_LIMITS: ContextVar[DecodeLimits] = ContextVar(
    "clisonix_decode_limits", default=DEFAULT_LIMITS
)


def current_limits() -> DecodeLimits:
    """The limits in force in this thread (the run's, inside a task)."""
    return _LIMITS.get()


@contextmanager
def decode_limits(limits: DecodeLimits | None) -> Iterator[None]:
    """Use ``limits`` (None: keep the current ones) in the ``with`` block."""
    if limits is None:
        yield
        return
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def claimed_bytes(rows: int, cols: int, frames: int, samples: int, bits: int) -> int:
    """Bytes the header's matrix needs: Rows x Columns x Frames x Samples x Bits / 8."""
    return math.ceil(rows * cols * frames * samples * bits / 8)


def check_budget(name: str, claimed: int, file_size: int, what: str) -> None:
    """Raise DecodeLimitError when ``claimed`` decoded bytes exceed the current limits.

    Parameters
    ----------
    name : str
        The file, as named in messages.
    claimed : int
        Decoded bytes the header claims for the whole file.
    file_size : int
        Bytes of the file on disk.
    what : str
        What makes the claim (e.g. ``"the JPEG Baseline header"``), for the message.
    """
    limits = current_limits()
    allowed = limits.allowed(file_size)
    if claimed > allowed:
        raise DecodeLimitError(
            f"{name}: {what} claims {claimed} decoded bytes from a file of {file_size} "
            f"bytes (ratio {claimed / max(file_size, 1):.0f}), over the cap of {allowed} "
            f"bytes (--max-decode-ratio {limits.max_ratio:g}, --max-decoded-mib "
            f"{limits.max_bytes // _MiB}) - a decompression bomb or a wrong header; if "
            "the file is genuine, raise the caps"
        )


def check_native_length(name: str, length: int, claimed: int, element: str) -> None:
    """Uncompressed pixel bytes must match the matrix exactly (one pad byte allowed).

    Shorter data is :class:`~clisonix_cli.errors.PixelDataSizeError` (raised by the
    readers); longer data means the header describes other pixels than those stored (e.g.
    Bits Allocated 8 over data written at 16 bits) and would convert into garbage.
    """
    if length > claimed + 1:
        raise PixelDataLengthError(
            f"{name + ': ' if name else ''}{element} holds {length} bytes, the header's matrix needs "
            f"{claimed} (one pad byte allowed) - Rows, Columns, Number of Frames or "
            "Bits Allocated do not describe the stored pixels; the header is corrupt"
        )


def check_bit_depth(
    name: str, bits_allocated: int, bits_stored: int | None, high_bit: int | None
) -> None:
    """Bits Allocated / Bits Stored / High Bit as PS3.5 8.1.1 and PS3.3 C.7.6.3.1 allow.

    Bits Allocated is 1 or a multiple of 8; 1 <= Bits Stored <= Bits Allocated; High Bit is
    Bits Stored - 1. Values absent from the header are not checked.
    """
    if bits_allocated <= 0:
        return  # no image matrix at all: the index reports that on its own
    problem = ""
    if bits_allocated != 1 and bits_allocated % 8:
        problem = f"(0028,0100) 'Bits Allocated' is {bits_allocated}, not 1 or a multiple of 8"
    elif bits_stored is not None and not 1 <= bits_stored <= bits_allocated:
        problem = (
            f"(0028,0101) 'Bits Stored' is {bits_stored}, expected 1 to "
            f"{bits_allocated} (Bits Allocated)"
        )
    elif (
        high_bit is not None and bits_stored is not None and high_bit != bits_stored - 1
    ):
        problem = (
            f"(0028,0102) 'High Bit' is {high_bit}, expected {bits_stored - 1} (Bits "
            "Stored - 1)"
        )
    if problem:
        raise BitDepthError(
            f"{name + ': ' if name else ''}{problem} (PS3.5 8.1.1) - the header is corrupt"
        )


# --- codec headers --------------------------------------------------------------------


@dataclass(frozen=True)
class CodestreamInfo:
    """What a codestream's own header declares: matrix, components, sample precision."""

    rows: int
    cols: int
    components: int
    precision: int
    min_bytes: int = 0


def _jpeg_min_bytes(marker: int, rows: int, cols: int, specs: bytes) -> int:
    """Fewest bytes a Huffman-coded sequential or lossless JPEG of this frame can take.

    Every Huffman code is at least one bit long (ITU T.81 C), so a sequential DCT scan
    (SOF0, SOF1) spends at least two bits per 8x8 block (a DC code and an AC code, EOB at
    least) and a lossless one (SOF3) at least one bit per sample. A codestream shorter than
    this cannot cover its matrix: the decoder would fill the rest. Progressive, arithmetic
    and JPEG-LS codestreams (runs cover many samples per bit) have no such bound: 0.
    """
    if marker not in (0xC0, 0xC1, 0xC3) or rows == 0 or len(specs) < 3:
        return 0
    factors = [(b >> 4, b & 0x0F) for b in specs[1::3]]
    hmax = max((h for h, _v in factors), default=1) or 1
    vmax = max((v for _h, v in factors), default=1) or 1
    bits = 0
    for h, v in factors:
        width = math.ceil(cols * h / hmax)
        height = math.ceil(rows * v / vmax)
        if marker == 0xC3:
            bits += width * height
        else:
            bits += 2 * math.ceil(width / 8) * math.ceil(height / 8)
    return bits // 8


def _jpeg_info(frame: bytes) -> CodestreamInfo | None:
    """Walk JPEG marker segments to the first SOFn (ITU T.81 B.2.2; T.87 SOF55)."""
    if frame[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # no length (RSTn, SOI, TEM)
            pos += 2
            continue
        length = struct.unpack_from(">H", frame, pos + 2)[0]
        is_sof = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
        if is_sof or marker == 0xF7:
            if pos + 10 > len(frame) or length < 8:
                return None
            precision, height, width, comps = struct.unpack_from(
                ">BHHB", frame, pos + 4
            )
            specs = frame[pos + 10 : pos + 10 + 3 * comps]
            least = _jpeg_min_bytes(marker, height, width, specs)
            return CodestreamInfo(height, width, comps, precision, least)
        if length < 2:
            return None
        pos += 2 + length
    return None


def _j2k_info(frame: bytes) -> CodestreamInfo | None:
    """SOC then SIZ (ISO 15444-1 A.5.1): Xsiz, Ysiz, XOsiz, YOsiz, ..., Csiz, Ssiz."""
    at = frame.find(b"\xff\x4f\xff\x51")
    if at < 0 or len(frame) < at + 4 + 40:
        return None
    xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", frame, at + 8)
    comps = struct.unpack_from(">H", frame, at + 4 + 36)[0]
    if comps < 1 or len(frame) < at + 4 + 38 + 3 * comps or xsiz < xo or ysiz < yo:
        return None
    ssiz = frame[at + 4 + 38]
    return CodestreamInfo(ysiz - yo, xsiz - xo, comps, (ssiz & 0x7F) + 1)


def codestream_info(ts: str, frame: bytes) -> CodestreamInfo | None:
    """What a JPEG-family or JPEG 2000 frame declares; None when its header is not found."""
    if ts in J2K:
        return _j2k_info(frame)
    if ts in JPEG or ts in JPEG_LOSSLESS or ts in JPEG_LS:
        return _jpeg_info(frame)
    return None


def _ends_complete(frame: bytes) -> bool:
    """True when the codestream ends with EOI/EOC (FFD9), trailing 00/FF padding allowed."""
    return frame.rstrip(b"\x00\xff").endswith(b"\xff\xd9")


def _rle_segments(frame: bytes) -> tuple[int, list[int]]:
    """(segment count, offsets) of an RLE frame header (PS3.5 G.5)."""
    if len(frame) < 64:
        return 0, []
    header = struct.unpack_from("<16L", frame, 0)
    return header[0], list(header[1 : 1 + min(header[0], 15)])


def check_codestreams(
    ts: str,
    encoded: Sequence[bytes],
    *,
    rows: int,
    cols: int,
    samples: int,
    bits_allocated: int,
    name: str,
) -> None:
    """Reject frames whose codec header disagrees with the DICOM header, before decoding.

    JPEG-family and JPEG 2000 frames must declare the DICOM matrix, the number of samples,
    a precision that fits Bits Allocated, and end with their end marker. RLE frames must hold
    one segment per byte plane (PS3.5 G.2; 1-bit frames one) at increasing offsets inside
    the frame, and cannot expand beyond what PackBits allows (a 2-byte run gives 128).

    Raises
    ------
    PixelDataSizeError
        A frame declares another matrix, or an RLE frame is too small for the matrix.
    CodestreamMismatchError
        A frame declares other components or precision, has no readable header, is cut
        short, or has a bad RLE segment table.
    """
    frame_bytes = math.ceil(rows * cols * samples * bits_allocated / 8)
    for k, frame in enumerate(encoded):
        if ts == RLE:
            _check_rle(frame, k, frame_bytes, samples, bits_allocated, name)
            continue
        if ts == DEFLATED_FRAMES:
            continue  # inflated with max_length = the frame's size (pixels_pydicom)
        info = codestream_info(ts, frame)
        if info is None:
            raise CodestreamMismatchError(
                f"{name}: frame {k} has no readable codestream header (SOF or SIZ) - the "
                "file is corrupt; re-export it"
            )
        if (info.rows, info.cols) != (rows, cols) and not (
            info.rows == 0 and info.cols == cols  # JPEG: height defined by DNL later
        ):
            raise PixelDataSizeError(
                f"{name}: header claims {rows}x{cols} pixels, the codestream of frame "
                f"{k} holds {info.rows}x{info.cols} - the header is wrong; re-export it"
            )
        if info.components != samples or not 1 <= info.precision <= max(
            bits_allocated, 8
        ):
            raise CodestreamMismatchError(
                f"{name}: the codestream of frame {k} declares {info.components} "
                f"component(s) of {info.precision} bits, the header {samples} sample(s) "
                f"in {bits_allocated}-bit words - the header is wrong; re-export it"
            )
        if not _ends_complete(frame):
            raise CodestreamMismatchError(
                f"{name}: the codestream of frame {k} ends without its end marker "
                "(FFD9) - the file is truncated and would decode to zero-filled pixels; "
                "re-export it"
            )


def check_coverage(ts: str, encoded: Sequence[bytes], name: str) -> None:
    """Reject a JPEG frame too short to cover its matrix (see :func:`_jpeg_min_bytes`).

    Called after :func:`check_budget` (a bomb is reported as a bomb): a codestream that
    ends early decodes without an error in pydicom's plugins, the missing part filled.

    Raises
    ------
    CodestreamMismatchError
        A frame holds fewer bytes than any image of its matrix and coding needs.
    """
    if ts not in JPEG and ts not in JPEG_LOSSLESS:
        return
    for k, frame in enumerate(encoded):
        info = codestream_info(ts, frame)
        if info is not None and len(frame) < info.min_bytes:
            raise CodestreamMismatchError(
                f"{name}: the codestream of frame {k} holds {len(frame)} bytes, fewer "
                f"than the {info.min_bytes} any {info.rows}x{info.cols} image of its kind "
                "needs - it is cut short and would decode to filled pixels; re-export it"
            )


# RLE (PS3.5 G.3.1): a 2-byte replicate run decodes to at most 128 bytes.
_RLE_MAX_RATIO = 64


def _check_rle(
    frame: bytes, k: int, frame_bytes: int, samples: int, bits: int, name: str
) -> None:
    if frame_bytes > _RLE_MAX_RATIO * len(frame):
        raise PixelDataSizeError(
            f"{name}: header claims {frame_bytes} bytes per frame, more than RLE can "
            f"expand {len(frame)} encoded bytes into - the header is wrong or the file "
            "is truncated; re-export it"
        )
    count, offsets = _rle_segments(frame)
    want = 1 if bits == 1 else samples * (bits // 8)
    good = count == want and offsets[:1] == [64]
    good = good and all(a < b for a, b in zip(offsets, offsets[1:], strict=False))
    if not good or (offsets and offsets[-1] >= len(frame)):
        raise CodestreamMismatchError(
            f"{name}: RLE frame {k} has {count} segment(s) at offsets {offsets[:4]}, "
            f"expected {want} (samples x bytes per sample, PS3.5 G.2) starting at 64 "
            "inside the frame - the file is corrupt; re-export it"
        )


# --- deflate ---------------------------------------------------------------------------

_INFLATE_CHUNK = 1 << 20  # compressed bytes read at a time; output comes in 1 MiB steps


class InflatingReader:
    """A read-only file over a raw deflate stream, inflated only as far as it is read.

    Everything inflated so far is kept (pydicom seeks back a few bytes at times), and
    inflating past ``limit`` bytes raises :class:`~clisonix_cli.errors.DecodeLimitError`.

    Parameters
    ----------
    fh : binary file
        Positioned at the first byte of the deflate stream.
    limit : int
        Most bytes to inflate.
    name : str
        The file, for messages.
    """

    def __init__(self, fh: BinaryIO, limit: int, name: str) -> None:
        self._fh = fh
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self.limit = limit
        self.name = name

    @property
    def inflated(self) -> int:
        """Bytes inflated so far."""
        return len(self._buf)

    def _fill(self, upto: int) -> None:
        while len(self._buf) < upto and not self._eof:
            data = self._z.unconsumed_tail or self._fh.read(_INFLATE_CHUNK)
            if not data:
                self._eof = True
                break
            room = self.limit + 1 - len(self._buf)
            try:
                out = self._z.decompress(data, min(_INFLATE_CHUNK, room))
            except zlib.error as exc:
                raise CodestreamMismatchError(
                    f"{self.name}: the deflated dataset is not valid deflate data "
                    f"({exc}) - the file is corrupt; re-export it"
                ) from None
            self._buf += out
            if len(self._buf) > self.limit:
                raise DecodeLimitError(
                    f"{self.name}: the deflated dataset inflates past {self.limit} bytes "
                    "(the decoding cap for this file) - a decompression bomb, or raise "
                    "--max-decode-ratio / --max-decoded-mib if it is genuine"
                )
            if self._z.eof:
                self._eof = True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left, within the limit, when ``n < 0``)."""
        if n is None or n < 0:
            self._fill(self.limit + 1)
            end = len(self._buf)
        else:
            self._fill(self._pos + n)
            end = min(self._pos + n, len(self._buf))
        out = bytes(self._buf[self._pos : end])
        self._pos = max(self._pos, end)
        return out

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move within the inflated stream (inflating forward as needed)."""
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            self._fill(self.limit + 1)
            offset += len(self._buf)
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def tell(self) -> int:
        """Position in the inflated stream."""
        return self._pos

    def peek_exact(self, n: int) -> bytes | None:
        """The next ``n`` bytes without moving, None when the stream ends first."""
        self._fill(self._pos + n)
        if self._pos + n > len(self._buf):
            return None
        return bytes(self._buf[self._pos : self._pos + n])


_LONG_VRS = (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
              b"UT", b"UV")  # fmt: skip


def _walk_meta(fh: BinaryIO) -> tuple[int, str | None]:
    """(offset of the dataset after the file meta, (0002,0010) Transfer Syntax UID)."""
    fh.seek(0)
    head = fh.read(132)
    pos = 132 if head[128:132] == b"DICM" else 0
    syntax: str | None = None
    for _ in range(4096):  # a meta group has a few dozen elements
        fh.seek(pos)
        hdr = fh.read(12)
        if len(hdr) < 8 or struct.unpack_from("<H", hdr, 0)[0] != 0x0002:
            break
        if hdr[4:6] in _LONG_VRS:
            if len(hdr) < 12:
                break
            start, length = pos + 12, struct.unpack_from("<I", hdr, 8)[0]
        else:
            start, length = pos + 8, struct.unpack_from("<H", hdr, 6)[0]
        if struct.unpack_from("<H", hdr, 2)[0] == 0x0010 and length <= 64:
            fh.seek(start)
            syntax = fh.read(length).decode("latin-1").strip(" \x00")
        pos = start + length
    return pos, syntax


def file_syntax(fh: BinaryIO) -> str | None:
    """The (0002,0010) Transfer Syntax UID of an open file's meta group, None without one."""
    return _walk_meta(fh)[1]


def _claimed_by(ds: Any) -> int:
    """Decoded bytes a dataset's image pixel module claims (0 when it has no matrix)."""
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = max(int(ds.get("NumberOfFrames") or 1), 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits = int(ds.get("BitsAllocated") or 0)
    except (TypeError, ValueError):
        return 0
    return claimed_bytes(rows, cols, frames, samples, bits)


def read_deflated(
    fh: BinaryIO, path: Path, name: str, *, limit: int, stop_before_pixels: bool
) -> tuple[Any, int | None]:
    """Read a Deflated Explicit VR Little Endian file with pydicom, inflating within a cap.

    pydicom's own reader inflates the whole dataset in one call, whatever its size; here
    the dataset is inflated only as far as it is parsed.

    Parameters
    ----------
    fh : binary file
        The file, opened by the caller.
    path : Path
        Its path (the dataset's ``filename``).
    name : str
        The file, for messages.
    limit : int
        Most bytes to inflate.
    stop_before_pixels : bool
        Stop at (7FE0,0010) Pixel Data (the scan): nothing of the pixels is inflated.
        Otherwise the header is read first and its claim checked with
        :func:`check_budget` before the pixels are inflated.

    Returns
    -------
    (FileDataset, int or None)
        The dataset, and with ``stop_before_pixels`` the declared length of the Pixel Data
        element when there is one (-1 for undefined length), else None.

    Raises
    ------
    DecodeLimitError
        The dataset (or its header) inflates past ``limit``.
    CodestreamMismatchError
        The deflate stream is corrupt.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.filereader import read_dataset

    fh.seek(0)
    first = fh.read(132)
    preamble = first[:128] if first[128:132] == b"DICM" else None
    fh.seek(132 if preamble is not None else 0)

    def past_meta(tag: Any, vr: Any, length: int) -> bool:
        return int(tag) >> 16 != 0x0002

    file_meta = FileMetaDataset(read_dataset(fh, False, True, stop_when=past_meta))
    fh.seek(_walk_meta(fh)[0])
    reader = InflatingReader(fh, limit, name)

    def at_pixels(tag: Any, vr: Any, length: int) -> bool:
        return int(tag) == 0x7FE00010

    ds = read_dataset(reader, False, True, stop_when=at_pixels)  # type: ignore[arg-type]
    pixel_length: int | None = None
    head = reader.peek_exact(12)
    if head is not None and struct.unpack_from("<HH", head, 0) == (0x7FE0, 0x0010):
        raw = struct.unpack_from("<I", head, 8)[0]
        pixel_length = -1 if raw == 0xFFFFFFFF else raw
    if not stop_before_pixels and head is not None:
        size = os.fstat(fh.fileno()).st_size
        check_budget(name, _claimed_by(ds), size, "its deflated header")
        ds.update(read_dataset(reader, False, True))  # type: ignore[arg-type]
    fds = FileDataset(str(path), ds, preamble, file_meta, False, True)
    fds.set_original_encoding(False, True, ds._character_set)
    return fds, pixel_length
