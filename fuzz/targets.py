"""Fuzz targets: the header index and every pixel decoder path, fed hostile bytes.

A target raises only when clisonix has a bug: the index must classify any bytes
(``read_header`` never raises), and decoding must end in pixels or in a
:class:`~clisonix_cli.errors.ClisonixError` with a stable code, within the decoding caps.
Anything else (``IndexError``, ``struct.error``, ``MemoryError``, a hang, a crash in a
native decoder) is a finding.

Two targets, both importable without atheris (``tests/security/test_fuzz_regressions.py``
replays the kept findings through them):

- ``file``: the bytes are a whole file: index it, then decode what the index found.
- ``codec``: the first bytes choose a transfer syntax and an image matrix, the rest is the
  encoded data, wrapped in a valid DICOM header: every decoder sees fuzzed codestreams
  (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, deflated frames, a deflated dataset, native
  little and big endian) without first having to guess a valid header.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import struct
import tempfile
from pathlib import Path

from clisonix_cli.dicom.header import FileHeader
from clisonix_cli.dicom.index import read_header
from clisonix_cli.dicom.limits import DecodeLimits, decode_limits
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.errors import ClisonixError

#: Tight caps while fuzzing: a bomb is rejected quickly and memory stays bounded (the
#: harness runs with -rss_limit_mb, so an allocation past the caps is a finding).
FUZZ_LIMITS = DecodeLimits(
    max_ratio=100.0, max_bytes=64 << 20, floor_bytes=8 << 20, header_bytes=8 << 20
)

SYNTAXES = (
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.8.1",  # deflated image frames
    "1.2.840.10008.1.2.1.99",  # deflated dataset
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
)
NATIVE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
DEFLATED_DATASET = "1.2.840.10008.1.2.1.99"


@functools.cache
def _work() -> Path:
    """A private scratch folder (in RAM when /dev/shm exists), removed at exit."""
    shm = "/dev/shm"
    folder = tempfile.mkdtemp(
        prefix="clisonix-fuzz-", dir=shm if os.path.isdir(shm) else None
    )
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder)


def _decode(path: Path, name: str) -> None:
    got = read_header(path, name)  # never raises: any exception is a finding
    if not isinstance(got, FileHeader) or not got.has_pixels:
        return
    try:
        read_frames(path, info=got.pixel, label=name, check_greyscale=False)
    except ClisonixError:
        pass


def file_target(data: bytes) -> None:
    """The bytes are a whole file: index it, then decode what the index found."""
    path = _work() / "file.dcm"
    path.write_bytes(data)
    with decode_limits(FUZZ_LIMITS):
        _decode(path, "file.dcm")


def codec_file(data: bytes) -> bytes:
    """A DICOM file whose header comes from the first 8 bytes and whose pixel data (or,
    for the deflated dataset, whole deflated stream) is the rest."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    head = data[:8].ljust(8, b"\0")
    body = data[8:]
    syntax = SYNTAXES[head[0] % len(SYNTAXES)]
    rows, cols = struct.unpack_from("<HH", head, 1)
    rows, cols = rows % 600 + 1, cols % 600 + 1
    bits = (1, 8, 16, 16, 8, 16, 32, 12)[head[5] % 8]
    stored = max(1, bits - head[6] % 5)
    frames = head[7] % 3 + 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = syntax
    if syntax == DEFLATED_DATASET:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        write_file_meta_info(out, meta, enforce_standard=True)
        return b"\0" * 128 + b"DICM" + out.getvalue() + body
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = head[6] & 1
    if syntax in NATIVE:
        ds.PixelData = body
        ds["PixelData"].VR = "OB"
    else:
        step = max(1, len(body) // frames)
        pieces = [body[i * step : (i + 1) * step] for i in range(frames)]
        pieces = [p + b"\0" * (len(p) % 2 or (2 if not p else 0)) for p in pieces]
        ds.PixelData = encapsulate(pieces)
        ds["PixelData"].VR = "OB"
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_file_meta_info(out, meta, enforce_standard=True)
    body_out = DicomBytesIO()
    body_out.is_little_endian, body_out.is_implicit_VR = syntax != NATIVE[1], False
    write_dataset(body_out, ds)  # pydicom 3.0 cannot dcmwrite 1.2.840.10008.1.2.8.1
    return b"\0" * 128 + b"DICM" + out.getvalue() + body_out.getvalue()


def codec_target(data: bytes) -> None:
    """The first bytes choose a syntax and a matrix; the rest is the encoded data."""
    path = _work() / "codec.dcm"
    path.write_bytes(codec_file(data))
    with decode_limits(FUZZ_LIMITS):
        _decode(path, "codec.dcm")


TARGETS = {"file": file_target, "codec": codec_target}
