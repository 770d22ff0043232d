"""crop_pad: centring convention, world positions kept, fill value in real units."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from clisonix_cli.errors import ParameterRangeError
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.crop_pad import (
    OP,
    apply,
    offsets,
    reference,
    stored_value,
)

AFFINE = np.array(
    [
        [0.0, 0.0, 0.7, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.5, 0.0, 0.0, 30.0],
        [0, 0, 0, 1.0],
    ]
)


@pytest.mark.parametrize(
    ("n", "m", "first"),
    [
        (5, 3, 1),  # crop 2: one before, one after
        (6, 3, 1),  # crop 3: one before, two after
        (4, 3, 0),  # crop 1: the last voxel goes
        (3, 5, -1),  # pad 2: one before, one after
        (3, 6, -1),  # pad 3: one before, two after
        (3, 4, 0),  # pad 1: after
        (7, 7, 0),
    ],
)
def test_centring_convention(n: int, m: int, first: int) -> None:
    assert offsets((n, n, n), (m, m, m)) == (first, first, first)
    vol = np.arange(n, dtype=np.int16).reshape(n, 1, 1) + 1
    out = apply(Image(vol, AFFINE), shape=(float(m), 0.0, 0.0), value=0.0)
    expected = [i + first + 1 if 0 <= i + first < n else 0 for i in range(m)]
    assert out.vol[:, 0, 0].tolist() == expected


def test_kept_voxels_keep_their_world_position() -> None:
    rng = np.random.default_rng(0)
    vol = rng.integers(-1000, 1000, (5, 8, 9)).astype(np.int16)
    out = apply(Image(vol, AFFINE), shape=(7.0, 6.0, 12.0))
    o = offsets(vol.shape, out.vol.shape)
    for index in np.ndindex(*out.vol.shape):
        src = tuple(i + k for i, k in zip(index, o, strict=True))
        if all(0 <= x < n for x, n in zip(src, vol.shape, strict=True)):
            assert out.vol[index] == vol[src]
            np.testing.assert_allclose(
                out.affine_lps @ [*index, 1.0], AFFINE @ [*src, 1.0], atol=1e-9
            )
        else:
            assert out.vol[index] == 0


def test_fill_value_is_a_real_value() -> None:
    vol = np.full((2, 2, 2), 1024, dtype=np.uint16)  # real 0 HU with intercept -1024
    img = Image(vol, AFFINE, slope=1.0, intercept=-1024.0)
    out = apply(img, shape=(2.0, 4.0, 4.0), value=-1024.0)
    assert out.vol.dtype == np.uint16
    assert (out.slope, out.intercept) == (1.0, -1024.0)
    assert out.vol[0, 0, 0] == 0 and out.vol[0, 1, 1] == 1024
    # real -1000 with slope 0.5: stored -1952 rounds/clips into uint16 -> 0; int16 exact
    assert stored_value(-1000.0, np.dtype(np.int16), 0.5, -24.0) == -1952
    assert stored_value(-1000.0, np.dtype(np.uint16), 0.5, -24.0) == 0
    assert stored_value(2.5, np.dtype(np.int16), 1.0, 0.0) == 2  # half to even
    assert stored_value(-3.25, np.dtype(np.float32), 0.5, 0.0) == np.float32(-6.5)


def test_matches_reference_on_odd_shapes() -> None:
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(7, 4, 9)).astype(np.float32)
    img = Image(vol, AFFINE, slope=3.0, intercept=1.5)
    for shape in [
        (1.0, 1.0, 1.0),
        (9.0, 2.0, 9.0),
        (0.0, 11.0, 3.0),
        (16.0, 16.0, 16.0),
    ]:
        a = apply(img, shape=shape, value=-7.0)
        b = reference(img, shape=shape, value=-7.0)
        assert a.vol.tobytes() == b.vol.tobytes()
        np.testing.assert_allclose(a.affine_lps, b.affine_lps, atol=1e-12)


def test_shape_must_be_whole_non_negative() -> None:
    assert OP.bind({"shape": "0x256x256"})["shape"] == (0.0, 256.0, 256.0)
    for bad in ("2.5", "-1x4x4"):
        with pytest.raises(ParameterRangeError):
            OP.bind({"shape": bad})


def test_same_bytes_with_one_or_two_threads() -> None:
    vol = np.random.default_rng(3).normal(size=(12, 16, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            img = Image(vol, AFFINE)
            results.append(apply(img, shape=(16.0, 9.0, 20.0), value=3.0).vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
