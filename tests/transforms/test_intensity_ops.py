"""rescale, window, clip, normalize, cast, threshold: formulas, edge cases, references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import threshold as threshold_mod
from clisonix_cli.transforms.ops.window import PRESETS
from clisonix_cli.transforms.registry import all_ops

OPS = all_ops()
EYE = np.eye(4)


def run(
    name: str,
    vol: np.ndarray,
    slope: float = 1.0,
    intercept: float = 0.0,
    **params: object,
) -> Image:
    op = OPS[name]
    return op.apply(Image(np.asarray(vol), EYE, slope, intercept), **op.bind(params))


def vol3(values: list[float], dtype: type = np.float32) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(1, 1, -1)


def test_rescale_folds_slope_and_intercept() -> None:
    out = run("rescale", vol3([0, 1000, -2000], np.int16), slope=0.5, intercept=-1024.0)
    assert out.vol.dtype == np.float32
    assert out.vol.ravel().tolist() == [-1024.0, -524.0, -2024.0]
    assert (out.slope, out.intercept) == (1.0, 0.0)


def test_rescale_of_real_float32_is_free() -> None:
    vol = np.ones((2, 3, 4), dtype=np.float32)
    assert run("rescale", vol).vol is vol


def test_window_presets_match_the_table() -> None:
    assert PRESETS == {
        "brain": (40.0, 80.0),
        "subdural": (75.0, 215.0),
        "stroke": (40.0, 40.0),
        "lung": (-600.0, 1500.0),
        "mediastinum": (50.0, 350.0),
        "abdomen": (40.0, 400.0),
        "liver": (60.0, 160.0),
        "bone": (400.0, 1800.0),
    }
    for name, (c, w) in PRESETS.items():
        assert OPS["window"].bind({"preset": name})["center"] == c
        assert OPS["window"].bind({"preset": name})["width"] == w


def test_window_breakpoints_follow_ps3_3() -> None:
    c, w = 40.0, 400.0
    lo_edge = c - 0.5 - (w - 1) / 2  # <= this: y_min
    hi_edge = c - 0.5 + (w - 1) / 2  # > this: y_max
    x = vol3([lo_edge - 1, lo_edge, c - 0.5, hi_edge, hi_edge + 1], np.float64)
    out = run("window", x, center=c, width=w).vol.ravel()
    assert out.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    out8 = run("window", x, center=c, width=w, dtype="uint8").vol.ravel()
    assert out8.tolist() == [0, 0, 128, 255, 255]  # 127.5 rounds half to even


def test_window_honours_pending_rescale() -> None:
    stored = vol3([1024, 1064, 3000], np.int16)
    a = run("window", stored, 1.0, -1024.0, preset="brain").vol
    b = run("window", vol3([0, 40, 1976]), preset="brain").vol
    assert a.tobytes() == b.tobytes()


def test_window_nan() -> None:
    x = vol3([np.nan, 40.0])
    assert np.isnan(run("window", x, preset="brain").vol.ravel()[0])
    assert run("window", x, preset="brain", dtype="uint8").vol.ravel()[0] == 0


def test_clip_open_bounds_and_nan() -> None:
    x = vol3([-5.0, 0.5, 5.0, np.nan])
    out = run("clip", x, lo=0.0).vol.ravel()
    assert out[:3].tolist() == [0.0, 0.5, 5.0] and np.isnan(out[3])
    assert run("clip", x, hi=1.0).vol.ravel()[:3].tolist() == [-5.0, 0.5, 1.0]


def test_normalize_zscore_and_masks() -> None:
    rng = np.random.default_rng(0)
    vol = rng.normal(100.0, 15.0, size=(4, 20, 20)).astype(np.float32)
    vol[:, :5] = 0.0
    z = run("normalize", vol).vol.astype(np.float64)
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    zn = run("normalize", vol, mask="nonzero").vol.astype(np.float64)
    inside = zn[vol != 0]
    assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-5
    za = run("normalize", vol, mask="above", mask_threshold=100.0).vol.astype(
        np.float64
    )
    assert abs(za[vol > 100].mean()) < 1e-5


def test_normalize_degenerate_cases() -> None:
    const = np.full((2, 3, 3), 7.0, dtype=np.float32)
    assert not run("normalize", const).vol.any()  # std 0 -> x - mean
    assert run("normalize", const, method="minmax").vol.max() == 0.0
    zeros = np.zeros((2, 3, 3), dtype=np.float32)
    same = run("normalize", zeros, mask="nonzero").vol  # empty selection: unchanged
    assert same.tobytes() == zeros.tobytes()


@pytest.mark.parametrize("slope", [-2.0, 0.5])
def test_normalize_percentile_under_any_monotone_map(slope: float) -> None:
    """Percentiles select stored values and map them: right for decreasing maps too."""
    rng = np.random.default_rng(4)
    vol = rng.integers(-500, 500, size=(3, 17, 13)).astype(np.int16)
    op = OPS["normalize"]
    for params in (
        {"method": "percentile", "p_lo": 5.0, "p_hi": 90.0},
        {
            "method": "percentile",
            "mask": "above",
            "mask_threshold": 10.0,
            "clip": False,
        },
    ):
        img = Image(vol, EYE, slope, 3.0)
        p = op.bind(params)
        np.testing.assert_allclose(
            op.apply(img, **p).vol, op.reference(img, **p).vol, atol=1e-5
        )


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("int16", [-32768, -2, -0, 0, 2, 2, 32767, 0]),
        ("uint8", [0, 0, 0, 0, 2, 2, 255, 0]),
        ("uint16", [0, 0, 0, 0, 2, 2, 65535, 0]),
    ],
)
def test_cast_rounds_half_even_and_saturates(dtype: str, expected: list[int]) -> None:
    x = vol3([-40000.0, -1.5, -0.5, 0.5, 1.5, 2.5, 70000.0, np.nan], np.float64)
    out = run("cast", x, dtype=dtype)
    assert out.vol.dtype == np.dtype(dtype)
    assert out.vol.ravel().tolist() == expected


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16"])
def test_cast_fit_keeps_real_values_within_half_a_step(dtype: str) -> None:
    rng = np.random.default_rng(5)
    real = rng.uniform(-3.0, 11.0, size=(3, 8, 8))
    out = run("cast", real.astype(np.float32), dtype=dtype, scale="fit")
    back = out.vol.astype(np.float64) * out.slope + out.intercept
    assert np.abs(back - real.astype(np.float32)).max() <= out.slope * 0.5 + 1e-6
    info = np.iinfo(dtype)
    assert out.vol.min() == info.min and out.vol.max() == info.max


def test_threshold_fixed_and_pending_rescale() -> None:
    out = run("threshold", vol3([1000, 1024, 1025], np.int16), 1.0, -1024.0, value=0.0)
    assert out.vol.dtype == np.uint8
    assert out.vol.ravel().tolist() == [0, 0, 1]


real_arrays = arrays(
    np.float32,
    array_shapes(min_dims=1, max_dims=1, min_side=1, max_side=300),
    elements=st.one_of(
        # No subnormals: scikit-image's reference cannot bin a range of 1e-45
        # (test_otsu_on_a_subnormal_range covers ours there).
        st.floats(-2000, 3000, width=32, allow_subnormal=False),
        st.sampled_from([0.0, 1e-3, 100.0, -1024.0]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(values=real_arrays)
def test_otsu_threshold_is_skimages(values: np.ndarray) -> None:
    from skimage.filters import threshold_otsu

    vol = values.reshape(1, 1, -1)
    ours = threshold_mod.otsu(vol, np.float32(values.min()), np.float32(values.max()))
    theirs = threshold_otsu(values)
    assert np.float32(ours) == np.float32(theirs)


def test_otsu_on_a_subnormal_range() -> None:
    vol = np.array([0.0, 1e-45], np.float32).reshape(1, 1, -1)
    t = threshold_mod.otsu(vol, np.float32(0.0), np.float32(1e-45))
    assert np.isfinite(t) and 0.0 <= t <= 1e-45


def test_otsu_on_a_bimodal_volume() -> None:
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(6)
    vol = np.where(
        rng.random((8, 32, 32)) < 0.3,
        rng.normal(900, 50, (8, 32, 32)),
        rng.normal(-700, 80, (8, 32, 32)),
    ).astype(np.float32)
    mask = run("threshold", vol, method="otsu").vol
    t = threshold_otsu(vol.ravel())
    assert mask.tobytes() == (vol > t).astype(np.uint8).tobytes()
    assert 0.2 < mask.mean() < 0.4


def _pydicom_ds(**attrs: object) -> object:
    from pydicom.dataset import Dataset

    ds = Dataset()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


@settings(max_examples=60, deadline=None)
@given(
    vol=arrays(
        np.int16,
        array_shapes(min_dims=3, max_dims=3, max_side=8),
        elements=st.integers(-2048, 4095),
    ),
    slope=st.sampled_from([1.0, 0.5, 2.0, 0.25]),
    intercept=st.sampled_from([-1024.0, 0.0, -3.5, 100.0]),
)
def test_rescale_matches_pydicom_apply_modality_lut(
    vol: np.ndarray, slope: float, intercept: float
) -> None:
    from pydicom.pixels.processing import apply_modality_lut

    ds = _pydicom_ds(RescaleSlope=slope, RescaleIntercept=intercept)
    want = np.asarray(apply_modality_lut(vol, ds), dtype=np.float64).astype(np.float32)
    got = run("rescale", vol, slope, intercept).vol
    assert got.tobytes() == want.tobytes()


@settings(max_examples=100, deadline=None)
@given(
    vol=arrays(
        np.float32,
        array_shapes(min_dims=3, max_dims=3, max_side=8),
        elements=st.floats(-2000, 3000, width=32),
    ),
    window=st.one_of(
        st.sampled_from(sorted(PRESETS.values())),
        st.tuples(st.floats(-1000, 1000), st.floats(1.5, 4000)),
    ),
    uint8=st.booleans(),
)
def test_window_matches_pydicom_apply_windowing(
    vol: np.ndarray, window: tuple[float, float], uint8: bool
) -> None:
    """pydicom's output range is [0, 2**BitsStored - 1] (unsigned): 8 bits for uint8
    (rounded half even), 16 bits scaled back to [0, 1] for float32."""
    from pydicom.pixels.processing import apply_windowing

    center, width = window
    bits = 8 if uint8 else 16
    ds = _pydicom_ds(
        PhotometricInterpretation="MONOCHROME2",
        PixelRepresentation=0,
        BitsStored=bits,
        WindowCenter=center,
        WindowWidth=width,
        VOILUTFunction="LINEAR",
    )
    y = apply_windowing(vol.astype(np.float64), ds)
    dtype = "uint8" if uint8 else "float32"
    got = run("window", vol, center=center, width=width, dtype=dtype).vol
    if uint8:
        # one grey level at exact .5 ties (fused a*x+b vs pydicom's (x-c)/w form)
        assert np.abs(got.astype(int) - np.rint(y).astype(int)).max(initial=0) <= 1
    else:
        np.testing.assert_allclose(got, y / 65535.0, atol=1e-6)
