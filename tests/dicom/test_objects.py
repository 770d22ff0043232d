"""New object kinds and their bad inputs: projection spacing, RT dose grids, legacy
multi-frame, palettes and LUTs that contradict themselves. Each bad input is one line with
a stable code, and the rest of the batch goes on."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.volume import load_stack
from clisonix_cli.errors import (
    ColourLayoutError,
    FrameCountError,
    PaletteError,
    SpacingError,
    VoiLutError,
)
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import voi


def _dataset(
    rows: int = 4, cols: int = 6, frames: int = 1, samples: int = 1, **attrs: Any
) -> Any:
    """A small uint16 image dataset (explicit VR little endian) with ``attrs`` set."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = attrs.pop(
        "SOPClassUID", "1.2.840.10008.5.1.4.1.1.1.1"
    )
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(attrs)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.71"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", str(attrs)])
    ds.Modality = "DX"
    ds.SeriesNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    values = np.arange(rows * cols * frames * samples, dtype=np.uint16)
    ds.PixelData = values.tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    assert isinstance(ds, pydicom.Dataset)
    return ds


Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def _write(name: str, **attrs: Any) -> Path:
        folder = tmp_path / "in"
        folder.mkdir(exist_ok=True)
        path = folder / name
        ds = _dataset(**attrs)
        ds.save_as(path, enforce_file_format=True)
        return path

    return _write


def test_projection_spacing_from_imager_spacing_and_magnification(
    write: Write, tmp_path: Path
) -> None:
    write(
        "dx.dcm",
        ImagerPixelSpacing=[0.2, 0.1],
        EstimatedRadiographicMagnificationFactor=1.25,
        PatientOrientation=["A", "F"],
    )
    (st,) = scan(tmp_path / "in").stacks
    assert st.geometry_kind == "projection"
    vol = load_stack(tmp_path / "in", st)
    np.testing.assert_allclose(vol.affine_lps[:3, 1], [0, 0.16, 0])  # rows: 0.2 / 1.25
    np.testing.assert_allclose(vol.affine_lps[:3, 2], [0.08, 0, 0])  # cols: 0.1 / 1.25
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [-0.2, -0.24, 0])  # centred
    assert vol.meta["SpacingSource"].startswith("ImagerPixelSpacing/")
    assert vol.meta["PatientOrientation"] == ["A", "F"]


@pytest.mark.parametrize(
    "attrs",
    [
        {"ImagerPixelSpacing": [0.0, 0.1]},
        {"ImagerPixelSpacing": [-0.1, -0.1]},
        {
            "ImagerPixelSpacing": [0.1, 0.1],
            "EstimatedRadiographicMagnificationFactor": 0,
        },
    ],
    ids=["zero", "negative", "magnification"],
)
def test_bad_projection_spacing_is_one_line_and_the_batch_goes_on(
    write: Write, tmp_path: Path, attrs: dict[str, Any]
) -> None:
    write("bad.dcm", **attrs)
    write("good.dcm", ImagerPixelSpacing=[0.1, 0.1])
    stacks = {s.files[0]: s for s in scan(tmp_path / "in").stacks}
    (problem,) = [p for p in stacks["bad.dcm"].problems if p.blocking]
    assert problem.code == SpacingError.code and "\n" not in problem.message
    with pytest.raises(SpacingError):
        load_stack(tmp_path / "in", stacks["bad.dcm"])
    assert load_stack(tmp_path / "in", stacks["good.dcm"]).data.shape == (1, 4, 6)


def test_rt_dose_frames_are_placed_by_grid_frame_offsets(
    write: Write, tmp_path: Path
) -> None:
    write(
        "dose.dcm",
        frames=3,
        SOPClassUID="1.2.840.10008.5.1.4.1.1.481.2",
        Modality="RTDOSE",
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        ImagePositionPatient=[-10, -20, 30],
        PixelSpacing=[2.5, 2.5],
        GridFrameOffsetVector=[30, 33, 36],  # the absolute form: first = z of IPP
        DoseGridScaling=0.001,
        DoseUnits="GY",
        DoseType="PHYSICAL",
    )
    (st,) = scan(tmp_path / "in").stacks
    assert (st.kind, st.n_slices, st.geometry_kind) == ("multiframe", 3, "")
    vol = load_stack(tmp_path / "in", st)
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, 3])
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [-10, -20, 30])
    assert vol.slope == pytest.approx(0.001) and vol.meta["DoseUnits"] == "GY"


def test_rt_dose_with_a_short_offset_vector_fails_with_a_code(
    write: Write, tmp_path: Path
) -> None:
    write(
        "dose.dcm",
        frames=3,
        Modality="RTDOSE",
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        ImagePositionPatient=[0, 0, 0],
        PixelSpacing=[2.5, 2.5],
        GridFrameOffsetVector=[0, 3],
    )
    (st,) = scan(tmp_path / "in").stacks
    with pytest.raises(FrameCountError, match="Grid Frame Offset Vector"):
        load_stack(tmp_path / "in", st)


def test_frame_time_vector_must_match_the_frames(write: Write, tmp_path: Path) -> None:
    write("cine.dcm", frames=3, Modality="US", FrameTimeVector=[0, 33])
    (st,) = scan(tmp_path / "in").stacks
    with pytest.raises(FrameCountError, match="Frame Time Vector"):
        load_stack(tmp_path / "in", st)


def test_cine_frames_on_the_third_axis(write: Write, tmp_path: Path) -> None:
    write("cine.dcm", frames=3, Modality="US", FrameTime=33.3)
    (st,) = scan(tmp_path / "in").stacks
    vol = load_stack(tmp_path / "in", st)
    assert vol.data.shape == (3, 4, 6) and vol.meta["Geometry"] == "pixel"
    assert vol.meta["FrameTime"] == pytest.approx(33.3)
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [-2.5, -1.5, -1.0])


