"""gaussian: sigma in mm, scipy's kernel and edges, separable float32 passes."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import ndimage

from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import _separable
from clisonix_cli.transforms.ops.gaussian import apply, reference, sigma_voxels

CT = np.array(
    [
        [0.0, 0.0, 0.7, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.5, 0.0, 0.0, 30.0],
        [0, 0, 0, 1.0],
    ]
)
rng = np.random.default_rng(0)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 1.5, 2.14, 7.9])
def test_half_kernel_is_scipys(sigma: float) -> None:
    from scipy.ndimage._filters import _gaussian_kernel1d

    radius = int(4.0 * sigma + 0.5)
    full = _gaussian_kernel1d(sigma, 0, radius)[::-1]
    half = _separable.gaussian_half_kernel(sigma)
    assert half.dtype == np.float32 and half.shape == (radius + 1,)
    np.testing.assert_array_equal(half, full[radius:].astype(np.float32))


def test_sigma_is_in_millimetres() -> None:
    img = Image(np.zeros((2, 2, 2), np.float32), CT)
    assert sigma_voxels(img, (2.5, 1.4, 0.7)) == pytest.approx((1.0, 2.0, 1.0))
    vol = rng.uniform(-1000, 3000, (9, 12, 10)).astype(np.float32)
    out = apply(Image(vol, CT), sigma=(2.5, 1.4, 0.7))
    want = ndimage.gaussian_filter(vol, (1.0, 2.0, 1.0), mode="nearest", truncate=4.0)
    np.testing.assert_allclose(out.vol, want, atol=2e-3, rtol=1e-6)


@pytest.mark.parametrize(
    "sigma",
    [
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 3.0),
        (5.0, 0.0, 0.0),
        (0.0, 9.0, 0.0),
        (20.0, 20.0, 20.0),
    ],
)
def test_axes_alone_and_kernels_wider_than_the_volume(
    sigma: tuple[float, float, float],
) -> None:
    vol = rng.integers(-1024, 3071, (5, 4, 7)).astype(np.int16)
    img = Image(vol, CT, slope=0.5, intercept=3.25)
    out = apply(img, sigma=sigma)
    assert out.vol.dtype == np.float32 and (out.slope, out.intercept) == (1.0, 0.0)
    np.testing.assert_allclose(
        out.vol, reference(img, sigma=sigma).vol, atol=2e-3, rtol=1e-6
    )
    if sigma == (0.0, 0.0, 0.0):
        np.testing.assert_array_equal(out.vol, (vol * 0.5 + 3.25).astype(np.float32))


def test_constant_stays_constant_and_mean_is_kept() -> None:
    out = apply(Image(np.full((6, 7, 8), 40.0, np.float32), CT), sigma=(3.0, 3.0, 3.0))
    np.testing.assert_allclose(out.vol, 40.0, rtol=1e-6)
    spike = np.zeros((21, 21, 21), np.float32)
    spike[10, 10, 10] = 1000.0
    blurred = apply(Image(spike, np.eye(4)), sigma=(1.5, 1.5, 1.5)).vol
    assert blurred.sum() == pytest.approx(1000.0, rel=1e-5)
    assert blurred[10, 10, 10] == blurred.max()
    np.testing.assert_allclose(blurred, blurred[::-1, ::-1, ::-1], rtol=1e-6)


def test_same_bytes_with_one_or_two_threads() -> None:
    vol = rng.normal(size=(16, 16, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(apply(Image(vol, CT), sigma=(3.0, 1.5, 1.0)).vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
