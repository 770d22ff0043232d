"""matrix (transform_matrix) and svd (svd_compress): references, files, error bounds."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clisonix_cli.errors import ParameterRangeError, TransformFailedError
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops.svd import svd_factors
from clisonix_cli.transforms.registry import all_ops

MATRIX = all_ops()["matrix"]
SVD = all_ops()["svd"]
AFFINE = np.diag([3.0, 0.8, 0.8, 1.0])


@settings(max_examples=30, deadline=None)
@given(
    dims=st.tuples(
        st.integers(1, 6), st.integers(1, 9), st.integers(1, 12), st.integers(1, 7)
    ),
    data=st.data(),
)
def test_matrix_from_file_matches_numpy(
    dims: tuple[int, int, int, int], data: st.DataObject
) -> None:
    s, r, c, k = dims
    vol = data.draw(
        arrays(np.float32, (s, r, c), elements=st.floats(-2000, 3000, width=32))
    )
    w = data.draw(arrays(np.float64, (c, k), elements=st.floats(-2, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.npy"
        np.save(path, w)
        params = MATRIX.bind({"path": str(path)})
        img = Image(vol, AFFINE, slope=1.0, intercept=-7.0)
        got = MATRIX.apply(img, **params)
        want = MATRIX.reference(img, **params)
    assert got.vol.shape == (s, r, k) and got.vol.dtype == np.float32
    np.testing.assert_allclose(got.vol, want.vol, rtol=MATRIX.rtol, atol=MATRIX.atol)
    assert got.affine_lps is img.affine_lps  # documented: geometry unchanged


def test_matrix_records_the_file_hash(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.eye(3))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert MATRIX.bind({"path": str(path)})["sha256"] == digest
    with pytest.raises(ParameterRangeError, match="sha256"):
        MATRIX.bind({"path": str(path), "sha256": "0" * 64})
    params = MATRIX.bind({"path": str(path)})
    np.save(path, 2 * np.eye(3))  # the file changes after validation
    vol = np.ones((1, 2, 3), dtype=np.float32)
    with pytest.raises(TransformFailedError, match="changed"):
        MATRIX.apply(Image(vol, AFFINE), **params)


@pytest.mark.parametrize(
    "content", [np.ones((2, 2, 2)), np.array(["a", "b"]), np.array([[np.nan, 1.0]])]
)
def test_matrix_rejects_bad_weight_files(tmp_path: Path, content: np.ndarray) -> None:
    path = tmp_path / "w.npy"
    np.save(path, content)
    with pytest.raises(ParameterRangeError, match="w.npy"):
        MATRIX.bind({"path": str(path)})


def test_matrix_presets() -> None:
    vol = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = Image(vol, AFFINE, slope=2.0, intercept=1.0)
    real = vol * 2.0 + 1.0
    run = lambda preset: MATRIX.apply(img, **MATRIX.bind({"preset": preset})).vol  # noqa: E731
    assert run("identity").tolist() == real.tolist()
    assert run("reverse").tolist() == real[..., ::-1].tolist()
    np.testing.assert_allclose(run("mean")[..., 0], real.mean(axis=-1), rtol=1e-6)


def image_like(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Smooth shapes plus noise: a decaying spectrum like a CT/MR slice."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    out = np.empty((n, rows, cols), dtype=np.float32)
    for s in range(n):
        blobs = sum(
            rng.uniform(200, 1000)
            * np.exp(
                -((rr - rng.uniform(0.2, 0.8)) ** 2 + (cc - rng.uniform(0.2, 0.8)) ** 2)
                / rng.uniform(0.005, 0.05)
            )
            for _ in range(6)
        )
        out[s] = blobs + rng.normal(0, 20, (rows, cols)) - 1000 * (rr > 0.9)
    return out


@pytest.mark.parametrize(("k", "power_iters"), [(4, 2), (12, 1), (20, 2), (32, 2)])
def test_svd_error_within_5_percent_of_eckart_young(k: int, power_iters: int) -> None:
    vol = image_like(3, 96, 80)
    res = svd_factors(vol, k, power_iters=power_iters)
    for s in range(vol.shape[0]):
        a = vol[s].astype(np.float64)
        sv = np.linalg.svd(a, compute_uv=False)
        optimal = np.sqrt(np.sum(sv[k:] ** 2))
        err = np.linalg.norm(a - res.approx[s])
        assert err <= 1.05 * optimal, (s, err / optimal)
        signal = sv[:k] > 0.02 * sv[0]  # values in the noise floor are not well defined
        np.testing.assert_allclose(
            res.singular_values[s][signal], sv[:k][signal], rtol=1e-3
        )


def test_svd_report_energy_and_ratio() -> None:
    vol = image_like(2, 40, 30, seed=1)
    res = svd_factors(vol, 5)
    total = float(np.sum(vol.astype(np.float64) ** 2))
    kept = float(np.sum(res.singular_values.astype(np.float64) ** 2))
    assert res.retained_energy == pytest.approx(kept / total)
    assert 0.9 < res.retained_energy <= 1.0
    assert res.compression_ratio == pytest.approx(40 * 30 / (5 * (40 + 30 + 1)))
    assert res.rank == 5


def test_svd_exact_for_low_rank_and_large_k() -> None:
    rng = np.random.default_rng(2)
    low = np.einsum(
        "sik,skj->sij", rng.normal(size=(2, 50, 3)), rng.normal(size=(2, 3, 40))
    )
    res = svd_factors(low.astype(np.float32), 3, oversample=5)
    np.testing.assert_allclose(res.approx, low, atol=1e-3)
    full = svd_factors(low.astype(np.float32), 100)  # k >= min(R, C): the input back
    np.testing.assert_allclose(full.approx, low, atol=1e-3)
    assert full.rank == 40


def test_svd_is_seeded_and_deterministic() -> None:
    vol = image_like(2, 64, 64, seed=3)
    a = svd_factors(vol, 6, seed=11).approx
    b = svd_factors(vol, 6, seed=11).approx
    c = svd_factors(vol, 6, seed=12).approx
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(
        a, c
    )  # another test matrix: another (near-optimal) answer
    assert np.abs(a - c).max() < 0.05 * np.abs(vol).max()


def test_svd_op_folds_rescale_and_keeps_geometry() -> None:
    stored = (image_like(2, 30, 20) + 1024).astype(np.int16)
    img = Image(stored, AFFINE, slope=1.0, intercept=-1024.0)
    params = SVD.bind({"k": 30})
    out = SVD.apply(img, **params)
    assert out.vol.dtype == np.float32 and out.affine_lps is img.affine_lps
    np.testing.assert_allclose(out.vol, stored.astype(np.float64) - 1024.0, atol=0.05)
