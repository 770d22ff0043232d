"""LIAM Binary Algebra: the transform core as plain functions on numpy arrays.

Every function here runs the same numba kernels as the pipeline ops (``clisonix ops``); it
takes arrays of any shape (intensity ops), 2-D or 3-D (``svd_compress``: one matrix or a
stack of slices) or any shape whose last axis is contracted (``transform_matrix``), and
returns new arrays. Real values are the values given: pass ``slope``/``intercept`` to
:func:`rescale` for stored DICOM values. The intensity functions (:func:`rescale` to
:func:`threshold`, :meth:`BinaryAlgebra.cast_fit`) raise ``TypeError`` when ``x`` is not a
real numeric array (boolean, complex or text), and a
:class:`~clisonix_cli.errors.PipelineError` subclass, naming the parameter, when a parameter
is missing, unknown, out of range or in conflict with another (as ``--op`` would).

>>> import numpy as np
>>> from clisonix_cli.liam import BinaryAlgebra
>>> a = BinaryAlgebra()
>>> x = np.arange(12, dtype=np.float32).reshape(3, 4)
>>> y = a.transform_matrix(x, np.ones((4, 2)))
>>> y
array([[ 6.,  6.],
       [22., 22.],
       [38., 38.]], dtype=float32)
>>> z = a.svd_compress(y, k=1)
>>> bool(np.allclose(z, y, atol=1e-4)), a.last_report.rank
(True, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clisonix_cli.transforms.image import Image

__all__ = [
    "BinaryAlgebra",
    "SvdReport",
    "cast",
    "clip",
    "normalize",
    "rescale",
    "svd_compress",
    "threshold",
    "transform_matrix",
    "window",
]

_EYE = np.eye(4)


def _as_vol(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """Any-shape array -> (S, R, C) view/copy and the shape to restore."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError("complex arrays are not supported")
    shape = arr.shape
    if arr.ndim == 3:
        return arr, shape
    if arr.ndim == 0:
        return arr.reshape(1, 1, 1), shape
    if arr.ndim == 1:
        return arr.reshape(1, 1, -1), shape
    if arr.ndim == 2:
        return arr.reshape(1, *shape), shape
    return arr.reshape(-1, shape[-2], shape[-1]), shape


def _run_op(
    name: str, x: Any, slope: float = 1.0, intercept: float = 0.0, **params: Any
) -> Image:
    from clisonix_cli.transforms.registry import get_op

    vol, _ = _as_vol(x)
    op = get_op(name)
    return op.apply(
        Image(vol, _EYE, slope=slope, intercept=intercept), **op.bind(params)
    )


def _pointwise(name: str, x: Any, **params: Any) -> np.ndarray:
    shape = np.shape(x)
    return _run_op(name, x, **params).vol.reshape(shape)


