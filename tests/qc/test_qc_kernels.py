"""QC kernels against plain numpy/scipy/scikit-image references, and hand-made phantoms."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import ndimage

from clisonix_cli.dicom.synth import ct_phantom_hu, mr_phantom
from clisonix_cli.qc import ct, mr, xr
from clisonix_cli.qc.kernels import _largest_filled, fill_scratch
from clisonix_cli.qc.sample import sample_indices

FOUR = ndimage.generate_binary_structure(2, 1)


def _grid(side: int, fov_mm: float) -> tuple[np.ndarray, np.ndarray, float]:
    d = fov_mm / side
    c = ((np.arange(side) - (side - 1) / 2) * d).astype(np.float32)
    x, y = np.meshgrid(c, c)
    return x, y, d


def ct_volume(
    sd: float, *, side: int = 128, n: int = 10, offset: float = 0.0, seed: int = 0
):
    """Synth's CT phantom (axial slices) plus white noise of SD ``sd`` HU, clipped like
    a 12-bit scanner."""
    x, y, d = _grid(side, 360.0)
    rng = np.random.default_rng(seed)
    out = []
    for z in np.linspace(-40.0, 40.0, n):
        hu = ct_phantom_hu(x, y, np.full_like(x, z))
        noisy = hu + offset + rng.standard_normal(hu.shape) * sd
        out.append(np.clip(np.rint(noisy), -1024, 3071))
    return np.asarray(out, dtype=np.float32), d


def mr_volume(sd: float, *, side: int = 128, n: int = 10, seed: int = 0):
    """Synth's MR head phantom, magnitude of signal + complex noise of SD ``sd``."""
    x, y, _ = _grid(side, 240.0)
    rng = np.random.default_rng(seed)
    clean, noisy = [], []
    for z in np.linspace(-40.0, 40.0, n):
        s = mr_phantom(x, y, np.full_like(x, z)).astype(np.float64)
        e = rng.standard_normal((2, *s.shape)) * sd
        clean.append(s)
        noisy.append(np.clip(np.rint(np.hypot(s + e[0], e[1])), 0, 4095))
    return np.asarray(noisy, dtype=np.float32), np.asarray(clean)


def test_largest_filled_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        obj = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        out = np.zeros_like(obj)
        size = _largest_filled(obj, out, fill_scratch(h, w))
        lab, n = ndimage.label(ndimage.binary_fill_holes(obj, FOUR), FOUR)
        want = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:])) if n else lab > 0
        assert (out.astype(bool) == want).all()
        assert size == want.sum()


def test_largest_filled_keeps_a_ring_with_what_it_encloses() -> None:
    img = np.zeros((20, 20), np.uint8)
    img[2:18, 2:18] = 1
    img[4:16, 4:16] = 0  # a ring ...
    img[6:14, 6:14] = 1  # ... around a larger-looking core
    img[0, 19] = 1  # a speck in a corner
    out = np.zeros_like(img)
    _largest_filled(img, out, fill_scratch(20, 20))
    assert out[2:18, 2:18].all() and out.sum() == 16 * 16


@pytest.mark.parametrize("sd", [5.0, 25.0])
def test_ct_kernels_match_the_reference(sd: float) -> None:
    vol, d = ct_volume(sd, n=6)
    got, want = ct.measure(vol, (d, d)), ct.reference(vol, (d, d))
    assert set(got) == set(want)
    for k, v in want.items():
        # the mode of the local-SD histogram moves when rounding puts an SD on the other
        # side of a 0.1-HU bin edge; everything else is the same number
        tol = 0.02 if k == "gnl_hu" else 1e-9
        assert_allclose(got[k], v, rtol=tol, atol=1e-9, err_msg=k)


