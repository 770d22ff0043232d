"""The strongest reference per op: the fastest known way to compute the same result.

An op's declared ``reference`` (in its module) is written for correctness: plain numpy,
scipy or scikit-image in float64, used by the property tests. Timing the numba kernel
against it flatters the kernel, so the per-op suite times each op against the candidates
listed here instead, all in the same run, on the same volume and parameters:

- pointwise ops: single-pass, in-place numpy on float32 buffers (the rescale folded into
  the op's own multiply-add where the algebra allows);
- ``reorient``/``flip``/``crop_pad``: numpy views and one contiguous copy;
- ``resample``: ``scipy.ndimage.affine_transform`` on the same grid, and SimpleITK's
  ``Resample`` when installed;
- ``resize``: ``scipy.ndimage.zoom(grid_mode=True)`` and OpenCV's ``cv2.resize`` when
  installed;
- filters: scipy (``gaussian_filter``, ``median_filter``, ``sobel``), scikit-image
  (``equalize_adapthist``) and SimpleITK's ``Median`` when installed;
- ``svd``: the same randomized SVD (rank, oversampling, power iterations, seed) written
  with numpy's BLAS/LAPACK, and scikit-learn's ``randomized_svd`` when installed;
- ``matrix``: numpy ``matmul`` (BLAS sgemm).

Each candidate names itself (``label``), states its tolerance against the op's ``apply``
(``atol``/``rtol``, or the op's own acceptance test for ``svd``'s randomized algorithms) and
whether it can use more than one thread (BLAS, OpenCV, SimpleITK): those are timed at one
thread and at every core, the others at one thread only. A test runs every candidate
against ``apply`` with its tolerance (tests/bench/test_bench_references.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

#: (image, bound params, threads) -> the output voxels.
RefFunc = Callable[[Any, Mapping[str, Any], int], np.ndarray]

#: Parameters the per-op suite uses where ``examples[0]`` is not a realistic workload
#: (``crop_pad`` to 8x8x8 copies 512 voxels; ``resize`` to 16x16 writes 256 per slice).
BENCH_PARAMS: dict[str, dict[str, Any]] = {
    "crop_pad": {"shape": (0.0, 576.0, 576.0), "value": -1024.0},
    "resize": {"rows": 256, "cols": 256},
}

#: Ops with no candidate computing the same result, and why.
NOT_COMPARABLE: dict[str, str] = {
    "clahe": "OpenCV's CLAHE works on 8/16-bit integers with its own clip-limit and "
    "tile-edge rules, and SimpleITK's AdaptiveHistogramEqualization is another "
    "algorithm (alpha/beta): only scikit-image computes the same result",
}


@dataclass(frozen=True)
class SpeedRef:
    """One way to compute what an op computes, timed against its ``apply``.

    Attributes
    ----------
    name : str
        Short key in the document (``ops.<op>.references.<name>``).
    label : str
        What it is, as printed in tables (library, function, settings).
    func : callable
        ``func(img, params, threads) -> ndarray``: the op's output voxels.
    atol, rtol : float
        Tolerance against ``apply`` (``numpy.testing.assert_allclose``).
    threaded : bool
        Whether it can use more than one thread (then also timed at every core).
    requires : str or None
        Module it needs (the candidate is skipped when it is not installed).
    same_algorithm : bool
        False for a different algorithm reaching the same result within the op's own
        acceptance test (``svd`` via scikit-learn); the test then uses that test.
    covers : callable or None
        ``covers(img, params)``: whether it computes the op for this image and these
        parameters (None: always).
    """

    name: str
    label: str
    func: RefFunc
    atol: float = 0.0
    rtol: float = 0.0
    threaded: bool = False
    requires: str | None = None
    same_algorithm: bool = True
    covers: Callable[[Any, Mapping[str, Any]], bool] | None = None

    def handles(self, img: Any, params: Mapping[str, Any]) -> bool:
        """Whether it computes the op for ``img`` and ``params``."""
        return self.covers is None or self.covers(img, params)

    def available(self) -> bool:
        """Whether the module it needs is installed."""
        return (
            self.requires is None or importlib.util.find_spec(self.requires) is not None
        )


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS/OpenMP pools limited to ``n`` threads (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield


def _sitk() -> Any:
    """The SimpleITK module (untyped C++ bindings)."""
    import SimpleITK

    return SimpleITK


# --- pointwise ----------------------------------------------------------------------------


def real32(img: Any) -> np.ndarray:
    """Real values as a new float32 array: one pass when slope is 1, two otherwise."""
    vol = img.vol
    out = np.empty(vol.shape, dtype=np.float32)
    if img.slope == 1.0:
        np.add(vol, np.float32(img.intercept), out=out, casting="unsafe")
    else:
        np.multiply(vol, np.float32(img.slope), out=out, casting="unsafe")
        out += np.float32(img.intercept)
    return out


def _affine32(img: Any, a: float, b: float) -> np.ndarray:
    """``a * real + b`` as float32, the rescale folded in: ``vol * (a*slope) + (a*icpt + b)``."""
    out = np.empty(img.vol.shape, dtype=np.float32)
    np.multiply(img.vol, np.float32(a * img.slope), out=out, casting="unsafe")
    out += np.float32(a * img.intercept + b)
    return out


def _rescale(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    return real32(img)


def _cast(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.fuse import INT_RANGES

    buf = real32(img)
    if p["dtype"] == "float32":
        return buf
    lo, hi = INT_RANGES[p["dtype"]]
    np.rint(buf, out=buf)
    np.clip(buf, lo, hi, out=buf)
    return buf.astype(p["dtype"])


def _clip(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    buf = real32(img)
    lo = -np.inf if p["lo"] is None else p["lo"]
    hi = np.inf if p["hi"] is None else p["hi"]
    return np.clip(buf, lo, hi, out=buf)


def _threshold(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    if img.slope <= 0:
        mask: np.ndarray = np.greater(real32(img), p["value"])
        return mask.view(np.uint8)
    # compare the stored values with the threshold moved into stored units: one pass
    stored_t = (p["value"] - img.intercept) / img.slope
    above: np.ndarray = np.greater(img.vol, stored_t)
    return above.view(np.uint8)


def _window(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.ops.window import window_clamp

    y_max = 255.0 if p["dtype"] == "uint8" else 1.0
    clamp = window_clamp(p["center"], p["width"], y_max)
    buf = _affine32(img, clamp.a, clamp.b)
    np.clip(buf, 0.0, y_max, out=buf)
    if p["dtype"] == "uint8":
        grey: np.ndarray = np.rint(buf, out=buf).astype(np.uint8)
        return grey
    return buf


def _voi_covers(img: Any, p: Mapping[str, Any]) -> bool:
    """The image's own range onto 0..255 (``voi`` with no window and no file VOI)."""
    return (
        p["center"] is None
        and p["source"] in ("auto", "minmax")
        and not getattr(img, "display", None)
        and p["dtype"] == "uint8"
        and p["invert"] in ("auto", "no")
        and img.slope > 0
    )


