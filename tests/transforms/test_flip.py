"""flip: exact index reversal, affine keeps every voxel's world position."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.flip import OP, apply, reference

OBLIQUE = np.array(
    [
        [0.1, 0.0, 0.69, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.49, 0.0, -0.1, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def world(affine: np.ndarray, index: tuple[int, int, int]) -> np.ndarray:
    return (affine @ np.array([*index, 1.0]))[:3]


@pytest.mark.parametrize("axis", ["slice", "row", "col"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 4, 3), (2, 7, 16)])
def test_every_voxel_keeps_its_value_at_its_world_position(
    axis: str, shape: tuple[int, int, int]
) -> None:
    vol = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    img = Image(vol, OBLIQUE, slope=2.0, intercept=-1024.0)
    out = apply(img, axis=axis)
    assert out.vol.dtype == np.int16 and out.vol.flags.c_contiguous
    assert (out.slope, out.intercept) == (2.0, -1024.0)
    for index in np.ndindex(*shape):
        j = ("slice", "row", "col").index(axis)
        src = list(index)
        src[j] = shape[j] - 1 - index[j]
        assert out.vol[index] == vol[tuple(src)]
        np.testing.assert_allclose(
            world(out.affine_lps, index), world(OBLIQUE, tuple(src)), atol=1e-9
        )


@pytest.mark.parametrize("axis", ["slice", "row", "col"])
def test_flip_twice_is_identity_and_matches_reference(axis: str) -> None:
    rng = np.random.default_rng(0)
    vol = rng.uniform(-1000, 1000, (6, 5, 7)).astype(np.float32)
    img = Image(vol, OBLIQUE)
    once = apply(img, axis=axis)
    ref = reference(img, axis=axis)
    assert once.vol.tobytes() == ref.vol.tobytes()
    np.testing.assert_allclose(once.affine_lps, ref.affine_lps, atol=1e-12)
    twice = apply(once, axis=axis)
    assert twice.vol.tobytes() == vol.tobytes()
    np.testing.assert_allclose(twice.affine_lps, OBLIQUE, atol=1e-12)


def test_geometry_hook_matches_apply() -> None:
    vol = np.zeros((3, 4, 5), dtype=np.uint16)
    for axis in ("slice", "row", "col"):
        params = OP.bind({"axis": axis})
        assert OP.geometry is not None
        shape, affine = OP.geometry(vol.shape, OBLIQUE, params)
        out = OP.apply(Image(vol, OBLIQUE), **params)
        assert shape == out.vol.shape
        np.testing.assert_array_equal(affine, out.affine_lps)


def test_non_contiguous_and_big_endian_inputs() -> None:
    base = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)
    view = base.transpose(0, 2, 1)[:, ::-1]
    out = apply(Image(view, OBLIQUE), axis="row")
    np.testing.assert_array_equal(out.vol, view[:, ::-1])
    big = base.astype(">i2")
    out = apply(Image(big, OBLIQUE), axis="col")
    np.testing.assert_array_equal(out.vol, base[:, :, ::-1])


def test_same_bytes_with_one_or_two_threads() -> None:
    vol = np.random.default_rng(3).normal(size=(9, 16, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(apply(Image(vol, OBLIQUE), axis="col").vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