def test_ct_phantom_known_values() -> None:
    """Synth's phantom: air -1000 HU, soft tissue 40 HU, white noise of a known SD."""
    from scipy.stats import norm

    for sd in (10.0, 30.0):
        vol, d = ct_volume(sd)
        m = ct.measure(vol, (d, d))
        # air: N(-1000, sd) clipped at -1024 HU like a 12-bit scanner's stored range
        a = -24.0 / sd
        clipped = -1024.0 * norm.cdf(a) - 1000.0 * norm.sf(a) + sd * norm.pdf(a)
        assert abs(m["air_mean_hu"] - clipped) < 0.5
        assert abs(m["gnl_hu"] - sd) <= 0.10 * sd  # the bound
        assert abs(m["tissue_mean_hu"] - 40.0) < 3.0
        assert abs(m["tissue_sd_hu"] - sd) <= 0.15 * sd
        assert m["fov_truncated_frac"] == 0.0
    m = ct.measure(ct_volume(10.0, offset=60.0)[0], (d, d))
    assert abs(m["air_mean_hu"] + 940.0) < 1.5 and abs(m["tissue_mean_hu"] - 100.0) < 3


def test_ct_fov_truncation() -> None:
    vol = np.full((3, 64, 64), -1000.0, np.float32)
    vol[:, 16:48, 16:48] = 40.0
    vol[1, 20:44, 0:30] = 40.0  # the patient's arm leaves the field of view
    m = ct.measure(vol, (1.0, 1.0))
    assert m["fov_truncated_frac"] == pytest.approx(1 / 3)
    pad = vol.copy()
    yy, xx = np.mgrid[:64, :64]
    pad[:, (yy - 31.5) ** 2 + (xx - 31.5) ** 2 > 31**2] = -3024.0  # outside the circle
    assert ct.measure(pad, (1.0, 1.0))["fov_truncated_frac"] == pytest.approx(1 / 3)
    assert ct.reference(pad, (1.0, 1.0))["fov_truncated_frac"] == pytest.approx(1 / 3)


def test_mr_kernels_match_the_reference() -> None:
    vol, _ = mr_volume(20.0, n=6)
    got, want = mr.measure(vol), mr.reference(vol)
    for k, v in want.items():
        assert_allclose(got[k], v, rtol=1e-9, err_msg=k)


@pytest.mark.parametrize("sd", [20.0, 40.0])
def test_mr_snr_on_a_phantom_with_known_signal_and_noise(sd: float) -> None:
    vol, clean = mr_volume(sd)
    m = mr.measure(vol)
    assert abs(m["noise_sd"] - sd) <= 0.05 * sd
    # the signal: the noise-free phantom over the same foreground
    from skimage.filters import threshold_otsu

    thr = threshold_otsu(vol)
    fg = np.stack(
        [
            (lambda lab: lab == 1 + np.argmax(np.bincount(lab.ravel())[1:]))(
                ndimage.label(ndimage.binary_fill_holes(v > thr, FOUR), FOUR)[0]
            )
            for v in vol
        ]
    )
    assert abs(m["snr"] - clean[fg].mean() / sd) <= 0.05 * clean[fg].mean() / sd


def test_xr_phantom_with_known_borders_and_saturation() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(2000, 300, (300, 400)), 1, 4094)
    img[:30], img[-20:], img[:, :40] = 4095, 4095, 4095  # shutters: top, bottom, left
    img[100:110, 200:260] = 0  # a saturated patch of 600 pixels
    img = np.rint(img).astype(np.float32)
    assert xr.bands(img) == xr.reference_bands(img) == (30, 20, 40, 0)
    m = xr.measure(img[None], xr.representable(12, False, 1.0, 0.0))
    inner = 250 * 360
    assert m["border_frac"] == pytest.approx(1 - inner / img.size)
    assert m["sat_low_frac"] == pytest.approx(600 / inner)
    assert m["sat_high_frac"] == 0.0
    assert 0.3 < m["range_used_frac"] < 0.7
    assert xr.representable(16, True, 1.0, -1024.0) == (-32768 - 1024, 32767 - 1024)


def test_sample_indices() -> None:
    assert sample_indices(0) == ()
    assert sample_indices(5) == (0, 1, 2, 3, 4)
    for n in (9, 10, 57, 256, 1000):
        idx = sample_indices(n)
        assert n // 2 in idx and idx == tuple(sorted(set(idx)))
        assert min(n, 8) <= len(idx) <= 16 and idx[0] == 0 and idx[-1] == n - 1
