"""Pixel decoding against pydicom on real files, lossless pairs, and hostile headers."""

from __future__ import annotations

import shutil
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.dicom.syntax import decoder_for
from clisonix_cli.errors import ClisonixError

PixelInfoOf = Callable[[Path], PixelInfo]

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pydicom-data"
NAMES = sorted(p.name for p in DATA.glob("*.dcm")) if DATA.is_dir() else []

# Not greyscale image stacks: colour, YBR and palette images (CLX-E113).
NOT_GREYSCALE = [
    *(n for n in NAMES if n.startswith(("SC_", "US1_", "color-", "OBXXXX1A"))),
    "HTJ2KLossless_08_RGB.dcm",
    "HTJ2K_08_RGB.dcm",
    "JLSL_RGB_ILV0.dcm",
    "JLSL_RGB_ILV1.dcm",
    "JLSL_RGB_ILV2.dcm",
    "JLSN_RGB_ILV0.dcm",
    "OT-PAL-8-face.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "gdcm-US-ALOKA-16_big.dcm",
]
REJECTED = {
    **dict.fromkeys(NOT_GREYSCALE, "CLX-E113"),
    # The file ends inside its encapsulated Pixel Data (pydicom reads no element at all).
    "emri_small_jpeg_2k_lossless_too_short.dcm": "CLX-E101",
}
# pydicom 3.0 cannot decode these (1-bit RLE; Deflated Image Frame Compression):
# their reference is pydicom's decoding of the uncompressed twin.
TWIN = {
    "liver_rle.dcm": "liver.dcm",
    "liver_deflate.dcm": "liver.dcm",
    "liver_nonbyte_aligned_rle.dcm": "liver_nonbyte_aligned.dcm",
    "liver_nonbyte_aligned_deflate.dcm": "liver_nonbyte_aligned.dcm",
}
LOSSLESS_GROUPS = [
    ["MR2_UNCR.dcm", "MR2_J2KR.dcm"],
    ["693_UNCR.dcm", "693_J2KR.dcm"],
    [
        "emri_small.dcm",
        "emri_small_RLE.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ],
    [
        "liver.dcm",
        "liver_deflate.dcm",
        "liver_expb.dcm",
        "liver_j2k.dcm",
        "liver_rle.dcm",
    ],
    [
        "liver_nonbyte_aligned.dcm",
        "liver_nonbyte_aligned_deflate.dcm",
        "liver_nonbyte_aligned_j2k.dcm",
        "liver_nonbyte_aligned_rle.dcm",
    ],
    # palette indices, decoded with check_greyscale=False (the product rejects them)
    ["OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", "OBXXXX1A_rle.dcm"],
    ["OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_rle_2frame.dcm"],
]


def _reference(path: Path) -> np.ndarray:
    """pydicom's own ``Dataset.pixel_array``, as (F, R, C) in native byte order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:  # no Part 10 header: say what it is
            implicit, little = ds.original_encoding
            ds.file_meta.TransferSyntaxUID = (
                ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            )
        arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    arr = arr.reshape(frames, int(ds.Rows), int(ds.Columns))
    return arr.astype(arr.dtype.newbyteorder("="))


def _assert_clean_error(exc: ClisonixError, code: str, name: str) -> None:
    assert exc.code == code, exc.one_line()
    assert "\n" not in exc.one_line()
    assert name in exc.message


@pytest.mark.parametrize("name", NAMES or ["<pydicom-data absent>"])
def test_every_file_decodes_like_pydicom_or_fails_with_a_code(
    name: str, shared_data: Path, pixel_info: PixelInfoOf
) -> None:
    path = shared_data / "pydicom-data" / name
    if name in REJECTED:
        with pytest.raises(ClisonixError) as info:
            read_frames(path, label=name)
        _assert_clean_error(info.value, REJECTED[name], name)
        return
    arr = read_frames(path, label=name)
    ref = _reference(path.with_name(TWIN.get(name, name)))
    assert arr.dtype == ref.dtype and arr.dtype.isnative
    np.testing.assert_array_equal(arr, ref)
    assert arr.flags.c_contiguous and arr.flags.writeable
    layout = pixel_info(path)
    if layout.offset is not None:  # native: the fast path gives the same values
        np.testing.assert_array_equal(read_frames(path, info=layout), ref)


@pytest.mark.parametrize("group", LOSSLESS_GROUPS, ids=lambda g: g[0])
def test_lossless_variants_decode_identically(
    group: list[str], shared_data: Path, pixel_info: PixelInfoOf
) -> None:
    root = shared_data / "pydicom-data"
    first = read_frames(root / group[0], check_greyscale=False)
    for name in group[1:]:
        arr = read_frames(root / name, check_greyscale=False)
        assert arr.dtype == first.dtype, name
        np.testing.assert_array_equal(arr, first, err_msg=name)
        layout = pixel_info(root / name)
        if layout.offset is not None:
            fast = read_frames(root / name, info=layout, check_greyscale=False)
            np.testing.assert_array_equal(fast, first, err_msg=name)


def test_truncated_pixel_data_is_reported_as_truncated(
    shared_data: Path, pixel_info: PixelInfoOf
) -> None:
    path = shared_data / "pydicom-data" / "emri_small_jpeg_2k_lossless_too_short.dcm"
    for call in (lambda: read_frames(path, label="x.dcm"), lambda: pixel_info(path)):
        with pytest.raises(ClisonixError) as info:
            call()
        assert info.value.code == "CLX-E101"


def test_frame_subsets_in_any_order(shared_data: Path, pixel_info: PixelInfoOf) -> None:
    root = shared_data / "pydicom-data"
    full = read_frames(root / "emri_small.dcm")
    want = [3, 1, 1, 9]
    layout = pixel_info(root / "emri_small.dcm")
    for name in ("emri_small.dcm", "emri_small_RLE.dcm", "emri_small_big_endian.dcm"):
        np.testing.assert_array_equal(read_frames(root / name, frames=want), full[want])
    np.testing.assert_array_equal(
        read_frames(root / "emri_small.dcm", frames=want, info=layout), full[want]
    )
    np.testing.assert_array_equal(
        read_frames(root / "emri_small.dcm", frames=[4, 5], info=layout), full[4:6]
    )
    with pytest.raises(ClisonixError) as info:
        read_frames(root / "emri_small.dcm", frames=[10], info=layout, label="e.dcm")
    _assert_clean_error(info.value, "CLX-E112", "e.dcm")


def test_truncated_native_file_rejected_before_allocation(
    shared_data: Path, tmp_path: Path, pixel_info: PixelInfoOf
) -> None:
    src = shared_data / "pydicom-data" / "emri_small.dcm"
    layout = pixel_info(src)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src.read_bytes()[: (layout.offset or 0) + 1000])
    with pytest.raises(ClisonixError) as info:
        read_frames(cut, info=layout, label="cut.dcm")
    _assert_clean_error(info.value, "CLX-E112", "cut.dcm")
    assert "81920 bytes" in info.value.message and "1000 bytes" in info.value.message
    with pytest.raises(ClisonixError) as info:
        read_frames(cut, label="cut.dcm")
    assert info.value.code in ("CLX-E101", "CLX-E112")


# --- hand-made files ---------------------------------------------------------------------


def _image(
    rows: int, cols: int, *, frames: int = 1, bits: int = 16, signed: bool = False
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("2.25.1")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "2.25.1"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    return ds


def _save(ds: Dataset, path: Path, *, big_endian: bool = False) -> Path:
    if big_endian:
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.save_as(
            path, implicit_vr=False, little_endian=False, enforce_file_format=True
        )
    else:
        ds.save_as(path, enforce_file_format=True)
    return path


def test_huge_header_claim_is_rejected_without_allocating(
    tmp_path: Path, pixel_info: PixelInfoOf
) -> None:
    # 4 frames of 50000 x 50000: 100000 x 100000 pixels = 20 GB claimed, 128 bytes held.
    ds = _image(50000, 50000, frames=4)
    ds.PixelData = b"\0" * 128
    ds["PixelData"].VR = "OW"
    path = _save(ds, tmp_path / "huge.dcm")
    layout = pixel_info(path)
    for kwargs in ({}, {"info": layout}):
        tracemalloc.start()
        try:
            with pytest.raises(ClisonixError) as info:
                read_frames(path, label="huge.dcm", **kwargs)  # type: ignore[arg-type]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        _assert_clean_error(info.value, "CLX-E112", "huge.dcm")
        assert "20000000000 bytes" in info.value.message
        assert peak < 4 * 2**20, f"peak {peak} bytes while rejecting {kwargs}"


def test_huge_claim_in_compressed_data_is_rejected(tmp_path: Path) -> None:
    small = np.arange(64, dtype=np.uint16).reshape(8, 8)
    ds = _image(8, 8)
    ds.PixelData = small.tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    ds.Rows = ds.Columns = 60000  # a lie: the RLE frame cannot expand that far
    path = _save(ds, tmp_path / "rle.dcm")
    tracemalloc.start()
    try:
        with pytest.raises(ClisonixError) as info:
            read_frames(path, label="rle.dcm")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _assert_clean_error(info.value, "CLX-E112", "rle.dcm")
    assert peak < 4 * 2**20
    ds.Rows = ds.Columns = 8
    ds.NumberOfFrames = 1000  # one fragment, 1000 frames claimed
    _save(ds, path)
    with pytest.raises(ClisonixError) as info:
        read_frames(path, label="rle.dcm")
    _assert_clean_error(info.value, "CLX-E112", "rle.dcm")


def test_codestream_size_mismatch_is_rejected(
    shared_data: Path, tmp_path: Path
) -> None:
    for name in ("emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm"):
        ds = pydicom.dcmread(shared_data / "pydicom-data" / name)
        ds.Rows = 6400
        path = tmp_path / name
        ds.save_as(path)
        with pytest.raises(ClisonixError) as info:
            read_frames(path, label=name)
        _assert_clean_error(info.value, "CLX-E112", name)
        assert "64x64" in info.value.message


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_unused_high_bits_are_corrected_like_pydicom(
    tmp_path: Path, signed: bool, big_endian: bool, pixel_info: PixelInfoOf
) -> None:
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 2**16, size=(3, 5, 7), dtype=np.uint16)  # garbage high bits
    ds = _image(5, 7, frames=3, signed=signed)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = raw.astype(">u2" if big_endian else "<u2").tobytes()
    ds["PixelData"].VR = "OW"
    path = _save(ds, tmp_path / "bits.dcm", big_endian=big_endian)
    ref = _reference(path)
    assert ref.dtype == (np.int16 if signed else np.uint16)
    assert ref.min() >= (-2048 if signed else 0) and ref.max() < (
        2048 if signed else 4096
    )
    layout = pixel_info(path)
    assert layout.offset is not None
    np.testing.assert_array_equal(read_frames(path, info=layout), ref)
    np.testing.assert_array_equal(read_frames(path), ref)
    np.testing.assert_array_equal(
        read_frames(path, frames=[2, 0], info=layout), ref[[2, 0]]
    )


@pytest.mark.parametrize("bits", [8, 32])
def test_8_and_32_bit_native(
    tmp_path: Path, bits: int, pixel_info: PixelInfoOf
) -> None:
    rng = np.random.default_rng(bits)
    dtype = np.dtype(f"<i{bits // 8}")
    vals = rng.integers(
        np.iinfo(dtype).min, np.iinfo(dtype).max, size=(2, 6, 9), dtype=dtype
    )
    ds = _image(6, 9, frames=2, bits=bits, signed=True)
    ds.PixelData = vals.tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    path = _save(ds, tmp_path / f"b{bits}.dcm")
    layout = pixel_info(path)
    for arr in (read_frames(path), read_frames(path, info=layout)):
        assert arr.dtype == dtype.newbyteorder("=")
        np.testing.assert_array_equal(arr, vals)
    np.testing.assert_array_equal(_reference(path), vals)


def test_unsupported_syntax_and_missing_pixels(
    shared_data: Path, tmp_path: Path
) -> None:
    src = shared_data / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm"
    path = tmp_path / "mpeg.dcm"
    shutil.copy(src, path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 MP@ML
    ds.save_as(path)
    with pytest.raises(ClisonixError) as info:
        read_frames(path, label="mpeg.dcm")
    _assert_clean_error(info.value, "CLX-E110", "mpeg.dcm")
    assert decoder_for("1.2.840.10008.1.2.4.100") is None
    report = _image(4, 4)
    report.Modality = "SR"
    _save(report, tmp_path / "sr.dcm")
    with pytest.raises(ClisonixError) as info:
        read_frames(tmp_path / "sr.dcm", label="sr.dcm")
    _assert_clean_error(info.value, "CLX-E102", "sr.dcm")
    (tmp_path / "notes.txt").write_text("not dicom\n")
    with pytest.raises(ClisonixError) as info:
        read_frames(tmp_path / "notes.txt", label="notes.txt")
    assert info.value.code.startswith("CLX-E1") and "\n" not in info.value.one_line()


def test_decoder_for_names_the_installed_plugins() -> None:
    assert decoder_for(str(ExplicitVRLittleEndian)) == "native"
    assert decoder_for(str(ImplicitVRLittleEndian)) == "native"
    assert decoder_for(str(ExplicitVRBigEndian)) == "native"
    assert decoder_for("1.2.840.10008.1.2.1.99") == "pydicom-deflate"
    assert decoder_for("1.2.840.10008.1.2.8.1") == "zlib"
    assert decoder_for(str(RLELossless)) == "pylibjpeg-rle"
    assert decoder_for("1.2.840.10008.1.2.4.90") == "pylibjpeg-openjpeg"
    assert decoder_for("1.2.840.10008.1.2.4.201") == "pylibjpeg-openjpeg"
    assert decoder_for("1.2.840.10008.1.2.4.70") == "pylibjpeg-libjpeg"
    assert decoder_for("1.2.840.10008.1.2.4.80") == "pylibjpeg-libjpeg"
    assert decoder_for("1.2.840.10008.1.2.4.50") == "pylibjpeg-libjpeg"
    assert decoder_for("1.2.3.4") is None


def test_rle_encapsulated_helpers_round_trip(tmp_path: Path) -> None:
    """A multi-frame RLE file written by pydicom decodes per frame through pylibjpeg-rle."""
    rng = np.random.default_rng(3)
    vals = rng.integers(-3000, 3000, size=(4, 16, 12), dtype=np.int16)
    ds = _image(16, 12, frames=4, signed=True)
    from pydicom.pixels.encoders.base import RLELosslessEncoder

    frames = [
        RLELosslessEncoder.encode(
            f, encoding_plugin="pydicom", rows=16, columns=12, samples_per_pixel=1,
            bits_allocated=16, bits_stored=16, pixel_representation=1,
            photometric_interpretation="MONOCHROME2", number_of_frames=1,
        )
        for f in vals
    ]  # fmt: skip
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path = _save(ds, tmp_path / "rle4.dcm")
    np.testing.assert_array_equal(read_frames(path), vals)
    np.testing.assert_array_equal(read_frames(path, frames=[3, 0]), vals[[3, 0]])
