"""resample: grid convention, affine update, linear/nearest against scipy."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import ndimage

from clisonix_cli.errors import TransformFailedError
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.resample import OP, apply, grid, reference

# axial CT-like grid: slices 2.5 mm along +z, rows 0.7 mm along +y, cols 0.7 mm along +x
CT = np.array(
    [
        [0.0, 0.0, 0.7, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.5, 0.0, 0.0, 30.0],
        [0, 0, 0, 1.0],
    ]
)
rng = np.random.default_rng(0)
q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = q @ np.diag([1.25, 0.8, 0.55])
OBLIQUE[:3, 3] = [12.0, -40.0, 7.5]


@pytest.mark.parametrize(
    ("n", "old", "new", "expected"),
    [
        (512, 0.7, 1.0, 359),  # (511 * 0.7 = 357.7) -> 358 + 1
        (200, 2.5, 1.0, 499),  # 497.5 rounds up (halves round up) -> 498 + 1
        (1, 0.7, 1.0, 1),
        (3, 1.0, 2.0, 2),  # 1.0 -> 1 + 1
        (4, 1.0, 2.0, 3),  # 1.5 rounds up -> 2 + 1
        (10, 1.0, 0.5, 19),
    ],
)
def test_output_size(n: int, old: float, new: float, expected: int) -> None:
    affine = np.diag([old, old, old, 1.0])
    shape, _, _ = grid((n, n, n), affine, (new, new, new))
    assert shape == (expected, expected, expected)


def test_affine_keeps_origin_and_directions() -> None:
    shape, affine, zooms = grid((20, 30, 40), OBLIQUE, (1.0, 0.0, 2.0))
    np.testing.assert_allclose(affine[:, 3], OBLIQUE[:, 3], atol=0)
    np.testing.assert_allclose(
        np.linalg.norm(affine[:3, :3], axis=0), [1.0, 0.8, 2.0], rtol=1e-12
    )
    for j in range(3):
        cos = affine[:3, j] @ OBLIQUE[:3, j]
        cos /= np.linalg.norm(affine[:3, j]) * np.linalg.norm(OBLIQUE[:3, j])
        assert cos == pytest.approx(1.0, abs=1e-12)
    assert shape[1] == 30 and zooms[1] == 1.0  # 0 keeps the axis
    assert OP.geometry is not None
    assert OP.geometry((20, 30, 40), OBLIQUE, {"spacing": (1.0, 0.0, 2.0)})[0] == shape


def test_linear_reproduces_a_linear_field() -> None:
    """Trilinear interpolation is exact on f(world) = a . world + b at every output voxel."""
    shape = (6, 9, 11)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = idx @ OBLIQUE[:3, :3].T + OBLIQUE[:3, 3]
    a, b = np.array([3.0, -2.0, 5.0]), 100.0
    vol = (world @ a + b).astype(np.float32)
    out = apply(Image(vol, OBLIQUE), spacing=(0.6, 0.5, 0.9))
    out_idx = np.stack(
        np.meshgrid(*[np.arange(n) for n in out.vol.shape], indexing="ij"), -1
    )
    # clamp to the input's last centre (mode="nearest") before evaluating the field
    in_idx = np.linalg.solve(
        OBLIQUE[:3, :3],
        (out_idx @ out.affine_lps[:3, :3].T + out.affine_lps[:3, 3] - OBLIQUE[:3, 3])[
            ..., None
        ],
    )[..., 0]
    in_idx = np.clip(in_idx, 0, np.array(shape) - 1)
    expected = (in_idx @ OBLIQUE[:3, :3].T + OBLIQUE[:3, 3]) @ a + b
    np.testing.assert_allclose(out.vol, expected, atol=2e-3)


def test_linear_matches_map_coordinates_and_zoom_on_a_common_grid() -> None:
    vol = rng.uniform(-1000, 3000, (5, 7, 9)).astype(np.float32)
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    img = Image(vol, affine)
    out = apply(img, spacing=(1.0, 0.5, 2.0))
    assert out.vol.shape == (9, 13, 5)
    # here (n' - 1) * d' == (n - 1) * d on every axis, so zoom's corner-aligned grid is ours
    zoomed = ndimage.zoom(vol, (9 / 5, 13 / 7, 5 / 9), order=1, mode="nearest")
    np.testing.assert_allclose(out.vol, zoomed, atol=2e-3)
    np.testing.assert_allclose(
        out.vol, reference(img, spacing=(1.0, 0.5, 2.0)).vol, atol=2e-3
    )


def test_real_values_float32_out() -> None:
    vol = rng.integers(-1024, 3000, (4, 5, 6)).astype(np.int16)
    img = Image(vol, CT, slope=0.5, intercept=3.25)
    out = apply(img, spacing=(2.5, 0.7, 0.7))  # same spacing: identity grid
    assert out.vol.dtype == np.float32 and (out.slope, out.intercept) == (1.0, 0.0)
    np.testing.assert_array_equal(out.vol, (vol * 0.5 + 3.25).astype(np.float32))
    np.testing.assert_array_equal(out.affine_lps, CT)


def test_nearest_keeps_dtype_and_rescale_and_is_exact() -> None:
    vol = rng.integers(-1024, 3000, (7, 8, 9)).astype(np.int16)
    img = Image(vol, OBLIQUE, slope=2.0, intercept=-1024.0)
    out = apply(img, spacing=(0.6, 1.7, 0.55), order="nearest")
    assert out.vol.dtype == np.int16 and (out.slope, out.intercept) == (2.0, -1024.0)
    ref = reference(img, spacing=(0.6, 1.7, 0.55), order="nearest")
    np.testing.assert_array_equal(out.vol, ref.vol)
    # every output value is the input voxel whose centre is nearest (halves round up)
    z = np.array([0.6 / 1.25, 1.7 / 0.8, 0.55 / 0.55])
    for o in [(0, 0, 0), (3, 2, 5), tuple(np.array(out.vol.shape) - 1)]:
        src = np.minimum(
            np.floor(np.array(o) * z + 0.5).astype(int), np.array(vol.shape) - 1
        )
        assert out.vol[o] == vol[tuple(src)]


def test_too_large_or_degenerate_grids_fail_cleanly() -> None:
    vol = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(TransformFailedError, match="coarser spacing"):
        apply(
            Image(vol, np.diag([1000.0, 1000.0, 1000.0, 1.0])), spacing=(0.1, 0.1, 0.1)
        )
    flat = np.diag([1.0, 0.0, 1.0, 1.0])
    with pytest.raises(TransformFailedError, match="voxel sizes"):
        apply(Image(vol, flat), spacing=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("order", ["linear", "nearest"])
def test_same_bytes_with_one_or_two_threads(order: str) -> None:
    vol = rng.normal(size=(16, 16, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            out = apply(Image(vol, OBLIQUE), spacing=(0.9, 0.7, 0.4), order=order)
            results.append(out.vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
