"""--peers: dcm2niix and SimpleITK timed side by side (skipped when not installed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.bench import peers
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.registry import all_ops


def _image() -> Image:
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 2000, size=(6, 24, 20), dtype=np.int16)
    return Image(
        vol=vol, affine_lps=np.diag([2.0, 0.8, 0.5, 1.0]), slope=1.0, intercept=-1024.0
    )


def test_sitk_image_geometry_and_values() -> None:
    sitk = pytest.importorskip("SimpleITK")
    img = _image()
    image = peers._sitk_image(sitk, img)
    assert image.GetSize() == (20, 24, 6)  # ITK (x=col, y=row, z=slice)
    assert image.GetSpacing() == pytest.approx((0.5, 0.8, 2.0))
    back = sitk.GetArrayFromImage(image)
    np.testing.assert_allclose(back, img.vol.astype(np.float32) - 1024.0)


def test_sitk_resample_grid() -> None:
    sitk = pytest.importorskip("SimpleITK")
    image = peers._sitk_image(sitk, _image())
    out = peers._sitk_resample(
        sitk, image, {"spacing": (1.0, 0.0, 1.0), "order": "linear"}
    )
    # (S, R, C) spacing 1, keep, 1 -> ITK x: 20*0.5/1 = 10, y kept 24, z: 6*2/1 = 12
    assert out.GetSize() == (10, 24, 12)
    assert out.GetSpacing() == pytest.approx((1.0, 0.8, 1.0))


def test_sitk_comparison_ratios() -> None:
    pytest.importorskip("SimpleITK")
    ops = all_ops()
    res = peers.sitk_comparison(_image(), ops, cores=2, repeats=2)
    assert set(res) == {
        f"{n}_{t}" for n in ("gaussian", "median", "resample") for t in ("1t", "all")
    }
    for fig in res.values():
        assert fig["ratio"] > 0
        assert fig["ratio"] == pytest.approx(
            fig["peer_timing"]["median_ms"] / fig["clisonix_timing"]["median_ms"]
        )
    assert "clahe" in peers.NOT_COMPARABLE


def test_dcm2niix_comparison(synth_study: Path, tmp_path: Path) -> None:
    exe = peers.find_dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix is not installed (pip install dcm2niix)")
    assert peers.dcm2niix_version(exe).startswith("v")
    calls: list[int] = []

    def convert(out: Path, jobs: int) -> None:  # a trivial stand-in for the transform
        calls.append(jobs)
        shutil.copytree(synth_study, out, dirs_exist_ok=True)

    res = peers.dcm2niix_comparison(
        exe, synth_study, convert=convert, jobs_all=2, repeats=2, tmp=tmp_path
    )
    assert set(res) == {"conversion_jobs1", "conversion_jobs2"}
    assert calls == [1, 1, 1, 2, 2, 2]  # warm-up + 2 repeats per level
    for fig in res.values():
        assert fig["peer_outputs"] == 6  # one NIfTI per synthetic series
        assert fig["ratio"] > 0
