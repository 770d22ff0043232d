"""reorient: the same as nibabel's as_closest_canonical once written as NIfTI."""

from __future__ import annotations

import itertools

import nibabel as nib
import numba
import numpy as np
import pytest

from clisonix_cli.errors import TransformFailedError
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.reorient import OP, apply, orientation, reference

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# NIfTI voxel (i, j, k) = (col, row, slice) of our (S, R, C) arrays
IJK_TO_SRC = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])


def as_nifti(img: Image) -> nib.Nifti1Image:
    """What the NIfTI writer does: transpose to (i, j, k) and flip LPS -> RAS."""
    return nib.Nifti1Image(
        np.ascontiguousarray(img.vol.transpose(2, 1, 0)),
        LPS_TO_RAS @ img.affine_lps @ IJK_TO_SRC,
    )


def grid_affines() -> list[np.ndarray]:
    """Every axis permutation and sign, with anisotropic spacing, plus oblique ones."""
    rng = np.random.default_rng(0)
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((-1.0, 1.0), repeat=3):
            a = np.eye(4)
            a[:3, :3] = np.eye(3)[:, perm] * signs * np.array([2.5, 0.7, 1.1])
            a[:3, 3] = rng.normal(size=3) * 100
            out.append(a)
    for _ in range(12):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        a = np.eye(4)
        a[:3, :3] = q @ np.diag(rng.uniform(0.5, 3.0, 3))
        a[:3, 3] = rng.normal(size=3) * 100
        out.append(a)
    return out


@pytest.mark.parametrize("affine", grid_affines())
def test_ras_is_nibabel_closest_canonical(affine: np.ndarray) -> None:
    vol = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    img = Image(vol, affine, slope=2.0, intercept=-3.0)
    out = apply(img, target="RAS")
    canonical = nib.as_closest_canonical(as_nifti(img))
    ours = as_nifti(out)
    np.testing.assert_array_equal(ours.get_fdata(), canonical.get_fdata())
    np.testing.assert_allclose(ours.affine, canonical.affine, atol=1e-9)
    assert out.vol.dtype == np.int16 and (out.slope, out.intercept) == (2.0, -3.0)
    assert nib.aff2axcodes(ours.affine) == ("R", "A", "S")
    ref = reference(img, target="RAS")
    assert ref.vol.tobytes() == out.vol.tobytes()
    np.testing.assert_allclose(ref.affine_lps, out.affine_lps, atol=1e-9)


@pytest.mark.parametrize("affine", grid_affines()[:48])  # axis-aligned grids
def test_lps_target_and_world_positions(affine: np.ndarray) -> None:
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    out = apply(Image(vol, affine), target="LPS")
    # col -> +x (L), row -> +y (P), slice -> +z (S): affine columns are (s, r, c), so the
    # direction matrix is a positive anti-diagonal
    direction = out.affine_lps[:3, :3][:, ::-1]
    assert np.all(np.diag(direction) > 0)
    np.testing.assert_allclose(direction - np.diag(np.diag(direction)), 0, atol=1e-12)
    # every value sits at the same world point as before
    before = {
        tuple(np.round(affine @ [*i, 1.0], 6)): vol[i] for i in np.ndindex(*vol.shape)
    }
    for i in np.ndindex(*out.vol.shape):
        assert before[tuple(np.round(out.affine_lps @ [*i, 1.0], 6))] == out.vol[i]


def test_axial_dicom_stack_is_already_lps() -> None:
    affine = np.array(
        [
            [0.0, 0.0, 0.7, -100.0],
            [0.0, 0.7, 0.0, -90.0],
            [2.5, 0.0, 0.0, 30.0],
            [0, 0, 0, 1],
        ]
    )
    assert orientation(affine, "LPS") == [(0, 1), (1, 1), (2, 1)]
    assert orientation(affine, "RAS") == [(0, 1), (1, -1), (2, -1)]
    vol = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    out = apply(Image(vol, affine), target="LPS")
    assert out.vol.tobytes() == vol.tobytes()
    np.testing.assert_array_equal(out.affine_lps, affine)


def test_geometry_hook_matches_apply() -> None:
    vol = np.zeros((3, 4, 5), dtype=np.uint8)
    assert OP.geometry is not None
    for affine in grid_affines()[::7]:
        for target in ("RAS", "LPS"):
            params = OP.bind({"target": target})
            shape, geo = OP.geometry(vol.shape, affine, params)
            out = OP.apply(Image(vol, affine), **params)
            assert shape == out.vol.shape
            np.testing.assert_allclose(geo, out.affine_lps, atol=1e-12)


@pytest.mark.parametrize(
    "direction",
    [
        [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0],
        ],  # the row axis has length 0
        [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]],  # slice and row parallel
    ],
)
def test_degenerate_affine_is_a_transform_error(direction: list[list[float]]) -> None:
    affine = np.eye(4)
    affine[:3, :3] = direction
    with pytest.raises(TransformFailedError, match="reorient"):
        apply(Image(np.zeros((2, 2, 2), np.float32), affine), target="RAS")


def test_same_bytes_with_one_or_two_threads() -> None:
    affine = grid_affines()[13]
    vol = np.random.default_rng(3).normal(size=(9, 16, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(apply(Image(vol, affine), target="RAS").vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
