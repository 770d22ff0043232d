"""Grouping and slice sorting on tiny hand-made series: splits, 4-D, gaps, duplicates."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.dicom.geometry import slice_normal
from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.volume import load_stack
from clisonix_cli.errors import (
    DuplicateInstanceError,
    GeometryError,
    InconsistentStackError,
)

MakeSlice = Callable[..., Path]


def _series(
    make_slice: MakeSlice,
    folder: Path,
    dists: list[float],
    *,
    iop: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    instances: list[int] | None = None,
    origin: tuple[float, float, float] = (-10.0, 20.0, 5.0),
    **kw: object,
) -> list[Path]:
    """Slices at ``origin + d * normal`` for each d, one file each (named in list order)."""
    normal = slice_normal(iop)
    out = []
    for k, d in enumerate(dists):
        ipp = np.asarray(origin) + d * normal
        inst = instances[k] if instances else k + 1
        out.append(
            make_slice(
                folder / f"f{k:03d}.dcm",
                ipp=ipp,
                iop=iop,
                instance=inst,
                fill=1000 * k,
                **kw,
            )  # type: ignore[arg-type]
        )
    return out


def test_oblique_slices_sorted_by_position_not_instance_number(
    make_slice: MakeSlice, tmp_path: Path, oblique_iop: tuple[float, ...]
) -> None:
    dists = [3.0, -1.5, 0.0, 1.5, 4.5, -3.0]
    instances = [1, 2, 3, 4, 5, 6]  # shuffled against the positions
    _series(
        make_slice,
        tmp_path,
        dists,
        iop=oblique_iop,
        instances=instances,
        spacing=(0.8, 0.6),
    )
    res = scan(tmp_path)
    assert len(res.stacks) == 1
    st = res.stacks[0]
    assert (st.n_slices, st.n_volumes, st.rows, st.cols) == (6, 1, 4, 6)
    order = sorted(range(len(dists)), key=lambda k: dists[k])
    assert st.files == tuple(f"f{k:03d}.dcm" for k in order)
    assert not any(p.blocking for p in st.problems)

    vol = load_stack(tmp_path, st)
    assert vol.data.shape == (6, 4, 6)
    # slice s of the volume is file order[s]; pixel (r, c) = 1000 * k + 100 r + c
    for s, k in enumerate(order):
        assert vol.data[s, 2, 3] == 1000 * k + 203
    aff = vol.affine_lps
    row_dir, col_dir = np.asarray(oblique_iop[:3]), np.asarray(oblique_iop[3:])
    normal = slice_normal(oblique_iop)
    for s, k in enumerate(order):
        ipp = np.array([-10.0, 20.0, 5.0]) + dists[k] * normal
        np.testing.assert_allclose(aff @ [s, 0, 0, 1], [*ipp, 1], atol=1e-6)
    # PixelSpacing[0] goes with rows (second IOP triplet), [1] with columns (first)
    np.testing.assert_allclose(aff[:3, 1], col_dir * 0.8, atol=1e-7)
    np.testing.assert_allclose(aff[:3, 2], row_dir * 0.6, atol=1e-7)
    np.testing.assert_allclose(aff[:3, 0], normal * 1.5, atol=1e-6)


def test_missing_slice_is_blocking_with_gaps_fail(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    _series(make_slice, tmp_path, [0, 2, 4, 8, 10])
    st = scan(tmp_path, gaps="fail").stacks[0]
    blocking = [p for p in st.problems if p.blocking]
    assert len(blocking) == 1
    assert blocking[0].code == InconsistentStackError.code
    assert "1 missing slice" in blocking[0].message
    with pytest.raises(InconsistentStackError, match="missing slice"):
        load_stack(tmp_path, st)


def test_missing_slices_split_into_runs_by_default(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    _series(make_slice, tmp_path, [0, 2, 4, 10, 12, 14, 16])
    stacks = scan(tmp_path).stacks
    assert [(s.stack_key, s.n_slices) for s in stacks] == [("1-run1", 3), ("2-run2", 4)]
    for st in stacks:
        assert not any(p.blocking for p in st.problems)
        assert (
            "2 missing slice(s)" in st.split_reason
            and "--gaps split" in st.split_reason
        )
    second = load_stack(tmp_path, stacks[1])
    np.testing.assert_allclose(second.affine_lps[:3, 0], [0, 0, 2])
    np.testing.assert_allclose(second.affine_lps[:3, 3], [-10, 20, 15])  # origin + 10


def test_missing_slices_kept_as_one_volume(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    _series(make_slice, tmp_path, [0, 2, 4, 10, 12, 14, 16])
    (st,) = scan(tmp_path, gaps="keep").stacks
    assert st.n_slices == 7 and not any(p.blocking for p in st.problems)
    vol = load_stack(tmp_path, st)
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, 2])  # the usual step
    assert vol.meta["SliceGaps"] == [{"after_index": 2, "missing": 2}]


def test_uneven_spacing_is_blocking(make_slice: MakeSlice, tmp_path: Path) -> None:
    _series(make_slice, tmp_path, [0, 1.5, 3, 4, 5, 6])
    st = scan(tmp_path).stacks[0]
    msgs = [p.message for p in st.problems if p.blocking]
    assert any("uneven slice spacing" in m for m in msgs), msgs
    with pytest.raises(InconsistentStackError, match="uneven"):
        load_stack(tmp_path, st)


def test_even_spacing_with_rounding_noise_is_fine(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    _series(make_slice, tmp_path, [0, 0.625, 1.2501, 1.875, 2.4999])
    st = scan(tmp_path).stacks[0]
    assert not st.problems


def test_duplicate_sop_instance_uid_kept_once(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    files = _series(make_slice, tmp_path, [0, 1, 2])
    shutil.copy(files[1], tmp_path / "zz_copy.dcm")
    res = scan(tmp_path)
    assert len(res.stacks) == 1
    st = res.stacks[0]
    assert st.n_slices == 3 and "zz_copy.dcm" not in st.files
    dup = [s for s in res.skipped if s.path == "zz_copy.dcm"]
    assert len(dup) == 1 and dup[0].code == DuplicateInstanceError.code == "CLX-E122"
    assert "f001.dcm" in dup[0].reason
    warnings = [p for p in st.problems if not p.blocking]
    assert any("1 duplicate instance" in w.message for w in warnings)
    assert {w.code for w in warnings} == {DuplicateInstanceError.code}
    assert not any(p.code == InconsistentStackError.code for p in st.problems)
    assert load_stack(tmp_path, st).data.shape == (3, 4, 6)


def test_two_echoes_make_two_stacks(make_slice: MakeSlice, tmp_path: Path) -> None:
    for echo, te in ((1, 10.0), (2, 30.0)):
        for k in range(3):
            make_slice(
                tmp_path / f"e{echo}_{k}.dcm",
                ipp=(0, 0, k),
                echo=echo,
                echo_time=te,
                instance=10 * echo + k,
                fill=echo * 10000,
            )
    res = scan(tmp_path)
    assert [s.stack_key for s in res.stacks] == ["1-echo1", "2-echo2"]
    for st, echo in zip(res.stacks, (1, 2), strict=True):
        assert st.n_slices == 3 and st.n_volumes == 1
        assert all(f.startswith(f"e{echo}_") for f in st.files)
        assert "echo" in st.split_reason and "2 stacks" in st.split_reason
        assert load_stack(tmp_path, st).data[0, 0, 0] == echo * 10000


def test_matrix_sizes_split_with_reason(make_slice: MakeSlice, tmp_path: Path) -> None:
    for k in range(3):
        make_slice(
            tmp_path / f"a{k}.dcm", ipp=(0, 0, k), rows=4, cols=6, instance=k + 1
        )
        make_slice(
            tmp_path / f"b{k}.dcm", ipp=(0, 0, k), rows=8, cols=8, instance=k + 4
        )
    res = scan(tmp_path)
    assert len(res.stacks) == 2
    assert {(s.rows, s.cols) for s in res.stacks} == {(4, 6), (8, 8)}
    for st in res.stacks:
        assert "matrix size" in st.split_reason
        assert st.stack_key.endswith(f"{st.rows}x{st.cols}")


def test_orientations_split(make_slice: MakeSlice, tmp_path: Path) -> None:
    _series(make_slice, tmp_path / "ax", [0, 1, 2], iop=(1, 0, 0, 0, 1, 0))
    _series(make_slice, tmp_path / "cor", [0, 1, 2], iop=(1, 0, 0, 0, 0, -1))
    res = scan(tmp_path)
    assert len(res.stacks) == 2
    assert all("orientation" in s.split_reason for s in res.stacks)


def test_repeated_positions_make_4d_ordered_by_acquisition(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    # volume t = acquisition t + 1; file names and instance numbers deliberately scrambled
    k = 0
    for t in (2, 0, 1):
        for z in (2.0, 0.0, 1.0):
            make_slice(
                tmp_path / f"x{k:02d}.dcm",
                ipp=(0, 0, z),
                acquisition=t + 1,
                instance=50 - k,
                fill=10000 * t + 1000 * int(z),
            )
            k += 1
    st = scan(tmp_path).stacks[0]
    assert (st.n_slices, st.n_volumes) == (3, 3)
    vol = load_stack(tmp_path, st)
    assert vol.data.shape == (3, 3, 4, 6)
    for t in range(3):
        for s in range(3):
            assert vol.data[t, s, 0, 0] == 10000 * t + 1000 * s
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [0, 0, 0])
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, 1])


def test_acquisitions_at_different_positions_split(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    for z in (0, 1, 2, 3):
        make_slice(tmp_path / f"a{z}.dcm", ipp=(0, 0, z), acquisition=1)
    for z in (2, 3, 4):
        make_slice(tmp_path / f"b{z}.dcm", ipp=(0, 0, z), acquisition=2)
    res = scan(tmp_path)
    assert [(s.stack_key, s.n_slices) for s in res.stacks] == [
        ("1-acq1", 4),
        ("2-acq2", 3),
    ]
    assert all("different slice positions" in s.split_reason for s in res.stacks)


def test_uneven_repeats_without_acquisitions_block(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    for z in (0, 1, 2):
        make_slice(tmp_path / f"a{z}.dcm", ipp=(0, 0, z))
    make_slice(tmp_path / "again1.dcm", ipp=(0, 0, 1))
    st = scan(tmp_path).stacks[0]
    assert any(
        p.blocking and "expected the same count" in p.message for p in st.problems
    )


def test_slope_intercept_differ_gives_float32(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    make_slice(tmp_path / "a.dcm", ipp=(0, 0, 0), slope=2.0, intercept=-10.0, fill=5)
    make_slice(tmp_path / "b.dcm", ipp=(0, 0, 1), slope=0.5, intercept=3.0, fill=5)
    st = scan(tmp_path).stacks[0]
    vol = load_stack(tmp_path, st)
    assert vol.data.dtype == np.float32
    assert (vol.slope, vol.intercept) == (1.0, 0.0)
    assert vol.data[0, 0, 1] == pytest.approx(2.0 * 6 - 10.0)
    assert vol.data[1, 0, 1] == pytest.approx(0.5 * 6 + 3.0)


def test_same_slope_intercept_keeps_stored_dtype(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    for z in range(2):
        make_slice(tmp_path / f"a{z}.dcm", ipp=(0, 0, z), slope=1.0, intercept=-1024.0)
    vol = load_stack(tmp_path, scan(tmp_path).stacks[0])
    assert vol.data.dtype == np.int16
    assert (vol.slope, vol.intercept) == (1.0, -1024.0)


def test_missing_position_is_geometry_error(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    make_slice(tmp_path / "a.dcm", ipp=(0, 0, 0))
    path = make_slice(tmp_path / "b.dcm", ipp=(0, 0, 1))
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.ImagePositionPatient
    ds.save_as(path)
    st = scan(tmp_path).stacks[0]
    assert st.geometry is None
    with pytest.raises(GeometryError, match=r"\(0020,0032\)"):
        load_stack(tmp_path, st)


def test_single_slice_uses_slice_thickness(
    make_slice: MakeSlice, tmp_path: Path
) -> None:
    make_slice(tmp_path / "a.dcm", ipp=(1, 2, 3), extra={"SliceThickness": 2.5})
    vol = load_stack(tmp_path, scan(tmp_path).stacks[0])
    assert vol.data.shape == (1, 4, 6)
    np.testing.assert_allclose(vol.affine_lps[:3, 0], [0, 0, 2.5])
    np.testing.assert_allclose(vol.affine_lps[:3, 3], [1, 2, 3])


def test_meta_has_no_patient_identifiers(make_slice: MakeSlice, tmp_path: Path) -> None:
    _series(make_slice, tmp_path, [0, 1])
    st = scan(tmp_path).stacks[0]
    vol = load_stack(tmp_path, st)
    text = repr(vol.meta) + repr(st)
    for secret in ("ZZSECRET", "19010101"):
        assert secret not in text
    assert vol.meta["Modality"] == "CT"
    assert vol.meta["Shape"] == [2, 4, 6]
    assert vol.meta["SeriesInstanceUID"] == st.series_uid


def test_image_types_split(make_slice: MakeSlice, tmp_path: Path) -> None:
    for part in ("M", "P"):
        for z in range(2):
            make_slice(
                tmp_path / f"{part}{z}.dcm",
                ipp=(0, 0, z),
                image_type=("ORIGINAL", "PRIMARY", part, "ND"),
            )
    res = scan(tmp_path)
    assert [s.stack_key for s in res.stacks] == [
        "1-original-primary-m-nd",
        "2-original-primary-p-nd",
    ]
    assert all("image type" in s.split_reason for s in res.stacks)
