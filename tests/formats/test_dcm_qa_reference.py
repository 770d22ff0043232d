"""dcm_qa: every series with a reference NIfTI (dcm2niix) converts to the same image.

scan + load_stack + write_nifti, then both images brought to the closest canonical (RAS)
orientation: shapes and voxel values (after scaling) must be identical and affines within
1e-3 mm. Series are matched to ``Ref/NAME.nii`` by series number (the number after the last
underscore) and by top folder (Orientation and TotalReadoutTime reuse series numbers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.model import ScanResult, Stack
from clisonix_cli.dicom.volume import load_stack
from clisonix_cli.errors import NoPixelDataError
from clisonix_cli.formats.nifti import write_nifti

DCM_QA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dcm_qa"
REFS = sorted((DCM_QA / "Ref").glob("*.nii")) if (DCM_QA / "Ref").is_dir() else []
# Ref names of the Orientation folder start with the plane; the others are TotalReadoutTime.
_ORIENTATION_PREFIXES = ("ax_", "cor_", "sag_", "fMRI_")

_cache: dict[str, ScanResult] = {}


def _scan() -> ScanResult:
    if "in" not in _cache:
        _cache["in"] = scan(DCM_QA / "In")
    return _cache["in"]


def _stack_for(ref: Path) -> Stack:
    number = int(ref.stem.rsplit("_", 1)[1])
    top = (
        "Orientation"
        if ref.stem.startswith(_ORIENTATION_PREFIXES)
        else "TotalReadoutTime"
    )
    found = [
        st
        for st in _scan().stacks
        if st.series_number == number and st.files[0].split("/", 1)[0] == top
    ]
    assert len(found) == 1, (
        f"{ref.name}: {len(found)} stacks for series {number} in {top}"
    )
    return found[0]


def _require_data() -> None:
    if not REFS:
        pytest.skip(f"dcm_qa reference data not found at {DCM_QA}")


@pytest.mark.parametrize("ref", REFS, ids=[r.stem for r in REFS])
def test_series_matches_reference(ref: Path, tmp_path: Path) -> None:
    import nibabel as nib

    stack = _stack_for(ref)
    vol = load_stack(DCM_QA / "In", stack)
    out = tmp_path / f"{ref.stem}.nii.gz"
    written = write_nifti(
        out,
        vol.data,
        vol.affine_lps,
        slope=vol.slope,
        intercept=vol.intercept,
        sidecar=vol.meta,
    )
    assert written == [out, tmp_path / f"{ref.stem}.json"]
    ours = nib.as_closest_canonical(nib.load(out))
    theirs = nib.as_closest_canonical(nib.load(ref))
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3, rtol=0)


def test_reference_set_is_complete() -> None:
    _require_data()
    assert len(REFS) == 47
    stacks = _scan().stacks
    assert len(stacks) == 47  # one per series: nothing split, nothing lost
    assert all(not any(p.blocking for p in st.problems) for st in stacks)


def test_report_series_and_non_dicom_are_skipped() -> None:
    _require_data()
    res = _scan()
    report = [s for s in res.skipped if "PHOENIXZIPREPORT_0099/" in s.path]
    assert len(report) == 35
    assert {s.code for s in report} == {NoPixelDataError.code}
    assert all("no pixel data" in s.reason for s in report)
    assert len(res.skipped) == 35
    assert res.non_dicom == [
        "Orientation/ax/axasc35/6_ax_asc_35sl.nii",
        "Orientation/notes.txt",
        "Orientation/test_slice_time_Protocols_20131111.pdf",
        "TotalReadoutTime/PF_PAT_POS_PFOV_PEres_INTERP_test2_2017.09.22.xlsx",
        "TotalReadoutTime/notes.txt",
    ]
    assert (res.n_files, res.n_dicom, res.n_non_dicom) == (108, 103, 5)


def test_mosaic_matches_nibabel_wrapper() -> None:
    """Affine and tiles of one mosaic agree with nibabel's MosaicWrapper (independent code)."""
    _require_data()
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom.dicomwrappers import wrapper_from_data

    stack = next(
        st
        for st in _scan().stacks
        if st.files[0].startswith("Orientation/sag/sagdesc36/")
    )
    vol = load_stack(DCM_QA / "In", stack)
    wrapper = wrapper_from_data(pydicom.dcmread(DCM_QA / "In" / stack.files[0]))
    ref = wrapper.get_unscaled_data()  # (rows, cols, slices)
    np.testing.assert_array_equal(vol.data[0], np.transpose(ref, (2, 0, 1)))
    # nibabel's affine maps (row, col, slice); ours (slice, row, col)
    np.testing.assert_allclose(
        vol.affine_lps[:, [1, 2, 0, 3]], wrapper.affine, atol=1e-4
    )