def test_monochrome2_with_three_samples_is_skipped_with_a_code(
    write: Write, tmp_path: Path
) -> None:
    write("bad.dcm", samples=3, SamplesPerPixel=3, PlanarConfiguration=0)
    write("good.dcm")
    result = scan(tmp_path / "in")
    assert [(s.path, s.code) for s in result.skipped] == [
        ("bad.dcm", ColourLayoutError.code)
    ]
    assert [s.files[0] for s in result.stacks] == ["good.dcm"]


def test_palette_without_lut_data_fails_with_a_code(
    shared_data: Path, tmp_path: Path
) -> None:
    import pydicom

    folder = tmp_path / "in"
    folder.mkdir()
    ds = pydicom.dcmread(shared_data / "pydicom-data" / "OBXXXX1A.dcm")
    del ds.GreenPaletteColorLookupTableData
    ds.save_as(folder / "short.dcm")
    (st,) = scan(folder).stacks
    with pytest.raises(PaletteError, match="Green Palette"):
        load_stack(folder, st)


def test_voi_lut_whose_data_disagrees_with_its_descriptor(
    shared_data: Path, tmp_path: Path
) -> None:
    import pydicom

    folder = tmp_path / "in"
    folder.mkdir()
    ds = pydicom.dcmread(shared_data / "pydicom-data" / "vlut_04.dcm")
    item = ds.VOILUTSequence[0]
    item.LUTDescriptor = [int(item.LUTDescriptor[0]) + 10, *item.LUTDescriptor[1:]]
    ds.save_as(folder / "vlut.dcm")
    (st,) = scan(folder).stacks
    with pytest.raises(VoiLutError, match="LUT Data"):
        load_stack(folder, st)


def test_voi_refuses_a_window_the_file_does_not_have() -> None:
    img = Image(
        np.zeros((1, 2, 2), np.uint16), np.eye(4), display={"windows": ((1, 2),)}
    )
    with pytest.raises(VoiLutError, match="index=1"):
        voi.apply(img, index=1)
    with pytest.raises(VoiLutError, match="no \\(0028,3010\\)"):
        voi.apply(img, source="lut")


def test_monochrome1_is_inverted_and_recorded(write: Write, tmp_path: Path) -> None:
    write(
        "m1.dcm",
        PhotometricInterpretation="MONOCHROME1",
        WindowCenter=12,
        WindowWidth=24,
    )
    (st,) = scan(tmp_path / "in").stacks
    vol = load_stack(tmp_path / "in", st)
    assert vol.meta["PhotometricInterpretation"] == "MONOCHROME1"
    img = Image(vol.data[0:1], vol.affine_lps, vol.slope, vol.intercept, vol.display)
    out = voi.apply(img).vol
    assert out[0, 0, 0] == 255 and out[0, -1, -1] == 0  # minimum is white


def test_legacy_multiframe_keeps_its_plane_and_puts_frames_on_the_fourth_axis(
    shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_data / "pydicom-data" / "emri_small.dcm", folder)
    (st,) = scan(folder).stacks
    vol = load_stack(folder, st)
    assert vol.data.shape == (10, 1, 64, 64) and st.geometry_kind == "frames"
    assert vol.meta["SpacingSource"] == "none"  # emri_small carries no plane at all
    assert "4th axis" in vol.meta["FrameAxis"]


def _nm(**attrs: Any) -> dict[str, Any]:
    return {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.20", "Modality": "NM", **attrs}


def test_nm_whole_body_splits_by_detector(write: Write, tmp_path: Path) -> None:
    from pydicom.tag import Tag

    write(
        "wb.dcm",
        frames=2,
        **_nm(
            FrameIncrementPointer=[Tag(0x0054, 0x0020)],
            DetectorVector=[1, 2],
            NumberOfDetectors=2,
            PixelSpacing=[2.4, 2.4],
        ),
    )
    stacks = scan(tmp_path / "in").stacks
    assert [s.stack_key for s in stacks] == ["1-det1", "2-det2"]
    assert all("DetectorVector" in s.split_reason for s in stacks)
    vols = [load_stack(tmp_path / "in", s) for s in stacks]
    assert [v.data.shape for v in vols] == [(1, 4, 6), (1, 4, 6)]
    assert int(vols[1].data[0, 0, 0]) == 24  # the second frame
    assert stacks[0].geometry_kind == "plane"


def test_nm_reconstructed_tomogram_is_placed_by_its_slice_vector(
    write: Write, tmp_path: Path
) -> None:
    from pydicom.tag import Tag

    write(
        "tomo.dcm",
        frames=4,
        **_nm(
            FrameIncrementPointer=[Tag(0x0054, 0x0080)],
            SliceVector=[2, 1, 3, 4],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[0, 0, 10],
            PixelSpacing=[4.0, 4.0],
            SpacingBetweenSlices=4.0,
        ),
    )
    (st,) = scan(tmp_path / "in").stacks
    assert st.frames == (1, 0, 2, 3) and st.geometry_kind == ""
    vol = load_stack(tmp_path / "in", st)
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, 4])
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [0, 0, 10])


def test_nm_vector_of_the_wrong_length_fails_with_a_code(
    write: Write, tmp_path: Path
) -> None:
    from pydicom.tag import Tag

    write(
        "dyn.dcm",
        frames=3,
        **_nm(FrameIncrementPointer=[Tag(0x0054, 0x0070)], TimeSlotVector=[1, 2]),
    )
    (st,) = scan(tmp_path / "in").stacks
    with pytest.raises(FrameCountError, match="TimeSlotVector"):
        load_stack(tmp_path / "in", st)