def rescale(x: Any, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """Apply the modality LUT: ``x * slope + intercept`` as float32 (float64 arithmetic).

    Parameters
    ----------
    x : array_like
        Stored values, any shape (real numeric dtype).
    slope, intercept : float
        Rescale Slope and Rescale Intercept (PS3.3 C.11.1.1.2).

    Returns
    -------
    ndarray of float32
        Real values, same shape as ``x``.

    Examples
    --------
    >>> rescale(np.array([0, 1000], dtype=np.int16), intercept=-1024.0)
    array([-1024.,   -24.], dtype=float32)
    """
    return _pointwise("rescale", x, slope=slope, intercept=intercept)


def window(
    x: Any,
    center: float | None = None,
    width: float | None = None,
    *,
    preset: str | None = None,
    dtype: str = "float32",
) -> np.ndarray:
    """Apply the DICOM linear window (PS3.3 C.11.2.1.2.1) onto [0, 1] or 0..255.

    Parameters
    ----------
    x : array_like
        Real values (HU for CT), any shape.
    center, width : float, optional
        Window centre and width (``width > 1``), in the units of ``x``; both required
        unless ``preset`` is given.
    preset : str, optional
        Named CT window that sets ``center`` and ``width`` (``clisonix ops`` lists them).
    dtype : {"float32", "uint8"}
        Output: float32 in [0, 1], or uint8 0..255 rounded half to even.

    Returns
    -------
    ndarray of float32 or uint8
        Windowed values, same shape as ``x``.

    Examples
    --------
    >>> window(np.array([-1000.0, 39.5, 1000.0]), preset="brain")
    array([0. , 0.5, 1. ], dtype=float32)
    >>> window(np.array([-1000.0, 39.5, 1000.0]), 40, 80, dtype="uint8")
    array([  0, 128, 255], dtype=uint8)
    """
    return _pointwise(
        "window", x, center=center, width=width, preset=preset, dtype=dtype
    )


def clip(x: Any, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Clip values to ``[lo, hi]``, float32; NaN stays NaN.

    Parameters
    ----------
    x : array_like
        Real values, any shape.
    lo, hi : float, optional
        Lower and upper bound; an omitted bound is open (at least one is required).

    Returns
    -------
    ndarray of float32
        Clipped values, same shape as ``x``.

    Examples
    --------
    >>> clip(np.array([-5.0, 0.5, 5.0]), lo=0.0, hi=1.0)
    array([0. , 0.5, 1. ], dtype=float32)
    """
    return _pointwise("clip", x, lo=lo, hi=hi)


def normalize(x: Any, method: str = "zscore", **params: Any) -> np.ndarray:
    """Scale values by z-score, min-max or percentiles of (optionally masked) statistics.

    Parameters
    ----------
    x : array_like
        Real values, any shape; NaN values are left out of the statistics.
    method : {"zscore", "minmax", "percentile"}
        The map: ``(x - mean) / std``, ``(x - min) / (max - min)`` or
        ``(x - P_lo) / (P_hi - P_lo)``.
    **params
        The op's other parameters: ``mask`` (``"all"``, ``"nonzero"``, ``"above"``),
        ``mask_threshold``, ``p_lo``, ``p_hi``, ``clip`` (``clisonix ops`` lists them).

    Returns
    -------
    ndarray of float32
        Scaled values, same shape as ``x``.

    Examples
    --------
    >>> normalize(np.array([1.0, 2.0, 3.0]))
    array([-1.2247449,  0.       ,  1.2247449], dtype=float32)
    >>> normalize(np.array([0.0, 2.0, 4.0]), method="minmax", mask="nonzero")
    array([0., 0., 1.], dtype=float32)
    """
    return _pointwise("normalize", x, method=method, **params)


def cast(x: Any, dtype: str, scale: str = "none") -> np.ndarray:
    """Convert values to ``dtype``: round half to even and saturate (``scale="none"``).

    With ``scale="fit"`` use :meth:`BinaryAlgebra.cast_fit`, which also returns the
    slope/intercept that give the real values back.

    Parameters
    ----------
    x : array_like
        Real values, any shape.
    dtype : {"int16", "uint8", "uint16", "float32"}
        Output dtype; NaN becomes 0 in integer outputs.
    scale : {"none", "fit"}
        ``"fit"`` (integer dtypes only) maps ``[min, max]`` of ``x`` onto the dtype's range
        (the returned array alone then loses the real values: see
        :meth:`BinaryAlgebra.cast_fit`).

    Returns
    -------
    ndarray
        Values of ``dtype``, same shape as ``x``.

    Examples
    --------
    >>> cast(np.array([-1.5, 0.5, 2.5, 300.0]), "uint8")
    array([  0,   0,   2, 255], dtype=uint8)
    """
    return _pointwise("cast", x, dtype=dtype, scale=scale)


def threshold(x: Any, value: float | None = None, method: str = "fixed") -> np.ndarray:
    """Return the uint8 mask of ``x > value`` (or of Otsu's threshold, ``method="otsu"``).

    Parameters
    ----------
    x : array_like
        Real values, any shape; NaN is background.
    value : float, optional
        The threshold for ``method="fixed"`` (required there, refused with ``"otsu"``).
    method : {"fixed", "otsu"}
        A fixed threshold or Otsu's, computed as ``skimage.filters.threshold_otsu``.

    Returns
    -------
    ndarray of uint8
        1 where ``x`` is above the threshold, else 0; same shape as ``x``.

    Examples
    --------
    >>> threshold(np.array([0.0, 1.0, 2.0, 9.0, 10.0]), method="otsu")
    array([0, 0, 0, 1, 1], dtype=uint8)
    """
    return _pointwise("threshold", x, value=value, method=method)


def transform_matrix(x: Any, w: Any) -> np.ndarray:
    """Contract the last axis of ``x`` with ``w``: ``y[..., k] = sum_c x[..., c] w[c, k]``.

    Parameters
    ----------
    x : (..., C) array_like
        Real values, any shape; the last axis is contracted.
    w : (C, K) array_like
        Weights.

    Returns
    -------
    (..., K) ndarray of float32
        The product (float32 BLAS, float32 accumulation).

    Raises
    ------
    ValueError
        When ``w`` is not 2-D.
    TransformFailedError
        When the last axis of ``x`` and the rows of ``w`` differ in size.

    Examples
    --------
    >>> transform_matrix(np.ones((2, 3)), np.array([[1.0], [2.0], [3.0]]))
    array([[6.],
           [6.]], dtype=float32)
    """
    from clisonix_cli.transforms.ops.matrix import contract

    arr = np.asarray(x)
    weights = np.asarray(w)
    if weights.ndim != 2:
        raise ValueError(f"w must be 2-D (C, K), got shape {weights.shape}")
    return contract(arr.astype(np.float32, copy=False), weights)


@dataclass(frozen=True)
class SvdReport:
    """What a rank-k approximation (:func:`svd_compress`) kept.

    Attributes
    ----------
    rank : int
        The rank used: ``k`` capped at ``min(R, C)``.
    singular_values : (S, rank) ndarray of float32
        The top singular values, one row per slice.
    retained_energy : float
        ``sum(sigma_k^2) / ||x||_F^2`` over the whole input.
    compression_ratio : float
        Values of a slice over those of its factors, ``R*C / (k*(R+C+1))``.
    """

    rank: int
    singular_values: np.ndarray
    retained_energy: float
    compression_ratio: float


def svd_compress(
    x: Any, k: int, *, oversample: int = 10, power_iters: int = 2, seed: int = 0
) -> tuple[np.ndarray, SvdReport]:
    """Approximate a matrix (R, C), or each slice of (S, R, C), at rank k.

    Randomized SVD with a seeded test matrix (same inputs and seed, same bytes); see
    ``docs/ops.md#svd`` for the algorithm.

    Parameters
    ----------
    x : (R, C) or (S, R, C) array_like
        Real values.
    k : int
        Target rank, >= 1 (capped at ``min(R, C)``).
    oversample : int
        Extra random columns (Halko et al.'s p).
    power_iters : int
        Subspace (power) iterations (Halko et al.'s q).
    seed : int
        Seed of the Gaussian test matrix.

    Returns
    -------
    approx : ndarray of float32
        The rank-k approximation, same shape as ``x``.
    report : SvdReport
        Singular values, retained energy and compression ratio.

    Raises
    ------
    ValueError
        When ``x`` is not 2-D or 3-D, or ``k < 1``.

    Examples
    --------
    >>> x = np.outer(np.arange(1.0, 5.0), np.arange(1.0, 4.0))
    >>> approx, report = svd_compress(x, k=1)
    >>> bool(np.allclose(approx, x, atol=1e-4)), round(report.retained_energy, 6)
    (True, 1.0)
    """
    from clisonix_cli.transforms.ops.svd import svd_factors

    arr = np.asarray(x)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"x must be 2-D (R, C) or 3-D (S, R, C), got shape {arr.shape}"
        )
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vol = arr.reshape(1, *arr.shape) if arr.ndim == 2 else arr
    res = svd_factors(
        vol, int(k), oversample=oversample, power_iters=power_iters, seed=seed
    )
    report = SvdReport(
        res.rank, res.singular_values, res.retained_energy, res.compression_ratio
    )
    return res.approx.reshape(arr.shape), report


class BinaryAlgebra:
    """The LIAM Binary Algebra facade: the transform core's array functions in one object.

    Parameters
    ----------
    seed : int
        Seed of the randomized SVD (same seed, same bytes).
    oversample, power_iters : int
        Randomized SVD settings (see :mod:`clisonix_cli.transforms.ops.svd`).

    Attributes
    ----------
    last_report : SvdReport or None
        Retained energy and compression ratio of the last :meth:`svd_compress`.

    Examples
    --------
    >>> a = BinaryAlgebra()
    >>> a.window(np.array([-1000.0, 39.5, 1000.0]), preset="brain")
    array([0. , 0.5, 1. ], dtype=float32)
    >>> stored, slope, intercept = a.cast_fit(np.array([-1.0, 0.0, 1.0]), "uint8")
    >>> stored, round(slope * 255, 6), intercept
    (array([  0, 128, 255], dtype=uint8), 2.0, -1.0)
    """

    def __init__(
        self, *, seed: int = 0, oversample: int = 10, power_iters: int = 2
    ) -> None:
        self.seed = seed
        self.oversample = oversample
        self.power_iters = power_iters
        self.last_report: SvdReport | None = None

    rescale = staticmethod(rescale)
    window = staticmethod(window)
    clip = staticmethod(clip)
    normalize = staticmethod(normalize)
    cast = staticmethod(cast)
    threshold = staticmethod(threshold)
    transform_matrix = staticmethod(transform_matrix)

    def svd_compress(self, x: Any, k: int) -> np.ndarray:
        """Approximate ``x`` at rank k (:func:`svd_compress`); set :attr:`last_report`.

        Parameters
        ----------
        x : (R, C) or (S, R, C) array_like
            Real values.
        k : int
            Target rank, >= 1.

        Returns
        -------
        ndarray of float32
            The rank-k approximation, same shape as ``x``.

        Raises
        ------
        ValueError
            When ``x`` is not 2-D or 3-D, or ``k < 1``.
        """
        approx, self.last_report = svd_compress(
            x,
            k,
            oversample=self.oversample,
            power_iters=self.power_iters,
            seed=self.seed,
        )
        return approx

    @staticmethod
    def cast_fit(x: Any, dtype: str) -> tuple[np.ndarray, float, float]:
        """Map ``[min, max]`` of ``x`` onto the range of an integer ``dtype``.

        Parameters
        ----------
        x : array_like
            Real values, any shape (NaN is left out of the range).
        dtype : {"int16", "uint8", "uint16"}
            Integer output dtype.

        Returns
        -------
        stored : ndarray
            Values of ``dtype``, same shape as ``x``.
        slope, intercept : float
            ``stored * slope + intercept`` gives ``x`` back within half a step.
        """
        out = _run_op("cast", x, dtype=dtype, scale="fit")
        return out.vol.reshape(np.shape(x)), out.slope, out.intercept
