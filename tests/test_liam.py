"""The LIAM Binary Algebra facade: doctests, and its functions against the ops."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import clisonix_cli.liam as liam
from clisonix_cli.liam import BinaryAlgebra


def test_doctests() -> None:
    result = doctest.testmod(liam, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10
    assert result.failed == 0


def test_facade_issue_example() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 48, 40)).astype(np.float32)
    w = rng.normal(size=(40, 36))
    a = BinaryAlgebra()
    y = a.transform_matrix(x, w)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)
    z = a.svd_compress(y, k=32)
    assert z.shape == y.shape and z.dtype == np.float32
    report = a.last_report
    assert report is not None and report.rank == 32
    assert report.singular_values.shape == (4, 32)
    assert 0.0 < report.retained_energy <= 1.0
    assert report.compression_ratio == pytest.approx(48 * 36 / (32 * (48 + 36 + 1)))
    assert a.svd_compress(y, k=32).tobytes() == z.tobytes()  # seeded


def test_plain_functions_keep_shapes() -> None:
    x = np.linspace(-1200, 1200, 30).reshape(2, 15)
    assert liam.window(x, preset="abdomen").shape == (2, 15)
    assert liam.rescale(x.ravel(), 2.0, 1.0).shape == (30,)
    four = np.zeros((2, 3, 4, 5), dtype=np.int16)
    assert liam.cast(four, "uint8").shape == (2, 3, 4, 5)
    assert liam.transform_matrix(four, np.ones((5, 2))).shape == (2, 3, 4, 2)
    approx, report = liam.svd_compress(x, k=1)
    assert approx.shape == x.shape and report.rank == 1


def test_bad_inputs() -> None:
    with pytest.raises(TypeError):
        liam.window(np.array(["a"]), preset="brain")
    with pytest.raises(ValueError, match="2-D"):
        liam.transform_matrix(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="k must be"):
        liam.svd_compress(np.ones((3, 3)), k=0)
    with pytest.raises(ValueError, match="2-D"):
        liam.svd_compress(np.ones(3), k=1)
