"""clahe: identical to skimage's equalize_adapthist slice by slice, on [0, 1] input."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from skimage.exposure import equalize_adapthist

from clisonix_cli.errors import ParameterRangeError, TransformFailedError
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.clahe import OP, apply, reference

AFFINE = np.diag([2.5, 0.7, 0.7, 1.0])
rng = np.random.default_rng(0)


def phantom(shape: tuple[int, int, int]) -> np.ndarray:
    """CT-like slices: air, a bright disc with a smooth ramp, noise (heavy clipping)."""
    s, r, c = np.indices(shape)
    disc = (r - shape[1] / 2) ** 2 + (c - shape[2] / 2) ** 2 < (min(shape[1:]) / 3) ** 2
    vol = np.where(disc, 40.0 + 3.0 * c + 10.0 * s, -1000.0)
    return (vol + rng.normal(0, 20, shape)).astype(np.float32)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"kernel_size": 7, "clip_limit": 0.05, "nbins": 64},
        {"kernel_size": 16, "clip_limit": 0.0},
        {"kernel_size": 64, "clip_limit": 0.01, "nbins": 1000},  # larger than the slice
        {"kernel_size": 1, "nbins": 2},
    ],
)
def test_identical_to_skimage(params: dict[str, float]) -> None:
    vol = phantom((2, 33, 40))
    out = apply(Image(vol, AFFINE), **params)
    bound = OP.bind(params)
    lo, hi = float(vol.min()), float(vol.max())
    norm = ((vol.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    kernel = bound["kernel_size"] or (33 // 8, 40 // 8)
    for s in range(2):
        want = equalize_adapthist(
            norm[s],
            kernel_size=kernel,
            clip_limit=bound["clip_limit"],
            nbins=bound["nbins"],
        )
        np.testing.assert_array_equal(out.vol[s], want)
    assert out.vol.min() >= 0.0 and out.vol.max() <= 1.0


@pytest.mark.parametrize(
    "vol",
    [
        np.zeros((2, 5, 6), np.int16),
        np.full((1, 9, 9), 300, np.uint16),
        np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4),
        np.array([[[0, 0, 0, 5000]]], dtype=np.int16),
    ],
)
def test_constant_and_tiny_volumes(vol: np.ndarray) -> None:
    img = Image(vol, AFFINE, slope=0.5, intercept=-1024.0)
    out = apply(img)
    assert out.vol.dtype == np.float32 and (out.slope, out.intercept) == (1.0, 0.0)
    np.testing.assert_array_equal(out.vol, reference(img).vol)


def test_non_finite_values_are_rejected() -> None:
    vol = np.zeros((2, 4, 4), np.float32)
    vol[1, 2, 3] = np.nan
    with pytest.raises(TransformFailedError, match="1 voxels are NaN"):
        apply(Image(vol, AFFINE))


@pytest.mark.parametrize(
    ("key", "value"), [("clip_limit", "1.5"), ("nbins", "1"), ("kernel_size", "-2")]
)
def test_parameter_ranges(key: str, value: str) -> None:
    with pytest.raises(ParameterRangeError, match=key):
        OP.bind({key: value})


def test_same_bytes_with_one_or_two_threads() -> None:
    vol = phantom((6, 16, 16))
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(apply(Image(vol, AFFINE), kernel_size=5).vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
