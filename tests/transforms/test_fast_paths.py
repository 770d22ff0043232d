"""Fast paths of the transform core: histogram statistics and the strided copy kernel.

Each fast path is checked against the general path it replaces (the per-voxel statistics
kernels, numpy's copy), on small volumes.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from clisonix_cli.transforms.fuse import Clamp, PointContext, value_histogram
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops._gather import contiguous_copy, copy_into
from clisonix_cli.transforms.registry import all_ops

RNG = np.random.default_rng(7)
INT_DTYPES = ("int8", "uint8", "int16", "uint16")


def _volume(dtype: str, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Random values over the dtype's whole range; 16-bit: 2 MiB, the histogram's minimum."""
    if shape is None:
        shape = (5, 17, 23) if np.dtype(dtype).itemsize == 1 else (16, 256, 256)
    info = np.iinfo(dtype)
    vol = RNG.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    vol.reshape(-1)[: vol.size // 3] = 0  # a run of equal values (CT air)
    vol.reshape(-1)[-2:] = (info.min, info.max)
    return vol


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_value_histogram_counts_every_value(dtype: str) -> None:
    vol = _volume(dtype)
    got = value_histogram(vol)
    assert got is not None
    values, counts = got
    want_values, want_counts = np.unique(vol, return_counts=True)
    assert values.tolist() == want_values.astype(np.float64).tolist()
    assert counts.tolist() == want_counts.tolist()


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool", ">i2"])
def test_value_histogram_declines_other_dtypes(dtype: str) -> None:
    assert value_histogram(np.zeros((16, 256, 256), dtype=dtype)) is None


def test_value_histogram_declines_small_16_bit_volumes() -> None:
    """Its counters would outweigh the volume (peak memory): per-voxel kernels instead."""
    assert value_histogram(np.zeros((4, 64, 64), dtype=np.int16)) is None
    assert value_histogram(np.zeros((4, 64, 64), dtype=np.uint8)) is not None


def test_value_histogram_does_not_depend_on_threads() -> None:
    vol = _volume("int16", (16, 512, 300))  # several parts when threads allow
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = value_histogram(vol)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        many = value_histogram(vol)
    finally:
        numba.set_num_threads(old)
    assert one is not None and many is not None
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


CLAMPS = [
    Clamp(1.0, -1024.0),
    Clamp(0.5, -1.0, -100.0, 300.0),
    Clamp(-2.0, 7.0, -5000.0, np.inf),
    Clamp(0.0, 3.0, 3.0, 3.0),
]
MASK_CASES = [("all", 0.0), ("nonzero", 0.0), ("above", -20.0), ("above", 1e9)]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("clamp", CLAMPS)
@pytest.mark.parametrize(("mask", "thr"), MASK_CASES)
def test_histogram_statistics_match_the_per_voxel_kernels(
    dtype: str, clamp: Clamp, mask: str, thr: float
) -> None:
    vol = _volume(dtype)
    assert value_histogram(vol) is not None
    fast = PointContext(vol, clamp)
    slow = PointContext(vol.astype(np.int32), clamp)  # int32: per-voxel kernels
    assert fast.extrema(mask, thr) == slow.extrema(mask, thr)
    qs = (0.0, 1.0, 37.5, 99.0, 100.0)
    assert fast.percentiles(qs, mask, thr) == slow.percentiles(qs, mask, thr)
    mf, ms = fast.moments(mask, thr), slow.moments(mask, thr)
    assert mf.count == ms.count
    assert mf.mean == pytest.approx(ms.mean, rel=1e-12, abs=1e-9)
    assert mf.std == pytest.approx(ms.std, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    "params",
    [{}, {"mask": "nonzero"}, {"method": "minmax"}, {"method": "percentile"}],
)
def test_normalize_on_int16_matches_its_reference(params: dict[str, object]) -> None:
    op = all_ops()["normalize"]
    img = Image(_volume("int16"), np.eye(4), slope=0.5, intercept=-1024.0)
    bound = op.bind(params)
    got = op.apply(img, **bound).vol
    want = op.reference(img, **bound).vol
    np.testing.assert_allclose(got, want, atol=op.atol, rtol=op.rtol)


def _views(vol: np.ndarray) -> list[np.ndarray]:
    return [
        np.flip(vol, 0),
        np.flip(vol, 1),
        np.flip(vol, 2),
        np.flip(vol, (1, 2)),
        np.flip(vol, (0, 1, 2)),
        np.transpose(vol, (2, 1, 0)),
        np.transpose(np.flip(vol, 2), (0, 2, 1)),
        vol[1:, ::2, 3:-1],
        vol[::-2, 1:, ::-3],
        vol[:, :1, :],
    ]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "float64"])
def test_strided_copy_matches_numpy(dtype: str) -> None:
    vol = (RNG.random((6, 7, 9)) * 100).astype(dtype)
    for view in _views(vol):
        got = contiguous_copy(view)
        assert got.flags.c_contiguous
        assert np.array_equal(got, np.ascontiguousarray(view))


def test_strided_copy_of_views_of_foreign_buffers() -> None:
    raw = bytearray(
        RNG.integers(0, 256, size=2 + 6 * 7 * 9 * 2, dtype=np.uint8).tobytes()
    )
    vol = np.frombuffer(raw, dtype=np.int16, offset=2).reshape(6, 7, 9)
    odd = np.frombuffer(raw, dtype=np.uint8)[1 : 1 + 6 * 7 * 9 * 2].view(np.int16)
    fortran = np.asfortranarray(RNG.integers(0, 99, size=(6, 7, 9)).astype(np.int16))
    for base in (vol, odd.reshape(6, 7, 9), fortran):
        for view in _views(base):
            assert np.array_equal(contiguous_copy(view), np.ascontiguousarray(view))


def test_copy_into_a_strided_destination() -> None:
    vol = RNG.integers(0, 1000, size=(4, 6, 8)).astype(np.int16)
    out = np.zeros((6, 8, 10), dtype=np.int16)
    copy_into(np.flip(vol, 2), out[1:5, 1:7, 1:9])
    want = np.zeros_like(out)
    want[1:5, 1:7, 1:9] = vol[:, :, ::-1]
    assert np.array_equal(out, want)
