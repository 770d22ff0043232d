"""Enhanced multi-frame objects and the geometry helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.dicom.geometry import (
    cluster_positions,
    mosaic_affine,
    mosaic_grid,
    slice_affine,
    slice_normal,
    spacing_problems,
)
from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.volume import load_stack, unpack_mosaic
from clisonix_cli.errors import GeometryError


def _enhanced(
    path: Path,
    frames: list[dict[str, object]],
    *,
    rows: int = 3,
    cols: int = 5,
    shared_slope: tuple[float, float] | None = (2.0, -5.0),
) -> Path:
    """An Enhanced MR object; each frame dict gives ipp, iop, stack, pos, t, value."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    def item(**kw: object) -> Dataset:
        ds = Dataset()
        for k, v in kw.items():
            setattr(ds, k, v)
        return ds

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "ZZSECRET^ENHANCED"
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.70"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.71"
    ds.SeriesNumber = 9
    shared = item(
        PixelMeasuresSequence=Sequence(
            [item(PixelSpacing=[0.5, 0.25], SliceThickness=2.0)]
        )
    )
    if shared_slope is not None:
        shared.PixelValueTransformationSequence = Sequence(
            [
                item(
                    RescaleSlope=shared_slope[0],
                    RescaleIntercept=shared_slope[1],
                    RescaleType="US",
                )
            ]
        )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    pixels = []
    for f in frames:
        fg = item(
            FrameContentSequence=Sequence(
                [
                    item(
                        StackID=str(f["stack"]),
                        InStackPositionNumber=int(f["pos"]),  # type: ignore[call-overload]
                        TemporalPositionIndex=int(f["t"]),  # type: ignore[call-overload]
                    )
                ]
            ),
            PlanePositionSequence=Sequence([item(ImagePositionPatient=list(f["ipp"]))]),  # type: ignore[call-overload]
            PlaneOrientationSequence=Sequence(
                [item(ImageOrientationPatient=list(f["iop"]))]
            ),  # type: ignore[call-overload]
        )
        per_frame.append(fg)
        pixels.append(np.full((rows, cols), f["value"], dtype=np.uint16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.stack(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def test_enhanced_4d_frames_sorted_and_scaled(tmp_path: Path) -> None:
    frames = []
    # stored order scrambled: t descending, z shuffled
    for t in (2, 1):
        for z in (4.0, 0.0, 2.0):
            frames.append(
                {
                    "ipp": (0.0, 0.0, z),
                    "iop": AXIAL,
                    "stack": 1,
                    "pos": 1,
                    "t": t,
                    "value": 100 * t + int(z),
                }
            )
    _enhanced(tmp_path / "emr.dcm", frames)
    res = scan(tmp_path)
    assert len(res.stacks) == 1
    st = res.stacks[0]
    assert (st.kind, st.n_slices, st.n_volumes) == ("enhanced", 3, 2)
    vol = load_stack(tmp_path, st)
    assert vol.data.shape == (2, 3, 3, 5)
    assert [int(vol.data[t, s, 0, 0]) for t in range(2) for s in range(3)] == [
        100, 102, 104, 200, 202, 204,
    ]  # fmt: skip
    assert (vol.slope, vol.intercept) == (2.0, -5.0)
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, 2])
    np.testing.assert_allclose(
        vol.affine_lps[:3, 1], [0, 0.5, 0]
    )  # rows: PixelSpacing[0]
    np.testing.assert_allclose(
        vol.affine_lps[:3, 2], [0.25, 0, 0]
    )  # cols: PixelSpacing[1]
    assert "ZZSECRET" not in repr(st) + repr(vol.meta)


def test_enhanced_stack_ids_split(tmp_path: Path) -> None:
    frames = [
        {
            "ipp": (0.0, 0.0, float(z)),
            "iop": AXIAL,
            "stack": 1,
            "pos": z + 1,
            "t": 1,
            "value": z,
        }
        for z in range(3)
    ] + [
        {
            "ipp": (0.0, float(-y), 0.0),
            "iop": CORONAL,
            "stack": 2,
            "pos": y + 1,
            "t": 1,
            "value": 50 + y,
        }
        for y in range(2)
    ]
    _enhanced(tmp_path / "emr.dcm", frames)
    stacks = scan(tmp_path).stacks
    assert [(s.n_slices, s.frames) for s in stacks] == [(3, (0, 1, 2)), (2, (4, 3))]
    assert all(
        "orientation" in s.split_reason and "Stack ID" in s.split_reason for s in stacks
    )
    coronal = load_stack(tmp_path, stacks[1])
    assert [int(v) for v in coronal.data[:, 0, 0]] == [51, 50]


def test_enhanced_ct_from_pydicom_data(shared_data: Path, tmp_path: Path) -> None:
    import pydicom

    src = shared_data / "pydicom-data" / "eCT_Supplemental.dcm"
    shutil.copy(src, tmp_path / "ect.dcm")
    (st,) = scan(tmp_path).stacks
    vol = load_stack(tmp_path, st)
    ref = pydicom.dcmread(src).pixel_array
    np.testing.assert_array_equal(
        vol.data, ref[[1, 0]]
    )  # sorted along the normal (0, 0, -1)
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [99.5, -301.5, -149.0])
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, -10.0])
    assert (vol.slope, vol.intercept) == (1.0, -1024.0)


