"""Hostile inputs and hosts: crafted bombs, planted links, FIFOs, escapes; peak memory.

Every crafted file is made here from first principles (no encoder whose output could change
between versions): a baseline JPEG with one-symbol Huffman tables, a JPEG 2000 main header,
a deflated dataset streamed through zlib. Tests check that IN_DIR stays byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLISONIX = [sys.executable, "-m", "clisonix_cli"]

STUDY_UID = "1.2.826.0.1.3680043.8.498.77.2"
SERIES_UID = "1.2.826.0.1.3680043.8.498.77.3"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_frame(rows: int, cols: int, *, scan_bytes: int = 330) -> bytes:
    """A baseline 8-bit greyscale JPEG whose frame header (SOF0) claims ``rows x cols``.

    Quantisation all ones, one-symbol Huffman tables (DC category 0, AC end-of-block), and
    ``scan_bytes`` zero bytes of scan data (four blocks per byte) before EOI: a decoder
    fills whatever the scan does not cover.
    """
    counts = b"\x01" + b"\x00" * 15
    return (
        b"\xff\xd8"
        + _segment(0xDB, b"\x00" + b"\x01" * 64)
        + _segment(0xC0, struct.pack(">BHHB", 8, rows, cols, 1) + b"\x01\x11\x00")
        + _segment(0xC4, b"\x00" + counts + b"\x00")
        + _segment(0xC4, b"\x10" + counts + b"\x00")
        + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x00" * scan_bytes
        + b"\xff\xd9"
    )


def j2k_frame(rows: int, cols: int, *, precision: int = 16) -> bytes:
    """A JPEG 2000 codestream main header (SOC, SIZ, COD, QCD) claiming ``rows x cols``,
    then an empty tile-part and EOC: no data for a decoder to fill the image with."""
    siz = struct.pack(">HIIIIIIIIH", 0, cols, rows, 0, 0, cols, rows, 0, 0, 1)
    siz += bytes((precision - 1, 1, 1))
    cod = bytes((0, 0, 0, 1, 0, 5, 4, 4, 0, 1))  # LRCP, 1 layer, 5 levels, 5-3 wavelet
    qcd = bytes((0x40,)) + bytes(3 * 5 + 1)
    sot = struct.pack(">HIBB", 0, 14, 0, 1)
    return (
        b"\xff\x4f"
        + _segment(0x51, siz)
        + _segment(0x52, cod)
        + _segment(0x5C, qcd)
        + _segment(0x90, sot)
        + b"\xff\x93"
        + b"\xff\xd9"
    )


def _image_dataset(
    rows: int, cols: int, bits: int, *, description: str = "hostile", frames: int = 1
) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = SC_STORAGE
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.77.1"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.Modality = "OT"
    ds.SeriesDescription = description
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    return ds


def _meta(syntax: str) -> Any:
    from pydicom.dataset import FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC_STORAGE
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.77.1"
    meta.TransferSyntaxUID = syntax
    return meta


def write_encapsulated(
    path: Path,
    syntax: str,
    frame: bytes,
    rows: int,
    cols: int,
    bits: int,
    *,
    instance: int = 1,
) -> Path:
    """One-frame image file of ``syntax`` holding ``frame`` as its only fragment;
    ``instance`` > 1 gives another slice of the same series (UID, number, position)."""
    from pydicom.encaps import encapsulate

    ds = _image_dataset(rows, cols, bits)
    ds.file_meta = _meta(syntax)
    if instance != 1:
        uid = f"{ds.SOPInstanceUID}.{instance}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [0, 0, instance - 1]
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_native(
    path: Path,
    rows: int,
    cols: int,
    bits: int,
    pixel_bytes: bytes,
    *,
    description: str = "hostile",
    high_bit: int | None = None,
    sop_uid: str | None = None,
    series_uid: str | None = None,
    implicit: bool = False,
) -> Path:
    """Explicit (or implicit) VR little endian image whose Pixel Data holds ``pixel_bytes``
    as given."""
    ds = _image_dataset(rows, cols, bits, description=description)
    if sop_uid is not None:
        ds.SOPInstanceUID = sop_uid
    if series_uid is not None:
        ds.SeriesInstanceUID = series_uid
    if high_bit is not None:
        ds.HighBit = high_bit
    ds.file_meta = _meta(IMPLICIT_LE if implicit else EXPLICIT_LE)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = pixel_bytes
    ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return path


def write_deflate_bomb(path: Path, rows: int, cols: int, frames: int) -> Path:
    """Deflated Explicit VR LE file whose dataset inflates to rows*cols*frames*2 bytes.

    The header is written by pydicom; the Pixel Data element (16-bit zeros) is streamed
    through zlib so that the bomb is never whole in this process's memory.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = _image_dataset(rows, cols, 16, frames=frames)
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_dataset(head, ds)
    n = rows * cols * frames * 2
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, n)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, _meta(DEFLATED_LE), enforce_standard=True)

    def block(data: bytes) -> bytes:
        # a byte-aligned block with a fresh dictionary: blocks can follow each other
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        return z.compress(data) + z.flush(zlib.Z_FULL_FLUSH)

    zeros = block(bytes(1 << 20))  # 1 MiB of zeros in about 1 KB, compressed once
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM" + meta.getvalue())
        fh.write(block(head.getvalue() + element))
        for _ in range(n >> 20):
            fh.write(zeros)
        fh.write(block(bytes(n & ((1 << 20) - 1))))
        fh.write(zlib.compressobj(9, zlib.DEFLATED, -15).flush())  # the final block
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` (links not followed), by relative path."""
    out: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(root).as_posix()] = hashlib.sha256(
                    p.read_bytes()
                ).hexdigest()
    return out


_PEAK = """
import json, resource, subprocess, sys, threading, time
import psutil
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
got = {}
reader = threading.Thread(target=lambda: got.update(zip(("out", "err"), p.communicate())))
reader.start()
tree = 0
root = psutil.Process(p.pid)
while reader.is_alive():
    total = 0
    try:
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    tree = max(tree, total)
    time.sleep(0.01)
reader.join(600)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": p.returncode, "peak": max(peak, tree), "process_peak": peak,
                  "tree_peak": tree, "out": got["out"], "err": got["err"]}))
"""


def run_measured(args: Iterable[str], *, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``clisonix ARGS`` in a child of a fresh helper; its peak memory in bytes.

    ``peak`` is the larger of the peak resident set of the largest process (the kernel's
    ``RUSAGE_CHILDREN`` high-water mark: clisonix or any process it started, exact) and
    the largest sum over the whole process tree (clisonix and its workers, sampled every
    10 ms); ``process_peak`` and ``tree_peak`` are the two.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, *CLISONIX, *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


@pytest.fixture
def crafted() -> SimpleNamespace:
    """The crafting helpers of this module (``crafted.jpeg_frame(...)``)."""
    return SimpleNamespace(
        jpeg_frame=jpeg_frame,
        j2k_frame=j2k_frame,
        write_encapsulated=write_encapsulated,
        write_native=write_native,
        write_deflate_bomb=write_deflate_bomb,
        tree_digest=tree_digest,
        run_measured=run_measured,
        JPEG_BASELINE=JPEG_BASELINE,
        J2K_LOSSLESS=J2K_LOSSLESS,
    )


def max_rss_self() -> int:
    """This process's peak RSS in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