def _voi(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    # LINEAR_EXACT from the minimum to the maximum: min/max of the stored values
    lo = float(img.vol.min()) * img.slope + img.intercept
    hi = float(img.vol.max()) * img.slope + img.intercept
    a = 255.0 / (hi - lo) if hi > lo else 0.0
    buf = _affine32(img, a, -a * lo)
    np.clip(buf, 0.0, 255.0, out=buf)
    grey: np.ndarray = np.rint(buf, out=buf).astype(np.uint8)
    return grey


def _normalize(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    # statistics of the stored values (numpy converts on the fly), mapped to real units
    mean = float(img.vol.mean(dtype=np.float64)) * img.slope + img.intercept
    std = float(img.vol.std(dtype=np.float64)) * abs(img.slope)
    inv = 1.0 / std if std > 0 else 1.0
    return _affine32(img, inv, -mean * inv)


def _matrix(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.ops.matrix import weights_for

    w = weights_for(dict(p), img.vol.shape[-1]).astype(np.float32)
    real = real32(img)
    with blas_threads(threads):
        out: np.ndarray = np.matmul(real, w)
    return out


# --- index moves -----------------------------------------------------------------------------


def _flip(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.ops.flip import AXES

    return np.ascontiguousarray(np.flip(img.vol, axis=AXES.index(p["axis"])))


def _reorient(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.ops.reorient import orientation

    orient = orientation(img.affine_lps, p["target"])
    flipped = tuple(i for i, (_, sign) in enumerate(orient) if sign < 0)
    perm = [0, 0, 0]
    for in_ax, (out_ax, _) in enumerate(orient):
        perm[out_ax] = in_ax
    view = np.flip(img.vol, axis=flipped) if flipped else img.vol
    return np.ascontiguousarray(np.transpose(view, perm))


def _crop_pad(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.ops.crop_pad import offsets, stored_value, target_shape

    vol = img.vol
    new_shape = target_shape(vol.shape, p["shape"])
    o = offsets(vol.shape, new_shape)
    fill = stored_value(p["value"], vol.dtype, img.slope, img.intercept)
    src = tuple(
        slice(max(k, 0), min(n, m + k))
        for n, m, k in zip(vol.shape, new_shape, o, strict=True)
    )
    dst = tuple(slice(s.start - k, s.stop - k) for s, k in zip(src, o, strict=True))
    out = np.full(new_shape, fill, dtype=vol.dtype)
    out[dst] = vol[src]
    return out


# --- resampling -----------------------------------------------------------------------------


def _resample_grid(img: Any, p: Mapping[str, Any]) -> tuple[tuple[int, ...], Any]:
    from clisonix_cli.transforms.ops.resample import grid

    new_shape, _, zooms = grid(img.vol.shape, img.affine_lps, p["spacing"])
    return new_shape, zooms


def _resample_scipy(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from scipy import ndimage

    new_shape, zooms = _resample_grid(img, p)
    order = 0 if p["order"] == "nearest" else 1
    src = img.vol if order == 0 else real32(img)
    return np.asarray(
        ndimage.affine_transform(
            src,
            np.asarray(zooms, dtype=np.float64),  # diagonal: out index * zoom
            output_shape=new_shape,
            order=order,
            mode="nearest",
            prefilter=False,
            output=src.dtype,
        )
    )


def sitk_image(img: Any, *, real: bool = True) -> Any:
    """The volume as a SimpleITK image, spacing from the affine, identity direction."""
    sitk = _sitk()

    arr = real32(img) if real else np.ascontiguousarray(img.vol)
    out = sitk.GetImageFromArray(arr)  # numpy (S, R, C) -> ITK (x=C, y=R, z=S)
    zooms = np.sqrt(np.sum(np.asarray(img.affine_lps)[:3, :3] ** 2, axis=0))
    out.SetSpacing((float(zooms[2]), float(zooms[1]), float(zooms[0])))
    return out


def _within_half_voxel(img: Any, p: Mapping[str, Any]) -> bool:
    """Every output point within half a voxel of the input grid's last centre.

    Beyond that SimpleITK extrapolates by nearest neighbour along every axis, where the op
    (``mode="nearest"``) repeats the edge along the outlying axis only.
    """
    new_shape, zooms = _resample_grid(img, p)
    return all(
        (m - 1) * z <= n - 0.5
        for m, z, n in zip(new_shape, zooms, img.vol.shape, strict=True)
    )


def _resample_sitk(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    sitk = _sitk()

    new_shape, zooms = _resample_grid(img, p)
    nearest = p["order"] == "nearest"
    image = sitk_image(img, real=not nearest)
    spacing = image.GetSpacing()
    f = sitk.ResampleImageFilter()
    f.SetNumberOfThreads(threads)
    f.SetSize([int(n) for n in reversed(new_shape)])
    f.SetOutputSpacing([s * z for s, z in zip(spacing, reversed(zooms), strict=True)])
    f.SetOutputOrigin(image.GetOrigin())
    f.SetOutputDirection(image.GetDirection())
    f.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
    f.SetUseNearestNeighborExtrapolator(True)  # edges repeated, as mode="nearest"
    return np.asarray(sitk.GetArrayFromImage(f.Execute(image)))


def _resize_scipy(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from scipy import ndimage

    real = real32(img)
    _, rows, cols = real.shape
    zoom = (1.0, p["rows"] / rows, p["cols"] / cols)
    return np.asarray(ndimage.zoom(real, zoom, order=1, mode="nearest", grid_mode=True))


def _resize_cv2(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    import cv2

    cv2.setNumThreads(threads)
    real = real32(img)
    out = np.empty((real.shape[0], p["rows"], p["cols"]), dtype=np.float32)
    for s in range(real.shape[0]):
        cv2.resize(
            real[s], (p["cols"], p["rows"]), dst=out[s], interpolation=cv2.INTER_LINEAR
        )
    return out


# --- filters --------------------------------------------------------------------------------


def _gaussian_scipy(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from scipy import ndimage

    from clisonix_cli.transforms.ops.gaussian import TRUNCATE, sigma_voxels

    return np.asarray(
        ndimage.gaussian_filter(
            real32(img),
            sigma_voxels(img, p["sigma"]),
            mode="nearest",
            truncate=TRUNCATE,
        )
    )


def _median_window(p: Mapping[str, Any]) -> tuple[int, int, int]:
    n = int(p["size"])
    return (1 if p["per_slice"] else n, n, n)


def _median_scipy(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from scipy import ndimage

    return np.asarray(
        ndimage.median_filter(real32(img), size=_median_window(p), mode="nearest")
    )


def _median_sitk(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    sitk = _sitk()

    half = int(p["size"]) // 2
    f = sitk.MedianImageFilter()
    f.SetNumberOfThreads(threads)
    f.SetRadius([half, half, 0 if p["per_slice"] else half])  # ITK (x=C, y=R, z=S)
    return np.asarray(sitk.GetArrayFromImage(f.Execute(sitk_image(img))))


def _sobel_scipy(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from scipy import ndimage

    from clisonix_cli.transforms.ops.sobel import _scales

    real = real32(img)
    total = np.zeros(real.shape, dtype=np.float32)
    g = np.empty_like(real)
    for axis, scale in enumerate(_scales(img, p["per_mm"])):
        ndimage.sobel(real, axis=axis, output=g, mode="nearest")
        if scale != 1.0:
            g *= np.float32(scale)
        g *= g
        total += g
    return np.sqrt(total, out=total)


def _clahe_skimage(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from clisonix_cli.transforms.ops.clahe import reference

    return np.asarray(reference(img, **p).vol)


# --- svd --------------------------------------------------------------------------------


def _svd_numpy(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    """Halko et al. 2011 as the op runs it, per slice, with numpy's BLAS and LAPACK."""
    from clisonix_cli.transforms.ops.svd import textbook

    with blas_threads(threads):
        return textbook(
            real32(img),
            int(p["k"]),
            int(p["oversample"]),
            int(p["power_iters"]),
            p["seed"],
        )


def _svd_sklearn(img: Any, p: Mapping[str, Any], threads: int) -> np.ndarray:
    from sklearn.utils.extmath import randomized_svd

    real = real32(img)
    out = np.empty_like(real)
    k = min(int(p["k"]), real.shape[1], real.shape[2])
    with blas_threads(threads):
        for s in range(real.shape[0]):
            u, sv, vt = randomized_svd(
                real[s],
                k,
                n_oversamples=int(p["oversample"]),
                n_iter=int(p["power_iters"]),
                power_iteration_normalizer="QR",
                random_state=int(p["seed"]),
            )
            out[s] = (u * sv) @ vt
    return out


# Pointwise candidates (atol 1e-5, rtol 1e-6): float32 arithmetic (the rescale folded into
# one multiply-add) against the op's float64 evaluation rounded once: a float32 ulp of the
# intermediate value.

#: op name -> candidates, strongest expected first.
REFERENCES: dict[str, tuple[SpeedRef, ...]] = {
    "rescale": (
        SpeedRef(
            "numpy", "numpy multiply-add into float32", _rescale, atol=1e-5, rtol=1e-6
        ),
    ),
    "cast": (
        SpeedRef(
            "numpy",
            "numpy float32 multiply-add, rint, clip in place, astype",
            _cast,
            atol=1.0,
            covers=lambda img, p: p["scale"] == "none",
        ),
    ),
    "clip": (
        SpeedRef(
            "numpy",
            "numpy float32 multiply-add, clip in place",
            _clip,
            atol=1e-5,
            rtol=1e-6,
        ),
    ),
    "threshold": (
        SpeedRef(
            "numpy",
            "numpy greater on stored values (threshold in stored units)",
            _threshold,
            covers=lambda img, p: p["method"] == "fixed",
        ),
    ),
    "window": (
        SpeedRef(
            "numpy",
            "numpy one multiply-add (rescale folded in), clip in place",
            _window,
            atol=1e-5,
            rtol=1e-6,
        ),
    ),
    "voi": (
        SpeedRef(
            "numpy",
            "numpy min/max of stored values, one multiply-add, clip, rint (the image's "
            "own range onto 0..255)",
            _voi,
            atol=1.0,
            covers=_voi_covers,
        ),
    ),
    "normalize": (
        SpeedRef(
            "numpy",
            "numpy mean/std of stored values, one multiply-add",
            _normalize,
            atol=1e-4,
            rtol=1e-5,
            covers=lambda img, p: (p["method"], p["mask"]) == ("zscore", "all"),
        ),
    ),
    "matrix": (
        SpeedRef(
            "numpy",
            "numpy matmul (BLAS sgemm)",
            _matrix,
            atol=3e-3,
            rtol=1e-5,
            threaded=True,
        ),
    ),
    "flip": (SpeedRef("numpy", "numpy flip + ascontiguousarray", _flip),),
    "reorient": (
        SpeedRef("numpy", "numpy transpose + flip + ascontiguousarray", _reorient),
    ),
    "crop_pad": (SpeedRef("numpy", "numpy full + slice assignment", _crop_pad),),
    "resample": (
        SpeedRef(
            "scipy",
            "scipy.ndimage.affine_transform (same grid, mode=nearest)",
            _resample_scipy,
            atol=0.02,
            rtol=1e-6,
        ),
        SpeedRef(
            "sitk",
            "SimpleITK Resample (linear, nearest-neighbour extrapolation)",
            _resample_sitk,
            atol=0.02,
            rtol=1e-5,
            threaded=True,
            requires="SimpleITK",
            covers=_within_half_voxel,
        ),
    ),
    "resize": (
        SpeedRef(
            "scipy",
            "scipy.ndimage.zoom (grid_mode=True, mode=nearest)",
            _resize_scipy,
            atol=0.02,
            rtol=1e-6,
        ),
        SpeedRef(
            "opencv",
            "OpenCV cv2.resize INTER_LINEAR per slice",
            _resize_cv2,
            atol=0.05,
            rtol=1e-5,
            threaded=True,
            requires="cv2",
        ),
    ),
    "gaussian": (
        SpeedRef(
            "scipy",
            "scipy.ndimage.gaussian_filter (float32, truncate=4, mode=nearest)",
            _gaussian_scipy,
            atol=0.02,
            rtol=1e-6,
        ),
    ),
    "median": (
        SpeedRef(
            "sitk",
            "SimpleITK Median (same window, edges repeated)",
            _median_sitk,
            threaded=True,
            requires="SimpleITK",
        ),
        SpeedRef(
            "scipy",
            "scipy.ndimage.median_filter (mode=nearest)",
            _median_scipy,
        ),
    ),
    "sobel": (
        SpeedRef(
            "scipy",
            "scipy.ndimage.sobel per axis, float32 in place",
            _sobel_scipy,
            atol=0.1,
            rtol=1e-5,
        ),
    ),
    "clahe": (
        SpeedRef(
            "skimage",
            "scikit-image equalize_adapthist per slice",
            _clahe_skimage,
            atol=1e-6,
        ),
    ),
    "svd": (
        SpeedRef(
            "numpy",
            "numpy randomized SVD, same rank/oversampling/iterations/seed (BLAS, LAPACK)",
            _svd_numpy,
            atol=2e-3,
            rtol=1e-3,
            threaded=True,
        ),
        SpeedRef(
            "sklearn",
            "scikit-learn randomized_svd (same rank/oversampling/iterations)",
            _svd_sklearn,
            threaded=True,
            requires="sklearn",
            same_algorithm=False,
        ),
    ),
}


def bench_params(op: Any) -> dict[str, Any]:
    """The parameters the per-op suite times ``op`` with (bound and checked)."""
    raw = BENCH_PARAMS.get(op.name)
    if raw is None:
        raw = dict(op.examples[0]) if op.examples else {}
    bound: dict[str, Any] = op.bind(dict(raw))
    return bound


def candidates(name: str) -> list[SpeedRef]:
    """The installed candidates of op ``name`` (empty for an op with none listed)."""
    return [ref for ref in REFERENCES.get(name, ()) if ref.available()]