# --- geometry helpers ------------------------------------------------------------------


def test_slice_normal_is_row_cross_column() -> None:
    np.testing.assert_allclose(slice_normal(AXIAL), [0, 0, 1])
    np.testing.assert_allclose(slice_normal(CORONAL), [0, 1, 0])
    np.testing.assert_allclose(
        slice_normal((0, 1, 0, 0, 0, -1)), [-1, 0, 0]
    )  # sagittal


def test_cluster_positions_stable_and_tolerant() -> None:
    assert cluster_positions([2.0, 0.0, 1.0, 0.004, 2.0]) == [[1, 3], [2], [0, 4]]


def test_spacing_problems() -> None:
    assert spacing_problems([0, 1, 2, 3]) == []
    (missing,) = spacing_problems([0, 1, 2, 4, 5])
    assert missing.blocking and missing.message.startswith("1 missing")
    (uneven,) = spacing_problems([0, 1, 2.5, 3.5])
    assert uneven.blocking and "uneven" in uneven.message
    tilted = np.array([[0, 0, 0], [0, 0.2, 1], [0, 0.4, 2]], dtype=float)
    (tilt,) = spacing_problems([0, 1, 2], tilted, np.array([0.0, 0.0, 1.0]))
    assert not tilt.blocking and "gantry tilt" in tilt.message


def test_slice_affine_single_slice_and_mosaic_grid() -> None:
    aff = slice_affine(AXIAL, (0.5, 0.25), np.array([[1.0, 2.0, 3.0]]), 4.0)
    np.testing.assert_allclose(
        aff[:3, :], [[0, 0, 0.25, 1], [0, 0.5, 0, 2], [4, 0, 0, 3]]
    )
    assert mosaic_grid(384, 384, 35) == (6, 64, 64)
    assert mosaic_grid(256, 256, 48) == (7, 36, 36)  # tiles that do not fill it
    with pytest.raises(GeometryError, match="does not divide"):
        mosaic_grid(10, 10, 35)


def test_unpack_mosaic_and_its_affine() -> None:
    frame = np.arange(36, dtype=np.int16).reshape(6, 6)  # 3x3 grid of 2x2 tiles, 7 used
    tiles = unpack_mosaic(frame, 7)
    assert tiles.shape == (7, 2, 2)
    np.testing.assert_array_equal(tiles[0], [[0, 1], [6, 7]])
    np.testing.assert_array_equal(
        tiles[4], [[14, 15], [20, 21]]
    )  # grid row 1, column 1
    aff = mosaic_affine(AXIAL, (1.0, 2.0), (0.0, 0.0, 0.0), 6, 6, 7, (0, 0, -1), 3.0)
    # origin shifted by half the size difference: (6 - 2) / 2 = 2 voxels each way
    np.testing.assert_allclose(aff[:3, 3], [2 * 2.0, 2 * 1.0, 0.0])
    np.testing.assert_allclose(
        aff[:3, 0], [0, 0, -3.0]
    )  # CSA normal flips the slice order


def test_mosaic_without_csa_header_is_blocking(
    shared_data: Path, tmp_path: Path
) -> None:
    import pydicom

    src = sorted(
        (shared_data / "dcm_qa" / "In" / "Orientation" / "ax" / "axasc35").glob("MR.*")
    )
    for k, path in enumerate(src):
        ds = pydicom.dcmread(path)
        del ds[0x00291010]
        ds.save_as(tmp_path / f"m{k}.dcm")
    (st,) = scan(tmp_path).stacks
    assert st.kind == "mosaic" and st.n_volumes == 2
    (prob,) = [p for p in st.problems if p.blocking]
    assert prob.code == GeometryError.code and "CSA header" in prob.message
    with pytest.raises(GeometryError, match="NumberOfImagesInMosaic"):
        load_stack(tmp_path, st)
