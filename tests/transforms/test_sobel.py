"""sobel: scipy's per-axis Sobel, magnitude, chunk borders, spacing-aware scale."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import ndimage

from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.sobel import CHUNK, apply, reference

CT = np.array(
    [
        [0.0, 0.0, 0.7, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.5, 0.0, 0.0, 30.0],
        [0, 0, 0, 1.0],
    ]
)
rng = np.random.default_rng(0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ramp_reads_32_per_voxel_or_its_slope_per_mm(axis: int) -> None:
    shape = (7, 8, 9)
    ramp = 3.0 * np.indices(shape)[axis].astype(np.float32)
    raw = apply(Image(ramp, CT)).vol
    inner = (slice(1, -1),) * 3
    np.testing.assert_allclose(raw[inner], 32 * 3.0, rtol=1e-6)
    edge = [slice(1, -1)] * 3
    edge[axis] = slice(0, 1)  # one-sided at the edge with mode="nearest": half
    np.testing.assert_allclose(raw[tuple(edge)], 16 * 3.0, rtol=1e-6)
    per_mm = apply(Image(ramp, CT), per_mm=True).vol
    spacing = (2.5, 0.7, 0.7)[axis]
    np.testing.assert_allclose(per_mm[inner], 3.0 / spacing, rtol=1e-6)


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (1, 5, 3), (CHUNK + 1, 4, 3), (2 * CHUNK + 5, 3, 6)]
)
def test_matches_scipy_across_chunk_borders(shape: tuple[int, int, int]) -> None:
    vol = rng.uniform(-1000, 3000, shape).astype(np.float32)
    out = apply(Image(vol, CT)).vol
    g = [
        ndimage.sobel(vol, axis=a, mode="nearest").astype(np.float64) for a in range(3)
    ]
    want = np.sqrt(sum(x * x for x in g))
    np.testing.assert_allclose(out, want, atol=0.1, rtol=1e-5)


def test_rescale_folded_and_constant_gives_zero() -> None:
    vol = rng.integers(-1024, 3071, (5, 6, 7)).astype(np.int16)
    img = Image(vol, CT, slope=0.5, intercept=3.25)
    out = apply(img, per_mm=True)
    assert out.vol.dtype == np.float32 and (out.slope, out.intercept) == (1.0, 0.0)
    np.testing.assert_allclose(
        out.vol, reference(img, per_mm=True).vol, atol=0.01, rtol=1e-5
    )
    flat = apply(Image(np.full((4, 5, 6), -1000.0, np.float32), CT)).vol
    np.testing.assert_array_equal(flat, 0.0)


def test_same_bytes_with_one_or_two_threads() -> None:
    vol = rng.normal(size=(2 * CHUNK + 3, 8, 8)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(apply(Image(vol, CT), per_mm=True).vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
