"""The header index: fast reader vs pydicom, discovery by content, bad files, offsets."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.dicom.header import FileHeader, HeaderFailure
from clisonix_cli.dicom.index import read_header, scan
from clisonix_cli.errors import (
    InputError,
    NoPixelDataError,
    PixelDataSizeError,
    TruncatedFileError,
)

MakeSlice = Callable[..., Path]


def _header(path: Path, *, fast: bool = True) -> FileHeader:
    got = read_header(path, path.name, fast=fast)
    assert isinstance(got, FileHeader), got
    return got


def _same_values(a: FileHeader, b: FileHeader) -> None:
    assert a.values.keys() == b.values.keys()
    for key, val in a.values.items():
        other = b.values[key]
        if isinstance(val, tuple) and val and isinstance(val[0], float):
            np.testing.assert_allclose(val, other, err_msg=key)
        else:
            assert val == other, key


def test_explicit_and_implicit_match_pydicom(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    for implicit in (False, True):
        path = make_slice(
            tmp_path / f"x{int(implicit)}.dcm",
            ipp=(1.5, -2.25, 3.0),
            implicit=implicit,
            slope=2.0,
            intercept=-7.0,
            echo=2,
        )
        fast, slow = _header(path), _header(path, fast=False)
        assert (fast.parser, slow.parser) == ("fast", "pydicom")
        _same_values(fast, slow)
        assert fast.values["ImagePositionPatient"] == (1.5, -2.25, 3.0)
        assert fast.values["Rows"] == 4 and fast.values["RescaleSlope"] == 2.0
        assert fast.pixel == slow.pixel
        info = fast.pixel
        assert info.offset is not None and info.length == 4 * 6 * 2
        raw = path.read_bytes()[info.offset : info.offset + info.length]
        expected = 100 * np.arange(4)[:, None] + np.arange(6)[None, :]
        np.testing.assert_array_equal(np.frombuffer(raw, "<i2").reshape(4, 6), expected)


def test_no_patient_identifier_is_read(make_slice: MakeSlice, tmp_path: Path) -> None:
    path = make_slice(tmp_path / "a.dcm", ipp=(0, 0, 0))
    for fast in (True, False):
        text = repr(_header(path, fast=fast))
        assert "ZZSECRET" not in text and "19010101" not in text


def _undefined_lengths(path: Path) -> None:
    """Rewrite every sequence and item of a file with undefined length and delimiters."""
    import pydicom

    ds = pydicom.dcmread(path)

    def mark(d: object) -> None:
        for elem in d:  # type: ignore[attr-defined]
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for item in elem.value:
                    item.is_undefined_length_sequence_item = True
                    mark(item)

    mark(ds)
    ds.save_as(path)


def test_undefined_length_sequences_are_walked(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    inner = Dataset()
    inner.CodeValue = "X"
    nested = Dataset()
    nested.ConceptNameCodeSequence = Sequence([inner])
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.ContentSequence = Sequence([nested])
    for implicit in (False, True):
        path = make_slice(
            tmp_path / f"s{int(implicit)}.dcm",
            ipp=(0, 0, 7),
            implicit=implicit,
            extra={"ReferencedImageSequence": Sequence([item, item])},
        )
        _undefined_lengths(path)
        assert b"\xfe\xff\xdd\xe0" in path.read_bytes()  # sequence delimiters
        assert b"\xfe\xff\x0d\xe0" in path.read_bytes()  # item delimiters
        fast = _header(path)
        assert fast.parser == "fast"
        _same_values(fast, _header(path, fast=False))
        assert fast.values["ImagePositionPatient"] == (0.0, 0.0, 7.0)


def test_dataset_without_preamble_is_found(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    path = make_slice(tmp_path / "a.dcm", ipp=(0, 0, 0), implicit=True)
    raw = path.read_bytes()
    meta_end = raw.index(b"\x08\x00\x08\x00")  # first dataset element (0008,0008)
    bare = tmp_path / "bare"
    bare.write_bytes(raw[meta_end:])  # no preamble, no file meta: old ACR-NEMA style
    got = _header(bare)
    assert got.values["Rows"] == 4 and got.pixel.transfer_syntax == "1.2.840.10008.1.2"
    np.testing.assert_array_equal(
        np.frombuffer(
            bare.read_bytes()[got.pixel.offset : got.pixel.offset + 48],
            "<i2",  # type: ignore[operator]
        ).reshape(4, 6)[1],
        [100, 101, 102, 103, 104, 105],
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"clinical notes, nothing to see\n" * 20),
        ("report.pdf", b"%PDF-1.4\n" + b"\x00" * 400),
        ("sheet.xlsx", b"PK\x03\x04" + b"\x00" * 400),
        ("image.nii", (348).to_bytes(4, "little") + b"\x00" * 400),
        ("tiny", b"ab"),
    ],
)
def test_non_dicom_files(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    got = read_header(tmp_path / name, name)
    assert isinstance(got, HeaderFailure) and not got.is_dicom


def test_bad_files_are_skipped_with_codes(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    good = [make_slice(tmp_path / f"ok{k}.dcm", ipp=(0, 0, k)) for k in range(3)]
    raw = good[0].read_bytes()
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "cut_pixels.dcm").write_bytes(raw[:-20])
    (tmp_path / "cut_header.dcm").write_bytes(raw[:200])
    rng = np.random.default_rng(0)
    (tmp_path / "garbage.dcm").write_bytes(
        b"\x00" * 128 + b"DICM" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    )
    (tmp_path / "notes.txt").write_text("not dicom")
    res = scan(tmp_path)
    codes = {s.path: s.code for s in res.skipped}
    assert codes == {
        "empty.dcm": InputError.code,
        "cut_pixels.dcm": TruncatedFileError.code,
        "cut_header.dcm": TruncatedFileError.code,
        "garbage.dcm": InputError.code,
    }
    assert res.non_dicom == ["notes.txt"]
    assert (res.n_files, res.n_non_dicom, res.n_unreadable) == (8, 1, 1)
    assert res.n_dicom == 6
    assert len(res.stacks) == 1 and res.stacks[0].n_slices == 3
    reasons = {s.path: s.reason for s in res.skipped}
    assert "cut short" in reasons["cut_pixels.dcm"]


def test_pixel_data_smaller_than_claimed(make_slice: MakeSlice, tmp_path: Path) -> None:
    path = make_slice(tmp_path / "a.dcm", ipp=(0, 0, 0), extra={"NumberOfFrames": 3})
    got = read_header(path, "a.dcm")
    assert isinstance(got, HeaderFailure) and got.code == PixelDataSizeError.code
    assert "4x6x3" in got.reason


def test_scan_files_subset_and_order(make_slice: MakeSlice, tmp_path: Path) -> None:
    for k in range(4):
        make_slice(tmp_path / "d" / f"{k}.dcm", ipp=(0, 0, k))
    res = scan(
        tmp_path, files=[Path("d/1.dcm"), tmp_path / "d" / "0.dcm", Path("d/1.dcm")]
    )
    assert res.n_files == 2
    assert res.stacks[0].files == ("d/0.dcm", "d/1.dcm")


def test_preflight_lists_syntaxes(make_slice: MakeSlice, tmp_path: Path) -> None:
    make_slice(tmp_path / "a.dcm", ipp=(0, 0, 0))
    make_slice(tmp_path / "b.dcm", ipp=(0, 0, 1), implicit=True)
    ts = scan(tmp_path).transfer_syntaxes
    assert set(ts) == {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
    for info in ts.values():
        assert info["files"] == 1 and info["decoder"] == "native" and info["supported"]


# --- real files ------------------------------------------------------------------------


def test_fast_reader_matches_pydicom_on_real_files(shared_data: Path) -> None:
    folders = [
        shared_data / "pydicom-data",
        shared_data / "dcm_qa" / "In" / "Orientation",
    ]
    n_fast = 0
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            fast = read_header(path, path.name)
            slow = read_header(path, path.name, fast=False)
            assert isinstance(fast, FileHeader) == isinstance(slow, FileHeader), path
            if not isinstance(fast, FileHeader) or not isinstance(slow, FileHeader):
                assert isinstance(fast, HeaderFailure) and isinstance(
                    slow, HeaderFailure
                )
                assert fast.is_dicom == slow.is_dicom, path
                continue
            n_fast += fast.parser == "fast"
            _same_values(fast, slow)
            assert fast.has_pixels == slow.has_pixels, path
            assert fast.pixel == slow.pixel, path
            assert fast.csa == slow.csa, path
    assert n_fast > 50


def test_native_offsets_give_pydicom_pixels(shared_data: Path) -> None:
    import pydicom

    for name in ("693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "vlut_04.dcm"):
        path = shared_data / "pydicom-data" / name
        info = _header(path).pixel
        assert info.offset is not None and info.length is not None
        dtype = np.dtype(
            f"<{'i' if info.pixel_representation else 'u'}{info.bits_allocated // 8}"
        )
        raw = np.frombuffer(
            path.read_bytes(), dtype, count=info.rows * info.cols, offset=info.offset
        )
        expected = pydicom.dcmread(path).pixel_array
        stored_mask = (1 << info.bits_stored) - 1
        if info.pixel_representation == 0:
            raw = raw & stored_mask
        np.testing.assert_array_equal(raw.reshape(info.rows, info.cols), expected)


def test_enhanced_and_sr_and_colour(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "pydicom-data"
    for name in ("eCT_Supplemental.dcm", "SC_rgb.dcm", "emri_small.dcm"):
        shutil.copy(src / name, tmp_path / name)
    sr = sorted((shared_data / "dcm_qa" / "In").rglob("*.SR"))[0]
    shutil.copy(sr, tmp_path / "report.sr")
    res = scan(tmp_path)
    codes = {s.path: s.code for s in res.skipped}
    assert codes == {"report.sr": NoPixelDataError.code}
    assert "SR Storage" in res.skipped[0].reason  # names the non-image kind
    kinds = {s.files[0]: s for s in res.stacks}
    ect = kinds["eCT_Supplemental.dcm"]
    assert ect.kind == "enhanced" and ect.n_slices == 2 and ect.frames == (1, 0)
    assert ect.geometry is not None and ect.geometry.rescale[0] == (1.0, -1024.0)
    emri = kinds["emri_small.dcm"]  # legacy multi-frame: no per-frame position
    assert (emri.n_slices, emri.n_volumes, emri.geometry_kind) == (1, 10, "frames")
    assert not any(p.blocking for p in emri.problems) and emri.geometry is not None
    rgb = kinds["SC_rgb.dcm"]  # a colour secondary capture: 2-D, its Pixel Spacing
    assert (rgb.colour, rgb.geometry_kind) == ("RGB", "plane")


def test_qc_acquisition_fields_both_readers(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    """Dose, software and detector fields (QC compares them) are read by the fast reader
    and by pydicom alike, binary FD included; the station name never is."""
    import pydicom

    for implicit in (False, True):
        path = make_slice(
            tmp_path / f"q{int(implicit)}.dcm", ipp=(0, 0, 0), implicit=implicit
        )
        ds = pydicom.dcmread(path)
        ds.SoftwareVersions = ["VA20", "SP1"]
        ds.XRayTubeCurrent = 250
        ds.Exposure = 125
        ds.ExposureTime = 500
        ds.CTDIvol = 12.375
        ds.ReconstructionDiameter = "350.5"
        ds.ImagerPixelSpacing = ["0.143", "0.143"]
        ds.BurnedInAnnotation = "NO"
        ds.StationName = "CTROOM7"
        ds.save_as(path, implicit_vr=implicit, little_endian=True)
        fast, slow = _header(path), _header(path, fast=False)
        _same_values(fast, slow)
        assert fast.values["CTDIvol"] == 12.375 and fast.values["Exposure"] == 125
        assert fast.values["SoftwareVersions"] == ("VA20", "SP1")
        assert fast.values["ImagerPixelSpacing"] == (0.143, 0.143)
        assert "StationName" not in fast.values and "StationName" not in slow.values
    (stack,) = scan(tmp_path, files=[tmp_path / "q0.dcm"]).stacks
    meta = dict(stack.meta)
    assert meta["CTDIvol"] == 12.375 and meta["BurnedInAnnotation"] == "NO"
    assert b"CTROOM7" not in repr(stack).encode()
