"""resize: skimage's grid and values, field of view kept, slices never mixed."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from skimage.transform import resize as sk_resize

from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.resize import OP, apply, reference

CT = np.array(
    [
        [0.0, 0.0, 0.7, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.5, 0.0, 0.0, 30.0],
        [0, 0, 0, 1.0],
    ]
)
rng = np.random.default_rng(0)


@pytest.mark.parametrize(("rows", "cols"), [(16, 16), (5, 9), (1, 1), (13, 3), (7, 11)])
def test_matches_skimage_slice_by_slice(rows: int, cols: int) -> None:
    vol = rng.uniform(-1000, 3000, (3, 7, 11)).astype(np.float32)
    out = apply(Image(vol, CT), rows=rows, cols=cols)
    assert out.vol.shape == (3, rows, cols) and out.vol.dtype == np.float32
    for s in range(3):
        want = sk_resize(
            vol[s],
            (rows, cols),
            order=1,
            mode="edge",
            anti_aliasing=False,
            preserve_range=True,
        )
        np.testing.assert_allclose(out.vol[s], want, atol=2e-3, rtol=1e-6)


def test_field_of_view_is_kept() -> None:
    shape = (2, 10, 12)
    assert OP.geometry is not None
    out_shape, affine = OP.geometry(shape, CT, {"rows": 4, "cols": 30})
    assert out_shape == (2, 4, 30)
    # outer pixel edges (index -0.5 and n - 0.5) land on the same world points
    for before, after in [
        ((0, -0.5, -0.5), (0, -0.5, -0.5)),
        ((1, 9.5, 11.5), (1, 3.5, 29.5)),
        ((0, -0.5, 11.5), (0, -0.5, 29.5)),
    ]:
        np.testing.assert_allclose(
            affine @ [*after, 1.0], CT @ [*before, 1.0], atol=1e-12
        )
    np.testing.assert_allclose(
        np.linalg.norm(affine[:3, :3], axis=0), [2.5, 1.75, 0.28]
    )


def test_rescale_is_folded_and_same_size_is_identity() -> None:
    vol = rng.integers(-1024, 3071, (2, 6, 5)).astype(np.int16)
    img = Image(vol, CT, slope=0.5, intercept=3.25)
    out = apply(img, rows=6, cols=5)
    assert (out.slope, out.intercept) == (1.0, 0.0)
    np.testing.assert_array_equal(out.vol, (vol * 0.5 + 3.25).astype(np.float32))
    np.testing.assert_array_equal(out.affine_lps, CT)
    ref = reference(img, rows=9, cols=2)
    np.testing.assert_allclose(apply(img, rows=9, cols=2).vol, ref.vol, atol=2e-3)


def test_slices_are_never_mixed() -> None:
    vol = np.zeros((3, 8, 8), np.float32)
    vol[1] = 1000.0
    out = apply(Image(vol, CT), rows=5, cols=3)
    assert np.all(out.vol[0] == 0) and np.all(out.vol[2] == 0)
    np.testing.assert_allclose(out.vol[1], 1000.0)


def test_same_bytes_with_one_or_two_threads() -> None:
    vol = rng.normal(size=(12, 16, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(apply(Image(vol, CT), rows=11, cols=23).vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
